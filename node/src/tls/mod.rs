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
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

pub use client::{ClientTlsFiles, ReloadingClientTls, client_tls_config};
pub use identity::identity_of;
pub use server::{ReloadingServerTls, build_server_config};

/// Failures while loading certificates or building a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file holds no PEM certificate (or is not PEM).
    #[error("{path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The file holds no PEM private key (or is not PEM).
    #[error("{path} holds no PEM private key")]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The file is damaged PEM.
    #[error("{path} is not valid PEM: {reason}")]
    BadPem {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
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
    /// Only one of certificate and key was given.
    #[error("a client certificate needs both a certificate file and a key file")]
    IncompleteClientIdentity,
    /// The key does not belong to the certificate (e.g. read in the middle of a rotation).
    #[error("the certificate and key do not form a usable TLS identity: {0}")]
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

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate in a PEM file (a chain or a CA bundle); at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadPem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
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
