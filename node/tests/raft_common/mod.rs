//! In-process Raft clusters for the `raft_*` integration tests: every node is a real
//! `NodeServer` on its own 127.0.0.1 port with mutual TLS (dev CA), the ACL, the Raft and admin
//! services, talking to the others over gRPC exactly as separate processes would.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use proglog_cli::dev_ca::write_dev_certs;
use proglog_log::LogConfig;
use proglog_node::acl::Acl;
use proglog_node::backend::{
    Appended, BackendFuture, Consistency, LogBackend, LogBounds, QueuedAppend,
};
use proglog_node::metrics::Metrics;
use proglog_node::raft::{AdminService, RaftBackend, RaftNode, RaftNodeConfig, RaftService};
use proglog_node::server::{NodeServer, ServerLimits};
use proglog_node::test_ports::reserve_port;
use proglog_node::tls::{
    ClientTlsFiles, ReloadingClientTls, ReloadingServerTls, ServerTlsFiles, client_tls_config,
};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{ConsumeRequest, ProduceRequest, Record, Server};
use proglog_proto::proglog::admin::v1::admin_client::AdminClient;
use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, ClusterStatusRequest, InitializeRequest, Member, PromoteVoterRequest,
};
use tempfile::TempDir;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// Generous bound for anything a test waits for (elections, replication, catch-up).
pub const WAIT: Duration = Duration::from_secs(30);

pub struct RunningNode {
    pub node: Arc<RaftNode>,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

pub struct TestCluster {
    pub dir: TempDir,
    pub certs: PathBuf,
    pub addrs: Vec<String>,
    pub nodes: Vec<Option<RunningNode>>,
    /// Adjusts each node's configuration before it starts (snapshot policy, segment sizes).
    pub tune: fn(&mut RaftNodeConfig),
    /// When set, nodes started afterwards watch their certificate files (server and client
    /// side) at this interval, as `proglog-node` does.
    pub tls_reload_interval: Option<Duration>,
    /// When set, nodes started afterwards reload `certs/acl.csv` when it changes, polling at
    /// this interval, as `proglog-node` does.
    pub acl_reload_interval: Option<Duration>,
}

pub fn fast_raft_config() -> openraft::Config {
    openraft::Config {
        heartbeat_interval: 50,
        election_timeout_min: 300,
        election_timeout_max: 600,
        ..proglog_node::raft::default_raft_config()
    }
}

fn no_tuning(_: &mut RaftNodeConfig) {}

impl TestCluster {
    /// `size` stopped nodes with fresh data directories and ports.
    pub fn new(size: usize) -> Self {
        Self::with_tuning(size, no_tuning)
    }

    pub fn with_tuning(size: usize, tune: fn(&mut RaftNodeConfig)) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let certs = dir.path().join("certs");
        write_dev_certs(&certs).expect("dev certificates");
        let addrs = (0..size)
            .map(|_| format!("127.0.0.1:{}", reserve_port()))
            .collect();
        Self {
            dir,
            certs,
            addrs,
            nodes: (0..size).map(|_| None).collect(),
            tune,
            tls_reload_interval: None,
            acl_reload_interval: None,
        }
    }

    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}"))
    }

    fn client_files(&self, identity: &str) -> ClientTlsFiles {
        ClientTlsFiles {
            ca: self.certs.join("ca.pem"),
            cert: Some(self.certs.join(format!("{identity}.pem"))),
            key: Some(self.certs.join(format!("{identity}-key.pem"))),
            server_name: None,
        }
    }

    /// Starts (or restarts) node `i` on its port with its data directory.
    pub async fn start(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is already running");
        let client_tls =
            ReloadingClientTls::load(self.client_files("node")).expect("node client tls");
        let mut config = RaftNodeConfig::new(
            self.data_dir(i),
            i as u32,
            self.addrs[i].clone(),
            client_tls,
        );
        config.raft = fast_raft_config();
        config.propose_timeout = Duration::from_secs(5);
        (self.tune)(&mut config);
        let node = RaftNode::start(config).await.expect("start raft node");
        let (shutdown, task) = self.serve(i, node.clone()).await;
        self.nodes[i] = Some(RunningNode {
            node,
            shutdown,
            task,
        });
    }

    /// Serves `node` on node `i`'s port: a fresh server (and certificate watchers) for a Raft
    /// node that may have run behind an earlier server.
    async fn serve(&self, i: usize, node: Arc<RaftNode>) -> (CancellationToken, JoinHandle<()>) {
        let tls = ReloadingServerTls::load(ServerTlsFiles {
            cert: self.certs.join("node.pem"),
            key: self.certs.join("node-key.pem"),
            ca: self.certs.join("ca.pem"),
        })
        .expect("server tls");
        let shutdown = CancellationToken::new();
        if let Some(interval) = self.tls_reload_interval {
            // Stopped with this server.
            tls.spawn_watcher(interval, shutdown.child_token());
            node.client_tls()
                .spawn_watcher(interval, shutdown.child_token());
        }
        let acl = Acl::load(&self.certs.join("acl.csv")).expect("acl");
        if let Some(interval) = self.acl_reload_interval {
            // Stopped with this server.
            acl.spawn_watcher(interval, shutdown.child_token());
        }
        let server = NodeServer::new(
            Arc::new(ServedRaftBackend(RaftBackend::new(node.clone()))),
            acl,
            tls,
            Arc::new(Metrics::new()),
            ServerLimits::default(),
        )
        .shutdown_grace(Duration::from_secs(1));
        let authorizer = server.authorizer();
        let server = server
            .add_service(RaftService::new(node.clone(), authorizer.clone()).into_server())
            .add_service(AdminService::new(node.clone(), authorizer).into_server());
        // The previous server's listener may still be closing.
        let addr = self.addrs[i].parse().expect("socket address");
        let deadline = tokio::time::Instant::now() + WAIT;
        while let Err(e) = tokio::net::TcpListener::bind(addr).await {
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} port stays busy: {e}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let bound = server.bind(addr).await.expect("bind node port");
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            if let Err(e) = bound.serve(token).await {
                eprintln!("node server stopped with an error: {e}");
            }
        });
        (shutdown, task)
    }

    /// Replaces node `i`'s server while its Raft side keeps running: every connection a peer
    /// opens afterwards is a new one (the old ones were told to go away).
    pub async fn restart_server(&mut self, i: usize) {
        let running = self.nodes[i].take().expect("node is running");
        running.shutdown.cancel();
        tokio::time::timeout(WAIT, running.task)
            .await
            .expect("server stops")
            .expect("server task");
        let (shutdown, task) = self.serve(i, running.node.clone()).await;
        self.nodes[i] = Some(RunningNode {
            node: running.node,
            shutdown,
            task,
        });
    }

    /// Stops node `i`'s server while its Raft side keeps running: the others cannot reach it
    /// (their connections are refused) but it still reaches them, as a node behind a one-way
    /// partition. [`TestCluster::serve_again`] heals it.
    pub async fn stop_serving(&mut self, i: usize) {
        let running = self.nodes[i].as_mut().expect("node is running");
        running.shutdown.cancel();
        let task = std::mem::replace(&mut running.task, tokio::spawn(async {}));
        tokio::time::timeout(WAIT, task)
            .await
            .expect("server stops")
            .expect("server task");
    }

    /// Serves node `i` again after [`TestCluster::stop_serving`].
    pub async fn serve_again(&mut self, i: usize) {
        let node = self.node(i).clone();
        let (shutdown, task) = self.serve(i, node).await;
        let running = self.nodes[i].as_mut().expect("node is running");
        running.shutdown = shutdown;
        running.task = task;
    }

    /// Stops node `i` (its server, then Raft); its data directory stays.
    pub async fn stop(&mut self, i: usize) {
        let running = self.nodes[i].take().expect("node is running");
        running.shutdown.cancel();
        tokio::time::timeout(WAIT, running.task)
            .await
            .expect("node stops")
            .expect("server task");
        // The server leaves Raft running (see `ServedRaftBackend`): stop it here.
        let _ = running.node.shutdown().await;
    }

    pub fn node(&self, i: usize) -> &Arc<RaftNode> {
        &self.nodes[i].as_ref().expect("node is running").node
    }

    pub async fn channel(&self, i: usize, identity: &str) -> Channel {
        let tls = client_tls_config(&self.client_files(identity)).expect("client tls");
        Endpoint::from_shared(format!("https://{}", self.addrs[i]))
            .expect("endpoint")
            .tls_config(tls)
            .expect("tls config")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    pub async fn log_client(&self, i: usize) -> LogClient<Channel> {
        LogClient::new(self.channel(i, "root").await)
    }

    pub async fn admin(&self, i: usize) -> AdminClient<Channel> {
        AdminClient::new(self.channel(i, "root").await)
    }

    pub fn member(&self, i: usize) -> Member {
        Member {
            node_id: self.node(i).node_id(),
            rpc_addr: self.addrs[i].clone(),
        }
    }

    /// Starts every node, initializes node 0 and adds the others as learners then voters, the
    /// way an operator (or `make run`) does.
    pub async fn start_all_and_form(&mut self) {
        for i in 0..self.addrs.len() {
            self.start(i).await;
        }
        let mut admin = self.admin(0).await;
        admin
            .initialize(InitializeRequest { members: vec![] })
            .await
            .expect("initialize node 0");
        self.wait_for_leader_among(&[0]).await;
        for i in 1..self.addrs.len() {
            let member = self.member(i);
            admin
                .add_learner(AddLearnerRequest {
                    member: Some(member),
                    wait_caught_up: true,
                })
                .await
                .expect("add learner");
            admin
                .promote_voter(PromoteVoterRequest {
                    node_id: self.node(i).node_id(),
                })
                .await
                .expect("promote voter");
        }
    }

    /// Waits until the running nodes among `candidates` agree on a leader among them; returns
    /// its index.
    pub async fn wait_for_leader_among(&self, candidates: &[usize]) -> usize {
        let ids: Vec<u64> = candidates.iter().map(|&i| self.node(i).node_id()).collect();
        wait_until("a leader is elected", || {
            let leaders: Vec<Option<u64>> = candidates
                .iter()
                .map(|&i| self.node(i).metrics().current_leader)
                .collect();
            match leaders.first().copied().flatten() {
                Some(leader)
                    if ids.contains(&leader) && leaders.iter().all(|l| *l == Some(leader)) =>
                {
                    candidates
                        .iter()
                        .copied()
                        .find(|&i| self.node(i).node_id() == leader)
                }
                _ => None,
            }
        })
        .await
    }

    pub async fn leader_status_term(&self, i: usize) -> u64 {
        let mut admin = self.admin(i).await;
        admin
            .cluster_status(ClusterStatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .term
    }

    /// Waits until node `i` holds `next` records.
    pub async fn wait_for_next_offset(&self, i: usize, next: u64) {
        let node = self.node(i).clone();
        wait_until(&format!("node {i} reaches offset {next}"), || {
            (node.user_log().applied_end() == next).then_some(())
        })
        .await
    }

    /// Every record of node `i`, in offset order.
    pub fn records(&self, i: usize) -> Vec<Bytes> {
        let log = self.node(i).user_log();
        (log.log().lowest_offset()..log.applied_end())
            .map(|o| {
                log.read_applied(o, proglog_log::Wait::Disk)
                    .expect("read record")
            })
            .collect()
    }
}

/// Polls `check` every 20 ms until it yields a value; panics after [`WAIT`].
pub async fn wait_until<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Produces `value` through node `i`'s `log.v1` API; returns the offset.
/// `GetLogBounds(LINEARIZABLE)` as `(lowest, next)`. A hang is the failure this guards against:
/// the timeout turns it into a clear panic.
pub async fn linearizable_bounds(
    client: &mut LogClient<Channel>,
) -> Result<(u64, u64), tonic::Status> {
    let request = proglog_proto::log::v1::GetLogBoundsRequest {
        consistency: proglog_proto::log::v1::Consistency::Linearizable as i32,
    };
    let reply = tokio::time::timeout(WAIT, client.get_log_bounds(request))
        .await
        .expect("GetLogBounds(LINEARIZABLE) answers instead of hanging")?
        .into_inner();
    Ok((reply.lowest_offset, reply.next_offset))
}

pub async fn produce(
    client: &mut LogClient<Channel>,
    value: impl Into<Bytes>,
) -> Result<u64, tonic::Status> {
    client
        .produce(ProduceRequest {
            record: Some(Record {
                value: value.into(),
                ..Default::default()
            }),
        })
        .await
        .map(|r| r.into_inner().offset)
}

pub async fn consume(
    client: &mut LogClient<Channel>,
    offset: u64,
) -> Result<Record, tonic::Status> {
    client
        .consume(ConsumeRequest { offset })
        .await
        .map(|r| r.into_inner().record.expect("record"))
}

pub fn small_segments(config: &mut RaftNodeConfig) {
    config.raft_log = LogConfig {
        max_store_bytes: 4096,
        ..config.raft_log.clone()
    };
}

/// The Raft backend as a test server sees it, except that stopping the server leaves Raft
/// running, so a node's server can be replaced ([`TestCluster::restart_server`]);
/// [`TestCluster::stop`] stops Raft itself.
#[derive(Debug)]
struct ServedRaftBackend(RaftBackend);

impl LogBackend for ServedRaftBackend {
    fn append(&self, records: Vec<Record>) -> BackendFuture<'_, Appended> {
        self.0.append(records)
    }

    fn read(&self, offset: u64) -> BackendFuture<'_, Record> {
        self.0.read(offset)
    }

    fn read_run(&self, from: u64, max_bytes: u64) -> BackendFuture<'_, Vec<Record>> {
        self.0.read_run(from, max_bytes)
    }

    fn bounds(&self, consistency: Consistency) -> BackendFuture<'_, LogBounds> {
        self.0.bounds(consistency)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }

    fn servers(&self) -> BackendFuture<'_, Vec<Server>> {
        self.0.servers()
    }

    fn liveness(&self) -> Result<(), String> {
        self.0.liveness()
    }

    fn readiness(&self) -> Result<(), String> {
        self.0.readiness()
    }

    fn liveness_lost(&self) -> futures::future::BoxFuture<'_, ()> {
        self.0.liveness_lost()
    }

    fn append_in_order(&self, records: Vec<Record>) -> BackendFuture<'_, QueuedAppend> {
        self.0.append_in_order(records)
    }

    fn segment_count(&self) -> Option<usize> {
        self.0.segment_count()
    }

    fn shutdown(&self) -> BackendFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
}
