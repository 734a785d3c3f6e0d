//! The CLI's TLS settings from PEM files: trust the cluster CA and, for every command but the
//! health checks, present a client certificate (its Common Name is the caller's identity for
//! the node's ACL). The files are parsed here, so a bad file is reported with its path rather
//! than as a failed handshake at connect time.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
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
    /// Only one of certificate and key was given.
    #[error("a client certificate needs both a certificate file and a key file")]
    IncompleteClientIdentity,
    /// The key does not belong to the certificate (e.g. read mid-rotation).
    #[error("the certificate and key do not form a usable TLS identity: {0}")]
    Rustls(#[from] rustls::Error),
}

/// PEM files the CLI connects with. Without `cert`/`key` it presents no certificate (enough
/// for health checks only).
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA that signed the node's certificate.
    pub ca: PathBuf,
    /// The client certificate.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify the node's certificate against; default: the host of the address.
    pub server_name: Option<String>,
}

/// A tonic client TLS configuration from PEM files, checked before use.
pub fn client_tls_config(files: &ClientTlsFiles) -> Result<ClientTlsConfig, TlsError> {
    let ca = read(&files.ca)?;
    certificates(&files.ca, &ca)?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    match (&files.cert, &files.key) {
        (Some(cert_path), Some(key_path)) => {
            let (cert, key) = (read(cert_path)?, read(key_path)?);
            // Also checks that the key belongs to the certificate, which the handshake would
            // otherwise report only as an opaque failure.
            rustls::sign::CertifiedKey::from_der(
                certificates(cert_path, &cert)?,
                private_key(key_path, &key)?,
                &rustls::crypto::ring::default_provider(),
            )?;
            config = config.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => return Err(TlsError::IncompleteClientIdentity),
    }
    if let Some(name) = &files.server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every certificate of a PEM file; at least one.
fn certificates(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
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

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsError::BadPem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_files(dir: &Path) -> ClientTlsFiles {
        crate::dev_ca::write_dev_certs(dir).unwrap();
        ClientTlsFiles {
            ca: dir.join("ca.pem"),
            cert: Some(dir.join("root.pem")),
            key: Some(dir.join("root-key.pem")),
            server_name: None,
        }
    }

    #[test]
    fn dev_certificates_make_a_configuration() {
        let dir = tempfile::tempdir().unwrap();
        client_tls_config(&dev_files(dir.path())).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = ClientTlsFiles {
            key: Some(dir.path().join("nobody-key.pem")),
            ..dev_files(dir.path())
        };
        assert!(matches!(
            client_tls_config(&files),
            Err(TlsError::Rustls(_))
        ));
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let files = ClientTlsFiles {
            ca: not_pem,
            ..dev_files(dir.path())
        };
        let err = client_tls_config(&files).unwrap_err();
        assert!(err.to_string().contains("ca.txt"), "{err}");
        let files = ClientTlsFiles {
            key: None,
            ..dev_files(dir.path())
        };
        assert!(matches!(
            client_tls_config(&files),
            Err(TlsError::IncompleteClientIdentity)
        ));
    }
}
