//! Mutual TLS for the node: loading PEM files, the rustls server configuration (client
//! certificates verified against the CA but optional at the handshake, so health checks work
//! without one and other RPCs answer `UNAUTHENTICATED`), reloading certificates and CA when their
//! files change (server side and the node's own client side), client configurations, and caller
//! identities taken from verified certificates.
//!
//! The whole workspace uses one rustls crypto provider: `ring`.

mod client;
mod identity;
mod server;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use client::ReloadingClientTls;
pub use identity::identity_of;
/// The PEM loaders are the client library's: the node dials its peers exactly as clients do.
pub use proglog_client::tls_files::{
    ClientTlsFiles, TlsFileError, client_tls_config, load_certs, load_private_key,
};
pub use server::{ReloadingServerTls, build_server_config};

/// Failures while loading certificates or building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate, key or CA file cannot be used (read, parsed, or the key does not match).
    #[error(transparent)]
    File(#[from] TlsFileError),
    /// A certificate of the CA file cannot be a trust anchor.
    #[error("invalid CA certificate in {path}: {source}")]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Why rustls refused it.
        source: rustls::Error,
    },
    /// The verifier of client certificates could not be built from the CA.
    #[error("building the client-certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// rustls refused the server configuration built from valid files.
    #[error("building the server TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the PEM files a node serves with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// The node's certificate chain (leaf first).
    pub cert: PathBuf,
    /// The private key of `cert`.
    pub key: PathBuf,
    /// The CA that client certificates must chain to.
    pub ca: PathBuf,
}

impl ServerTlsFiles {
    /// All three paths, for change detection.
    pub fn paths(&self) -> Vec<PathBuf> {
        vec![self.cert.clone(), self.key.clone(), self.ca.clone()]
    }
}

/// The one crypto provider of the workspace.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A root store holding every certificate of the CA file.
pub fn load_root_store(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|source| TlsError::BadCa {
            path: path.to_path_buf(),
            source,
        })?;
    }
    Ok(roots)
}
