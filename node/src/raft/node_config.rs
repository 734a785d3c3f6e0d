//! How a node's Raft side is configured: [`RaftNodeConfig`] (paths, identity, limits, timeouts)
//! and the openraft settings ProgLog runs with ([`default_raft_config`]), with the reason for
//! each setting that departs from openraft's defaults.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use proglog_log::LogConfig;

use super::network::NetworkConfig;
use crate::metrics::Metrics as NodeMetrics;
use crate::tls::ReloadingClientTls;

/// Everything needed to start a node's Raft side.
#[derive(Debug, Clone)]
pub struct RaftNodeConfig {
    /// The node's data directory.
    pub data_dir: PathBuf,
    /// StatefulSet ordinal (low digits of the node id).
    pub ordinal: u32,
    /// The `host:port` other nodes and clients reach this node at.
    pub advertise_addr: String,
    /// openraft timing and snapshot policy.
    pub raft: openraft::Config,
    /// Limits of the user-visible log.
    pub user_log: LogConfig,
    /// Limits of the Raft log (its segments are the unit of purging).
    pub raft_log: LogConfig,
    /// Transport timeouts and buffering.
    pub network: NetworkConfig,
    /// TLS for connections to other nodes (the node certificate as client identity); new
    /// connections follow its reloads.
    pub client_tls: Arc<ReloadingClientTls>,
    /// Longest a produce may wait for a leader and a quorum before `UNAVAILABLE`.
    pub propose_timeout: Duration,
    /// Prometheus metrics the node updates: records applied, Raft log fsyncs, records per entry.
    pub metrics: Arc<NodeMetrics>,
}

impl RaftNodeConfig {
    /// Production defaults for a node at `data_dir` reachable at `advertise_addr`.
    pub fn new(
        data_dir: PathBuf,
        ordinal: u32,
        advertise_addr: String,
        client_tls: Arc<ReloadingClientTls>,
    ) -> Self {
        Self {
            data_dir,
            ordinal,
            advertise_addr,
            raft: default_raft_config(),
            user_log: LogConfig::default(),
            raft_log: LogConfig {
                max_record_bytes: 64 * 1024 * 1024,
                max_store_bytes: 128 * 1024 * 1024,
                ..LogConfig::default()
            },
            network: NetworkConfig::default(),
            client_tls,
            propose_timeout: Duration::from_secs(10),
            metrics: Arc::new(NodeMetrics::new()),
        }
    }
}

/// openraft settings ProgLog runs with.
pub fn default_raft_config() -> openraft::Config {
    openraft::Config {
        cluster_name: "proglog".into(),
        heartbeat_interval: 100,
        election_timeout_min: 500,
        election_timeout_max: 1000,
        // Snapshots are cheap (a view of the user log), so take them often enough to keep the
        // Raft log short; keep some entries so a briefly lagging follower needs no snapshot.
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(20_000),
        max_in_snapshot_log_to_keep: 5_000,
        max_payload_entries: 1024,
        // A node that cannot hear the leader first asks whether a quorum would vote for it, so
        // a cut-off, restarted or paused follower does not inflate its term and depose a
        // healthy leader when it comes back (tests/raft_pre_vote.rs).
        enable_pre_vote: Some(true),
        // A restarted leader must win an election like any other node, never resume its old
        // term from its persisted vote: a leader replicates entries before its own fsync
        // finishes, so a crash can leave its disk without entries its followers committed, and
        // resuming the term would append different entries under the same log ids, which the
        // followers keep as "already there" (the logs diverge; tests/raft_restarted_leader.rs).
        enable_leader_restore: Some(false),
        ..Default::default()
    }
}
