//! Shared fixtures of the `server_*` integration tests: a real single node on 127.0.0.1:0 with
//! real mutual TLS from the dev CA, and clients with chosen identities.
#![allow(dead_code)] // each test binary uses a different subset

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proglog_cli::dev_ca::{CertUsage, DevCa, PemPair, write_dev_certs};
use proglog_log::LogConfig;
use proglog_node::acl::Acl;
use proglog_node::backend::{GroupCommitConfig, LocalBackend, LogBackend};
use proglog_node::metrics::Metrics;
use proglog_node::server::{NodeServer, ServerError, ServerLimits};
use proglog_node::tls::{ClientTlsFiles, ReloadingServerTls, ServerTlsFiles, client_tls_config};
use proglog_proto::log::v1::log_client::LogClient;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Channel, Endpoint};

/// Generous upper bound for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running node and its files.
pub struct TestNode {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub dir: TempDir,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<Result<(), ServerError>>>,
    pub backend: Arc<dyn LogBackend>,
    /// The same backend, concretely (for retention and storage-level checks).
    pub local: Arc<LocalBackend>,
    pub metrics: Arc<Metrics>,
    pub tls: Arc<ReloadingServerTls>,
    pub acl: Arc<Acl>,
}

/// Builds what a test node serves in front of its local backend.
pub type WrapBackend = Box<dyn FnOnce(Arc<LocalBackend>) -> Arc<dyn LogBackend>>;

/// Node options the tests vary.
pub struct NodeOptions {
    pub limits: ServerLimits,
    pub with_metrics_port: bool,
    pub shutdown_grace: Duration,
    pub log: LogConfig,
    /// What the server serves in front of the local backend (itself when `None`).
    pub wrap_backend: Option<WrapBackend>,
}

impl Default for NodeOptions {
    fn default() -> Self {
        let mut limits = ServerLimits::default();
        limits.service.max_record_bytes = 64 * 1024;
        limits.max_message_bytes = 256 * 1024;
        Self {
            limits,
            with_metrics_port: false,
            shutdown_grace: Duration::from_secs(5),
            log: LogConfig::default(),
            wrap_backend: None,
        }
    }
}

impl TestNode {
    pub async fn start() -> Self {
        Self::start_with(NodeOptions::default()).await
    }

    pub async fn start_with(options: NodeOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write_dev_certs(&dir.path().join("certs")).unwrap();
        Self::start_in(dir, options).await
    }

    /// Starts a node over an existing directory (certs in `certs/`, log in `data/`).
    pub async fn start_in(dir: TempDir, options: NodeOptions) -> Self {
        let certs = dir.path().join("certs");
        let metrics = Arc::new(Metrics::new());
        let local = LocalBackend::open(
            &dir.path().join("data"),
            options.log.clone(),
            GroupCommitConfig::default(),
            Arc::clone(&metrics),
            "proglog-0".to_owned(),
            "127.0.0.1:0".to_owned(),
        )
        .unwrap();
        let local = Arc::new(local);
        let backend: Arc<dyn LogBackend> = match options.wrap_backend {
            Some(wrap) => wrap(local.clone()),
            None => local.clone(),
        };
        let tls = ReloadingServerTls::load(ServerTlsFiles {
            cert: certs.join("node.pem"),
            key: certs.join("node-key.pem"),
            ca: certs.join("ca.pem"),
        })
        .unwrap();
        let acl = Acl::load(&certs.join("acl.csv")).unwrap();
        let shutdown = CancellationToken::new();
        let server = NodeServer::new(
            Arc::clone(&backend),
            Arc::clone(&acl),
            Arc::clone(&tls),
            Arc::clone(&metrics),
            options.limits,
        )
        .shutdown_grace(options.shutdown_grace);
        let health = server.health_routes();
        let bound = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = bound.local_addr();
        let metrics_addr = if options.with_metrics_port {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let metrics_addr = listener.local_addr().unwrap();
            tokio::spawn(proglog_node::metrics::http::serve(
                listener,
                Arc::clone(&metrics),
                Arc::clone(&backend),
                health,
                shutdown.clone(),
            ));
            Some(metrics_addr)
        } else {
            None
        };
        let handle = tokio::spawn(bound.serve(shutdown.clone()));
        Self {
            addr,
            metrics_addr,
            dir,
            shutdown,
            handle: Some(handle),
            backend,
            local,
            metrics,
            tls,
            acl,
        }
    }

    pub fn certs(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Stops the node gracefully and returns its directory.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(PATIENCE, handle)
                .await
                .expect("server stops within the patience")
                .unwrap()
                .unwrap();
        }
        self.dir
    }

    /// Client TLS files for a dev identity (`root`, `nobody`), or none.
    pub fn client_files(&self, identity: Option<&str>) -> ClientTlsFiles {
        let certs = self.certs();
        ClientTlsFiles {
            ca: certs.join("ca.pem"),
            cert: identity.map(|id| certs.join(format!("{id}.pem"))),
            key: identity.map(|id| certs.join(format!("{id}-key.pem"))),
            server_name: Some("localhost".to_owned()),
        }
    }

    /// A connected client (panics if the connection fails).
    pub async fn client(&self, identity: Option<&str>) -> LogClient<Channel> {
        LogClient::new(self.channel(identity).await.expect("connect"))
    }

    /// The number of records in the node's log (its local `next`), read as `root`.
    pub async fn log_length(&self) -> u64 {
        self.client(Some("root"))
            .await
            .get_log_bounds(proglog_proto::log::v1::GetLogBoundsRequest {
                consistency: proglog_proto::log::v1::Consistency::Local as i32,
            })
            .await
            .expect("GetLogBounds")
            .into_inner()
            .next_offset
    }

    pub async fn channel(
        &self,
        identity: Option<&str>,
    ) -> Result<Channel, tonic::transport::Error> {
        connect(self.addr, &self.client_files(identity)).await
    }

    /// Issues `identity` a client certificate from this node's CA that expired yesterday (valid
    /// for the 29 days before), saved as `name`.
    pub fn issue_expired_client(&self, name: &str, identity: &str) -> ClientTlsFiles {
        self.issue_client(name, |ca| {
            let now = time::OffsetDateTime::now_utc();
            ca.issue_between(
                identity,
                &[],
                CertUsage::Client,
                now - time::Duration::days(30),
                now - time::Duration::days(1),
            )
            .expect("issue an expired certificate")
        })
    }

    /// Issues a client certificate from this node's CA into the certs directory.
    pub fn issue_client(&self, name: &str, pair: impl FnOnce(&DevCa) -> PemPair) -> ClientTlsFiles {
        let certs = self.certs();
        let ca = DevCa::from_pem(
            &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
            &std::fs::read_to_string(certs.join("ca-key.pem")).unwrap(),
        )
        .unwrap();
        write_pair(&certs, name, &pair(&ca))
    }
}

/// Writes `NAME.pem` and `NAME-key.pem` and returns client files using them with the node's CA.
pub fn write_pair(certs: &Path, name: &str, pair: &PemPair) -> ClientTlsFiles {
    let cert = certs.join(format!("{name}.pem"));
    let key = certs.join(format!("{name}-key.pem"));
    std::fs::write(&cert, &pair.cert_pem).unwrap();
    std::fs::write(&key, &pair.key_pem).unwrap();
    ClientTlsFiles {
        ca: certs.join("ca.pem"),
        cert: Some(cert),
        key: Some(key),
        server_name: Some("localhost".to_owned()),
    }
}

/// A client certificate for `cn` from a brand-new, unrelated CA.
pub fn foreign_pair(cn: &str) -> PemPair {
    DevCa::generate("some other CA")
        .unwrap()
        .issue(cn, &[], CertUsage::Client, Duration::from_secs(3600))
        .unwrap()
}

pub async fn connect(
    addr: SocketAddr,
    files: &ClientTlsFiles,
) -> Result<Channel, tonic::transport::Error> {
    let tls = client_tls_config(files).unwrap();
    Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)?
        .connect_timeout(PATIENCE)
        .connect()
        .await
}

pub fn record(value: &str) -> proglog_proto::log::v1::Record {
    proglog_proto::log::v1::Record {
        value: value.as_bytes().to_vec().into(),
        ..Default::default()
    }
}

/// Waits (up to the patience) for `condition` to hold, polling its async check.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
