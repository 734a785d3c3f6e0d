//! Starting the Raft side of a `proglog-node` process from its [`NodeConfig`] (`--raft true`):
//! the node's own certificate doubles as its client identity towards the other nodes (reloaded
//! like the server's; [`crate::run::run_node`] starts the watchers), the user-visible log uses
//! the configured segment limits, and the Raft and admin services join the node's one TLS port.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::node::{RaftNode, RaftNodeError};
use super::node_config::RaftNodeConfig;
use super::{AdminService, RaftService};
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::server::NodeServer;
use crate::tls::{ClientTlsFiles, ReloadingClientTls};

/// How often the certificates' expiry is read again for `proglog_tls_certificate_expiry_timestamp_seconds`.
const CERTIFICATE_EXPIRY_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Opens the Raft storage under the node's data directory and starts Raft.
pub async fn start_raft_node(
    config: &NodeConfig,
    metrics: Arc<Metrics>,
) -> Result<Arc<RaftNode>, RaftNodeError> {
    let client_tls = ReloadingClientTls::load(ClientTlsFiles {
        ca: config.tls.ca.clone(),
        cert: Some(config.tls.cert.clone()),
        key: Some(config.tls.key.clone()),
        server_name: None,
    })?;
    let ordinal = u32::try_from(config.ordinal)
        .map_err(|_| RaftNodeError::Start(format!("ordinal {} is too large", config.ordinal)))?;
    let mut raft_config = RaftNodeConfig::new(
        config.data_dir.clone(),
        ordinal,
        config.advertise_addr.clone(),
        client_tls,
    );
    raft_config.user_log = config.log.clone();
    raft_config.raft.snapshot_policy =
        openraft::SnapshotPolicy::LogsSinceLast(config.snapshots.entries);
    raft_config.raft.max_in_snapshot_log_to_keep = config.snapshots.keep_entries;
    // The operator renews certificates in place, so their expiry is read again now and then.
    crate::metrics::certificates::spawn_certificate_expiry_watcher(
        &metrics,
        vec![
            ("node", config.tls.cert.clone()),
            ("ca", config.tls.ca.clone()),
        ],
        CERTIFICATE_EXPIRY_INTERVAL,
    );
    raft_config.metrics = metrics;
    RaftNode::start(raft_config).await
}

/// Adds the `proglog.raft.v1.Raft` and `proglog.admin.v1.Admin` services to `server`; their
/// replication streams end when `stop_streams` fires (the server's shutdown).
pub fn add_raft_services(
    server: NodeServer,
    node: &Arc<RaftNode>,
    stop_streams: CancellationToken,
) -> NodeServer {
    let authorizer = server.authorizer();
    let raft = RaftService::new(Arc::clone(node), authorizer.clone()).stop_streams_on(stop_streams);
    server
        .add_service(raft.into_server())
        .add_service(AdminService::new(Arc::clone(node), authorizer).into_server())
}
