//! The node's rustls server configuration and its hot reload.
//!
//! New connections take the configuration current at accept time; established connections keep
//! the one they were made with, so a certificate rotation never drops a healthy connection.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::{
    ServerTlsFiles, TlsError, crypto_provider, load_certs, load_private_key, load_root_store,
};

/// Builds a server configuration from PEM files: the node's certificate, and client certificates
/// verified against the CA. A client without a certificate may still connect (health checks need
/// no identity); such callers are refused with `UNAUTHENTICATED` by the ACL layer. A client
/// certificate that does not verify (another CA, expired) fails the handshake.
pub fn build_server_config(files: &ServerTlsFiles) -> Result<ServerConfig, TlsError> {
    let provider = crypto_provider();
    let roots = Arc::new(load_root_store(&files.ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()?;
    let chain = load_certs(&files.cert)?;
    let key = load_private_key(&files.key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    // gRPC runs over HTTP/2 only.
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A server TLS configuration that follows its files.
#[derive(Debug)]
pub struct ReloadingServerTls {
    files: ServerTlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ReloadingServerTls {
    /// Loads the files once; fails if they do not form a valid configuration.
    pub fn load(files: ServerTlsFiles) -> Result<Arc<Self>, TlsError> {
        let config = build_server_config(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(config)),
        }))
    }

    /// An acceptor using the configuration current now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.current.read().clone())
    }

    /// Rebuilds the configuration from the files. On error the previous configuration stays in
    /// use (a half-written Secret must not take the node down).
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = build_server_config(&self.files)?;
        *self.current.write() = Arc::new(config);
        Ok(())
    }

    /// Reloads whenever the certificate, key or CA file changes, until `cancel` fires.
    pub fn spawn_watcher(
        self: &Arc<Self>,
        interval: Duration,
        cancel: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        super::watch::spawn_watcher(
            "tls",
            self.files.paths(),
            interval,
            cancel,
            move || match this.reload() {
                Ok(()) => {
                    tracing::info!("reloaded TLS certificates");
                    true
                }
                Err(error) => {
                    tracing::warn!(%error, "keeping the previous TLS certificates");
                    false
                }
            },
        )
    }
}
