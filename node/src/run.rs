//! Runs a whole node from a [`NodeConfig`]: opens the log (single-node group commit, or Raft
//! with `--raft true`, whose services then join the same port), loads TLS and the ACL (and
//! watches their files), serves gRPC and the observability port, and shuts down gracefully —
//! or fail-stops when the Raft core stopped ([`RunError::CoreStopped`], see
//! [`crate::raft::fatal`]). [`RunError::exit_code`] is the process exit status.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::acl::{Acl, AclError};
use crate::backend::{BackendError, LocalBackend, LogBackend};
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::raft::fatal::CoreFailure;
use crate::server::{NodeServer, ServerError};
use crate::tls::{ReloadingServerTls, TlsError};

/// Why a node could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The node's certificate, key or CA cannot be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The ACL policy file cannot be loaded.
    #[error("ACL: {0}")]
    Acl(#[from] AclError),
    /// The single node's log could not be opened (locked, corrupt, or unreadable).
    #[error("opening the log in {dir}: {source}")]
    OpenLog {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Why opening failed.
        source: BackendError,
    },
    /// The plain HTTP port could not be bound.
    #[error("binding the metrics port {addr}: {source}")]
    BindMetrics {
        /// The address.
        addr: std::net::SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The Raft side could not start.
    #[error("starting Raft: {0}")]
    Raft(crate::raft::RaftNodeError),
    /// The Raft core stopped while the node ran (fail-stop: the node exits).
    #[error(transparent)]
    CoreStopped(#[from] CoreFailure),
}

impl RunError {
    /// Whether the error is caused by the configuration (bad files, unusable addresses), so
    /// the binary exits with the "invalid configuration" status.
    pub fn is_configuration_error(&self) -> bool {
        matches!(
            self,
            RunError::Tls(_)
                | RunError::Acl(_)
                | RunError::Raft(crate::raft::RaftNodeError::Tls(_))
                | RunError::BindMetrics { .. }
                | RunError::Server(ServerError::Bind { .. })
        )
    }

    /// The process exit status: 64 for configuration, 74 when storage failed (opening it, or
    /// the Raft core stopped on it), 70 when the Raft core panicked, 75 when it stopped
    /// otherwise, 1 for anything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            _ if self.is_configuration_error() => crate::config::EXIT_INVALID_CONFIG,
            RunError::CoreStopped(failure) => failure.exit_code(),
            RunError::OpenLog { .. } | RunError::Raft(crate::raft::RaftNodeError::Storage(_)) => {
                crate::raft::fatal::EXIT_STORAGE
            }
            _ => 1,
        }
    }
}

/// Longest a fail-stopping node spends closing (in-flight calls, final sync) before it exits
/// anyway: calls cannot succeed without the core, and the storage may be what hangs.
const FAIL_STOP_CLOSE_BOUND: Duration = Duration::from_secs(3);

/// How often retention runs when a retention policy is set.
const RETENTION_INTERVAL: Duration = Duration::from_secs(30);

/// Runs a single node until `shutdown` fires; returns once the log is synced and closed.
pub async fn run_node(config: NodeConfig, shutdown: CancellationToken) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let workers = runtime.metrics().num_workers();
        metrics
            .runtime_worker_threads
            .set(i64::try_from(workers).unwrap_or(i64::MAX));
    }
    let tls = ReloadingServerTls::load(config.tls.clone())?;
    let acl = Acl::load(&config.acl_file)?;

    // Raft mode (`--raft true`): records go through the cluster; the user-visible log is the
    // Raft state machine's (see crate::raft).
    let (backend, raft_node): (Arc<dyn LogBackend>, _) = if config.raft {
        let node = crate::raft::run::start_raft_node(&config, Arc::clone(&metrics))
            .await
            .map_err(|error| match error {
                // The same failure as when the running core stops, so the same exit and message.
                crate::raft::RaftNodeError::Core(failure) => RunError::CoreStopped(failure),
                other => RunError::Raft(other),
            })?;
        crate::raft::fatal::install_panic_hook(node.core().clone(), Arc::clone(&metrics));
        if config.retention != proglog_log::RetentionPolicy::default() {
            // Records an entry in the Raft log refers to stay: the leader may still send that
            // entry to a follower (entries leave the Raft log behind each snapshot).
            let raft_log = node.raft_log_reader();
            crate::storage::spawn_retention_keeping(
                Arc::clone(node.user_log().log()),
                config.retention.clone(),
                RETENTION_INTERVAL,
                move || {
                    raft_log
                        .oldest_referenced_offset()
                        .map_err(|e| e.to_string())
                },
            );
        }
        let backend = Arc::new(crate::raft::RaftBackend::new(Arc::clone(&node)));
        (backend, Some(node))
    } else {
        let local = open_local_backend(&config, Arc::clone(&metrics)).await?;
        (Arc::new(local), None)
    };

    let watchers = shutdown.child_token();
    tls.spawn_watcher(config.reload_interval, watchers.clone());
    if let Some(node) = &raft_node {
        // The node's connections to its peers present the same (renewed) certificate.
        node.client_tls()
            .spawn_watcher(config.reload_interval, watchers.clone());
    }
    acl.spawn_watcher(config.reload_interval, watchers.clone());

    let server = NodeServer::new(
        Arc::clone(&backend),
        acl,
        tls,
        Arc::clone(&metrics),
        config.limits.clone(),
    )
    .shutdown_grace(config.shutdown_grace);
    // The server stops after the node has left (see `leave_then_stop`), not at the signal.
    let stop_serving = CancellationToken::new();
    let server = match &raft_node {
        Some(node) => crate::raft::run::add_raft_services(server, node, stop_serving.clone()),
        None => server,
    };
    let health = server.health_routes();
    let bound = server.bind(config.bind_addr).await?;

    let metrics_listener = tokio::net::TcpListener::bind(config.metrics_addr)
        .await
        .map_err(|source| RunError::BindMetrics {
            addr: config.metrics_addr,
            source,
        })?;
    let metrics_addr = metrics_listener
        .local_addr()
        .map_err(|source| RunError::BindMetrics {
            addr: config.metrics_addr,
            source,
        })?;
    let http = tokio::spawn(crate::metrics::http::serve(
        metrics_listener,
        metrics,
        Arc::clone(&backend),
        health,
        shutdown.clone(),
    ));
    tracing::info!(
        grpc = %bound.local_addr(),
        metrics = %metrics_addr,
        advertise = %config.advertise_addr,
        data_dir = %config.data_dir.display(),
        "proglog node serving"
    );
    // Serve until shut down, or until the Raft core stops: then, after the exit delay (probes
    // fail with the reason meanwhile), stop serving within a bound and report the failure.
    let leaving = tokio::spawn(leave_then_stop(
        raft_node.clone(),
        shutdown.clone(),
        stop_serving.clone(),
    ));
    let serving = bound.serve(stop_serving.clone());
    tokio::pin!(serving);
    let core_failed = async {
        match &raft_node {
            Some(node) => node.core().failed().await,
            None => std::future::pending().await,
        }
    };
    let served = tokio::select! {
        served = &mut serving => served,
        failure = core_failed => {
            crate::raft::fatal::announce(&failure, config.fatal_exit_delay, &shutdown).await;
            shutdown.cancel();
            // No hand-over from a stopped core: stop serving at once.
            leaving.abort();
            stop_serving.cancel();
            if let Ok(Err(error)) = tokio::time::timeout(FAIL_STOP_CLOSE_BOUND, &mut serving).await {
                tracing::warn!(%error, "closing after the Raft core stopped");
            }
            watchers.cancel();
            return Err(RunError::CoreStopped(failure));
        }
    };
    watchers.cancel();
    leaving.abort();
    match http.await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "metrics port failed"),
        Err(error) => tracing::warn!(%error, "metrics task failed"),
    }
    served?;
    Ok(())
}

/// On `shutdown` (SIGTERM): a Raft node first leaves the cluster — stops campaigning and, if it
/// leads, hands leadership over (bounded by [`crate::raft::handover::HANDOVER_BOUND`]) while its
/// port still serves the new leader's votes — then `stop_serving` stops the server (no new
/// calls, streams end, in-flight unary calls finish within the grace).
async fn leave_then_stop(
    raft_node: Option<Arc<crate::raft::RaftNode>>,
    shutdown: CancellationToken,
    stop_serving: CancellationToken,
) {
    shutdown.cancelled().await;
    if let Some(node) = raft_node {
        let handover = node.leave().await;
        tracing::info!(?handover, "left the cluster; stopping the server");
    }
    stop_serving.cancel();
}

/// Opens the single-node group-commit log (recovery may take a while: off the async threads)
/// and starts retention if configured.
async fn open_local_backend(
    config: &NodeConfig,
    metrics: Arc<Metrics>,
) -> Result<LocalBackend, RunError> {
    let open = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            LocalBackend::open(
                &config.data_dir,
                config.log.clone(),
                config.group_commit.clone(),
                metrics,
                format!("proglog-{}", config.ordinal),
                config.advertise_addr.clone(),
            )
        })
    };
    let local = open
        .await
        .map_err(|e| RunError::OpenLog {
            dir: config.data_dir.clone(),
            source: BackendError::Storage(e.to_string()),
        })?
        .map_err(|source| RunError::OpenLog {
            dir: config.data_dir.clone(),
            source,
        })?;
    if config.retention != proglog_log::RetentionPolicy::default() {
        crate::storage::spawn_retention(
            Arc::clone(local.log()),
            config.retention.clone(),
            RETENTION_INTERVAL,
        );
    }
    Ok(local)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested");
}
