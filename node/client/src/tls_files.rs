//! Mutual TLS from PEM files, checked before use: the CLI, applications and the node's own
//! connections to its peers all load the same three files (the cluster CA, a certificate and
//! its key). The files are parsed here, so a bad file is reported with its path rather than as
//! an opaque handshake failure at connect time, and a certificate next to a key that is not its
//! own (read in the middle of a rotation) is refused.
//!
//! The crypto provider is `ring`, the one the whole workspace uses.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
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
    /// The key does not belong to the certificate (e.g. read in the middle of a rotation).
    #[error("the certificate and key do not form a usable TLS identity: {0}")]
    Identity(rustls::Error),
}

/// PEM files a client connects with. Without `cert`/`key` it presents no certificate, which is
/// enough for health checks only.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA (or CA bundle) that signed the nodes' certificates.
    pub ca: PathBuf,
    /// The client certificate; its Common Name is the caller's identity for the ACL.
    pub cert: Option<PathBuf>,
    /// The private key of `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify the node's certificate against; default: the host of the address.
    pub server_name: Option<String>,
}

impl ClientTlsFiles {
    /// The files that exist in this configuration, for change detection.
    pub fn paths(&self) -> Vec<PathBuf> {
        [Some(&self.ca), self.cert.as_ref(), self.key.as_ref()]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// A tonic client TLS configuration from PEM files, every file parsed and the key matched to
/// its certificate first.
pub fn client_tls_config(files: &ClientTlsFiles) -> Result<ClientTlsConfig, TlsFileError> {
    let ca = read(&files.ca)?;
    parse_certs(&files.ca, &ca)?;
    let mut config = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    match (&files.cert, &files.key) {
        (Some(cert_path), Some(key_path)) => {
            let (cert, key) = (read(cert_path)?, read(key_path)?);
            rustls::sign::CertifiedKey::from_der(
                parse_certs(cert_path, &cert)?,
                parse_private_key(key_path, &key)?,
                &rustls::crypto::ring::default_provider(),
            )
            .map_err(TlsFileError::Identity)?;
            config = config.identity(Identity::from_pem(cert, key));
        }
        (None, None) => {}
        _ => return Err(TlsFileError::IncompleteClientIdentity),
    }
    if let Some(name) = &files.server_name {
        config = config.domain_name(name.clone());
    }
    Ok(config)
}

/// Every certificate in a PEM file (a chain or a CA bundle); at least one.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    parse_certs(path, &read(path)?)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    parse_private_key(path, &read(path)?)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    std::fs::read(path).map_err(|source| TlsFileError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsFileError::BadPem {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn parse_private_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsFileError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => TlsFileError::BadPem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    /// A CA and one client certificate signed by it, plus a key of another certificate.
    fn write_files(dir: &Path) -> ClientTlsFiles {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let cert = CertificateParams::new(vec!["app".to_owned()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("app.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("app-key.pem"), key.serialize_pem()).unwrap();
        let other = KeyPair::generate().unwrap();
        std::fs::write(dir.join("other-key.pem"), other.serialize_pem()).unwrap();
        ClientTlsFiles {
            ca: dir.join("ca.pem"),
            cert: Some(dir.join("app.pem")),
            key: Some(dir.join("app-key.pem")),
            server_name: None,
        }
    }

    #[test]
    fn matching_files_make_a_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_files(dir.path());
        client_tls_config(&files).unwrap();
        assert_eq!(files.paths().len(), 3);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = ClientTlsFiles {
            key: Some(dir.path().join("other-key.pem")),
            ..write_files(dir.path())
        };
        let err = client_tls_config(&files).unwrap_err();
        assert!(matches!(err, TlsFileError::Identity(_)), "{err}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.txt");
        std::fs::write(&not_pem, "not a certificate").unwrap();
        let files = ClientTlsFiles {
            ca: not_pem,
            ..write_files(dir.path())
        };
        let err = client_tls_config(&files).unwrap_err();
        assert!(err.to_string().contains("ca.txt"), "{err}");
        let missing = ClientTlsFiles {
            cert: Some(dir.path().join("missing.pem")),
            ..write_files(dir.path())
        };
        let err = client_tls_config(&missing).unwrap_err();
        assert!(
            matches!(err, TlsFileError::Read { .. }) && err.to_string().contains("missing.pem"),
            "{err}"
        );
        let key_only = ClientTlsFiles {
            cert: None,
            ..write_files(dir.path())
        };
        assert!(matches!(
            client_tls_config(&key_only),
            Err(TlsFileError::IncompleteClientIdentity)
        ));
        let no_key = dir.path().join("no-key.pem");
        std::fs::write(&no_key, "").unwrap();
        assert!(matches!(
            load_private_key(&no_key),
            Err(TlsFileError::NoPrivateKey { .. })
        ));
    }
}
