//! The Raft node runtime: opens the Raft log and the state machine under the data directory,
//! starts openraft with the gRPC network, proposes produces (forwarding them to the leader when
//! this node follows), and is what [`super::RaftBackend`] serves the `log.v1` service from.
//!
//! Data directory layout: `node-identity.json` (see [`super::identity`]), `raft/` (Raft log and
//! vote), `raft/sm/` (the user-visible log and the applied position), `raft/snapshot-staging/`
//! (snapshots being received).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, ServerState};
use proglog_log::LogConfig;
use proglog_proto::log::v1::{Record, Server};

use super::batcher::{Batcher, InFlight};
use super::error::RaftStoreError;
use super::fatal::CoreState;
use super::forwarding::{ForwardProduces, forward_produce, no_leader_error, not_leader_error};
use super::health::{HealthTiming, LeaderContact};
use super::identity::NodeIdentity;
use super::log_store::RaftLogStoreReader;
use super::network::{ChannelPool, NetworkConfig, RaftNetwork};
use super::node_config::RaftNodeConfig;
use super::proposer::{Proposer, start_proposer, write_in_order};
use super::state_machine::UserLogStateMachine;
use super::types::{Metrics, NodeId, Raft};
use super::user_log::UserLog;
use crate::backend::{Appended, BackendError, LogBounds, QueuedAppend};
use crate::metrics::Metrics as NodeMetrics;
use crate::tls::ReloadingClientTls;

/// Forward RPCs a follower keeps in flight at once; produces arriving meanwhile share the next.
const FORWARDS_IN_FLIGHT: usize = 4;

/// Failures starting a node.
#[derive(Debug, thiserror::Error)]
pub enum RaftNodeError {
    /// The Raft log, the state machine or a state file could not be opened.
    #[error("raft storage: {0}")]
    Storage(#[from] RaftStoreError),
    /// The election and heartbeat timings are inconsistent.
    #[error("invalid raft configuration: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The node's client certificate for its peers cannot be loaded.
    #[error("TLS for node-to-node connections: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// openraft could not start, or a start-up task failed.
    #[error("starting raft: {0}")]
    Start(String),
    /// openraft failed while recovering (e.g. re-applying committed entries).
    #[error(transparent)]
    Core(#[from] super::fatal::CoreFailure),
}

/// A running Raft node.
#[derive(Debug)]
pub struct RaftNode {
    identity: NodeIdentity,
    advertise_addr: String,
    raft: Raft,
    proposer: Proposer,
    forwarder: Batcher<ForwardProduces>,
    prometheus: Arc<NodeMetrics>,
    state_machine: UserLogStateMachine,
    /// The user-visible log; its applied end is what followers of the log (consume
    /// `--follow`) wait on.
    user_log: Arc<UserLog>,
    log_reader: RaftLogStoreReader,
    pool: Arc<ChannelPool>,
    network_config: NetworkConfig,
    user_log_config: LogConfig,
    raft_dir: PathBuf,
    propose_timeout: Duration,
    misaddressed_rpcs: AtomicU64,
    forward_rpcs: AtomicU64,
    /// Serialises membership changes executed on this node (asked here or forwarded).
    membership_changes: tokio::sync::Mutex<()>,
    /// Whether the Raft core stopped, and why (see [`super::fatal`]).
    pub(super) core: CoreState,
    /// When a leader was last heard from, and the bounds of readiness (see [`super::health`]).
    pub(super) leader_contact: LeaderContact,
    pub(super) health_timing: HealthTiming,
}

impl RaftNode {
    /// Opens the storage under `config.data_dir` and starts Raft. A node with no Raft state waits
    /// to be initialized or added to a cluster through the admin API.
    pub async fn start(config: RaftNodeConfig) -> Result<Arc<Self>, RaftNodeError> {
        // Recovery reads, truncates and fsyncs files: on a blocking thread, not a worker.
        let (data_dir, ordinal) = (config.data_dir.clone(), config.ordinal);
        let (raft_log, user_log, metrics) = (
            config.raft_log.clone(),
            config.user_log.clone(),
            config.metrics.clone(),
        );
        let (identity, raft_dir, log_store, state_machine) =
            tokio::task::spawn_blocking(move || -> Result<_, RaftNodeError> {
                let identity = NodeIdentity::load_or_create(&data_dir, ordinal)?;
                let raft_dir = data_dir.join("raft");
                let (log_store, state_machine) =
                    super::storage_pair::open_storage(&raft_dir, raft_log, user_log, metrics)?;
                super::startup_check::log_covers_applied(
                    log_store.last_log_id()?,
                    state_machine.last_applied(),
                    state_machine.snapshot_last_log_id(),
                )?;
                let staging = raft_dir.join("snapshot-staging");
                // Leftovers of transfers interrupted by a crash.
                if staging.exists() {
                    std::fs::remove_dir_all(&staging).map_err(RaftStoreError::Io)?;
                }
                super::durable_file::create_dir(&staging)?;
                Ok((identity, raft_dir, log_store, state_machine))
            })
            .await
            .map_err(|e| RaftNodeError::Start(format!("opening the raft storage: {e}")))??;
        let log_reader = log_store.reader();
        let user_log = state_machine.user_log();
        let pool = Arc::new(ChannelPool::new(
            config.client_tls.clone(),
            config.network.clone(),
        ));
        let raft_config = Arc::new(config.raft.validate()?);
        let health_timing = HealthTiming::from_raft_config(&raft_config);
        let raft = Raft::new(
            identity.node_id(),
            raft_config,
            RaftNetwork::new(identity.node_id(), pool.clone()),
            log_store,
            state_machine.clone(),
        )
        .await
        .map_err(|e| RaftNodeError::Core(super::fatal::CoreFailure::from_fatal(&e)))?;
        let core = CoreState::default();
        tokio::spawn(super::fatal::watch_core(
            raft.clone(),
            core.clone(),
            config.metrics.clone(),
        ));
        tokio::spawn(super::metrics_view::follow_raft(
            raft.clone(),
            config.metrics.clone(),
        ));
        Ok(Arc::new_cyclic(|node| Self {
            identity,
            advertise_addr: config.advertise_addr,
            proposer: start_proposer(raft.clone(), config.metrics.clone()),
            forwarder: Batcher::start(
                ForwardProduces::new(node.clone()),
                InFlight::always(FORWARDS_IN_FLIGHT),
            ),
            prometheus: config.metrics,
            raft,
            state_machine,
            user_log,
            log_reader,
            pool,
            network_config: config.network,
            user_log_config: config.user_log,
            raft_dir,
            propose_timeout: config.propose_timeout,
            misaddressed_rpcs: AtomicU64::new(0),
            forward_rpcs: AtomicU64::new(0),
            membership_changes: tokio::sync::Mutex::new(()),
            core,
            leader_contact: LeaderContact::default(),
            health_timing,
        }))
    }

    /// Longest a produce waits for a leader and a quorum.
    pub(crate) fn propose_timeout(&self) -> Duration {
        self.propose_timeout
    }

    /// The Prometheus metrics this node updates (see [`RaftNodeConfig::metrics`]).
    pub fn prometheus(&self) -> &Arc<NodeMetrics> {
        &self.prometheus
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// The persisted identity (incarnation and ordinal).
    pub fn identity(&self) -> NodeIdentity {
        self.identity
    }

    /// The address this node advertises.
    pub fn advertise_addr(&self) -> &str {
        &self.advertise_addr
    }

    /// The openraft handle.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The user-visible log (readers see it up to its applied end).
    pub fn user_log(&self) -> &Arc<UserLog> {
        &self.user_log
    }

    /// A reader of this node's Raft log.
    pub fn raft_log_reader(&self) -> RaftLogStoreReader {
        self.log_reader.clone()
    }

    /// A watch of the user log's applied end, changed after every apply and snapshot install.
    pub fn subscribe_user_log(&self) -> tokio::sync::watch::Receiver<u64> {
        self.user_log.subscribe()
    }

    /// `ForwardProduce` RPCs this node has sent to a leader since start (each carries a batch
    /// of produces, see [`super::batcher`]).
    pub fn forward_rpcs(&self) -> u64 {
        self.forward_rpcs.load(Ordering::Relaxed)
    }

    pub(crate) fn count_forward_rpc(&self) {
        self.forward_rpcs.fetch_add(1, Ordering::Relaxed);
    }

    /// Raft RPCs refused since start because they were addressed to another node id (a leader
    /// still replicating to the member this node replaced at its address).
    pub fn misaddressed_rpcs(&self) -> u64 {
        self.misaddressed_rpcs.load(Ordering::Relaxed)
    }

    pub(crate) fn count_misaddressed_rpc(&self) {
        self.misaddressed_rpcs.fetch_add(1, Ordering::Relaxed);
    }

    /// Snapshots installed since start (sent by a leader because this node was far behind).
    pub fn installed_snapshots(&self) -> u64 {
        self.state_machine.installed_snapshots()
    }

    /// Whether this node holds any Raft state (initialized, or joined a cluster).
    pub fn has_raft_state(&self) -> bool {
        self.log_reader.has_state()
    }

    pub(crate) fn snapshot_staging_dir(&self) -> PathBuf {
        self.raft_dir.join("snapshot-staging")
    }

    pub(crate) fn network_config(&self) -> &NetworkConfig {
        &self.network_config
    }

    pub(crate) fn user_log_config(&self) -> LogConfig {
        self.user_log_config.clone()
    }

    /// The client TLS configuration of connections to other nodes (Raft, forwarded produces);
    /// its watcher is started by whoever runs the node.
    pub fn client_tls(&self) -> &Arc<ReloadingClientTls> {
        self.pool.tls()
    }

    /// The latest Raft metrics of this node.
    pub fn metrics(&self) -> Metrics {
        self.raft.metrics().borrow_watched().clone()
    }

    /// The current leader and its address, if known: the one openraft names, unless another
    /// node leads and has not been heard from within the contact bound (see
    /// `RaftNode::leader_out_of_touch`).
    pub fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.metrics();
        let leader = metrics
            .current_leader
            .filter(|&l| !self.leader_out_of_touch(l))?;
        let addr = metrics
            .membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())?;
        Some((leader, addr))
    }

    /// The leader's address when another node leads (where requests are forwarded).
    pub fn leader_elsewhere(&self) -> Option<String> {
        self.leader()
            .and_then(|(id, addr)| (id != self.node_id()).then_some(addr))
    }

    /// The channels to the other nodes (Raft and forwarded requests).
    pub(crate) fn pool(&self) -> &ChannelPool {
        &self.pool
    }

    /// Held while a membership change runs on this node, so changes never overlap.
    pub(crate) fn membership_changes(&self) -> &tokio::sync::Mutex<()> {
        &self.membership_changes
    }

    pub(super) fn local_bounds(&self) -> LogBounds {
        LogBounds {
            lowest: self.user_log.log().lowest_offset(),
            next: self.user_log.applied_end(),
        }
    }

    /// Appends `records` through Raft from any node: executed here when this node leads,
    /// forwarded to the leader otherwise. Resolves once committed and applied, with the offsets
    /// the leader assigned. `UNAVAILABLE` (never a hang) when there is no leader or no quorum
    /// within the propose timeout.
    pub async fn propose(&self, records: Vec<Record>) -> Result<Appended, BackendError> {
        self.ensure_core_running()?;
        let deadline = tokio::time::Instant::now() + self.propose_timeout;
        let outcome = tokio::time::timeout_at(deadline, async {
            match self.leader() {
                Some((leader, _)) if leader != self.node_id() => {
                    // Batched: concurrent produces on a follower share one forward RPC.
                    self.forwarder
                        .propose(records)
                        .await
                        .map(|applied| Appended {
                            first_offset: applied.first_offset,
                            count: applied.count,
                        })
                }
                _ => self.write_here(records, deadline).await,
            }
        })
        .await;
        outcome.unwrap_or_else(|_| Err(self.no_quorum_in_time()))
    }

    /// Appends `records` only if this node is the leader (forwarded produces end here).
    pub async fn propose_local(&self, records: Vec<Record>) -> Result<Appended, BackendError> {
        self.ensure_core_running()?;
        let deadline = tokio::time::Instant::now() + self.propose_timeout;
        let write = async { self.proposer.propose(records).await.map_err(write_error) };
        tokio::time::timeout_at(deadline, write)
            .await
            .unwrap_or_else(|_| Err(self.no_quorum_in_time()))
    }

    /// Starts appending `records` through Raft behind every append the caller started before
    /// (see [`crate::backend::LogBackend::append_in_order`]). On the leader they go to the Raft
    /// core as one entry and this resolves as soon as the core has it
    /// ([`super::proposer::write_in_order`]). Anywhere else the whole append runs before this
    /// resolves: forwards are separate RPCs and could overtake each other.
    pub async fn propose_in_order(
        &self,
        records: Vec<Record>,
    ) -> Result<QueuedAppend, BackendError> {
        self.ensure_core_running()?;
        if self.leader().map(|(id, _)| id) != Some(self.node_id()) {
            let outcome = self.propose(records).await;
            return Ok(Box::pin(std::future::ready(outcome)));
        }
        let deadline = tokio::time::Instant::now() + self.propose_timeout;
        let handed_over = write_in_order(&self.raft, &self.prometheus, records);
        let committed = match tokio::time::timeout_at(deadline, handed_over).await {
            Ok(handed_over) => handed_over.map_err(write_error)?,
            Err(_) => return Err(self.no_quorum_in_time()),
        };
        let late = self.no_quorum_in_time();
        Ok(Box::pin(async move {
            match tokio::time::timeout_at(deadline, committed).await {
                Ok(outcome) => outcome.map_err(write_error),
                Err(_) => Err(late),
            }
        }))
    }

    /// The answer for a produce that found no leader or no quorum within the propose timeout.
    fn no_quorum_in_time(&self) -> BackendError {
        BackendError::Unavailable(format!(
            "no leader or no quorum within {:?}; the produce may or may not have been committed; \
             retry in a second",
            self.propose_timeout
        ))
    }

    async fn write_here(
        &self,
        records: Vec<Record>,
        deadline: tokio::time::Instant,
    ) -> Result<Appended, BackendError> {
        // Records are `Bytes` inside, so keeping a copy for a possible forward is cheap.
        match self.proposer.propose(records.clone()).await {
            Ok(applied) => Ok(applied),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                // Rejected before it was appended: safe to send to the leader instead.
                match (forward.leader_id, forward.leader_node) {
                    (Some(id), Some(node))
                        if id != self.node_id() && !self.leader_out_of_touch(id) =>
                    {
                        forward_produce(&self.pool, &node.addr, records, deadline).await
                    }
                    _ => Err(no_leader_error(NOT_EXECUTED_MARK)),
                }
            }
            Err(e) => Err(write_error(e)),
        }
    }

    /// Voters of the current membership with their addresses; the leader marked.
    pub fn servers_now(&self) -> Vec<Server> {
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        let nodes: BTreeMap<NodeId, String> = membership
            .nodes()
            .map(|(id, node): (&NodeId, &BasicNode)| (*id, node.addr.clone()))
            .collect();
        membership
            .voter_ids()
            .map(|id| Server {
                id: id.to_string(),
                rpc_addr: nodes.get(&id).cloned().unwrap_or_default(),
                is_leader: metrics.current_leader == Some(id),
            })
            .collect()
    }

    /// Stops Raft and makes the applied position durable.
    pub async fn shutdown(&self) -> Result<(), BackendError> {
        self.core.stopping();
        self.raft
            .shutdown()
            .await
            .map_err(|e| BackendError::Storage(format!("stopping raft: {e}")))?;
        self.state_machine
            .persist_now()
            .await
            .map_err(|e| BackendError::Storage(e.to_string()))?;
        // Close both logs now rather than when the last handle drops, so the data directory is
        // released (and can be reopened) as soon as shutdown returns. Closing fsyncs: on a
        // blocking thread.
        let (user_log, raft_log) = (self.user_log.log().clone(), self.log_reader.clone());
        tokio::task::spawn_blocking(move || {
            user_log
                .close()
                .map_err(|e| BackendError::Storage(format!("closing the user log: {e}")))?;
            raft_log
                .close_log()
                .map_err(|e| BackendError::Storage(format!("closing the raft log: {e}")))
        })
        .await
        .map_err(|e| BackendError::Storage(format!("closing the logs: {e}")))?
    }

    /// This node's role.
    pub fn server_state(&self) -> ServerState {
        self.metrics().state
    }
}

pub use proglog_proto::retry::{NOT_EXECUTED_MARK, is_connect_failure};

fn write_error(
    error: RaftError<super::types::TypeConfig, ClientWriteError<super::types::TypeConfig>>,
) -> BackendError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            not_leader_error(&forward, NOT_EXECUTED_MARK)
        }
        RaftError::APIError(other) => BackendError::Unavailable(format!(
            "{other}; the produce may or may not have been committed; retry"
        )),
        RaftError::Fatal(fatal) => {
            BackendError::Unavailable(format!("raft stopped on this node: {fatal}"))
        }
    }
}
