//! TLS settings for clients of a node (the CLI, tests, other nodes): trust the cluster CA and
//! present a client certificate.

use std::path::PathBuf;

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use super::TlsError;

/// PEM files a client connects with. Without `cert`/`key` the client presents no certificate
/// (enough for health checks only).
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA that signed the node's certificate.
    pub ca: PathBuf,
    /// The client certificate (its CN is the caller's identity for the ACL).
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify the node's certificate against; default: the host of the address.
    pub server_name: Option<String>,
}

/// A tonic client TLS configuration from PEM files.
pub fn client_tls_config(files: &ClientTlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.clone(),
            source,
        })
    };
    // Parse once here so a bad file is reported with its path rather than at connect time.
    super::load_root_store(&files.ca)?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(&files.ca)?));
    match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            super::load_certs(cert)?;
            super::load_private_key(key)?;
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        (None, None) => {}
        _ => return Err(TlsError::IncompleteClientIdentity),
    }
    if let Some(name) = &files.server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}
