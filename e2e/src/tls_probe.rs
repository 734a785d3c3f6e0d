//! Which certificate a node serves: a TLS handshake (with the test's client certificate, as
//! the node requires) through a port-forward to one pod, returning the leaf certificate's
//! serial number and expiry. Used to watch certificate renewal reach the pods.

use std::sync::Arc;

use rustls::{
    ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::{E2eError, log_client::PemPair};

/// The leaf certificate a node presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCertificate {
    /// Serial number (hex).
    pub serial: String,
    /// Not valid after (Unix seconds).
    pub not_after: i64,
}

fn tls_error(what: &str, err: impl std::fmt::Display) -> E2eError {
    E2eError::Unexpected(format!("TLS probe: {what}: {err}"))
}

/// Handshakes with `127.0.0.1:port` as `localhost`, verifying the server against `ca_pem`.
pub async fn served_certificate(
    port: u16,
    ca_pem: &str,
    client: &PemPair,
) -> Result<ServedCertificate, E2eError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots
            .add(cert.map_err(|e| tls_error("CA PEM", e))?)
            .map_err(|e| tls_error("CA", e))?;
    }
    let chain = CertificateDer::pem_slice_iter(client.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error("client certificate PEM", e))?;
    let key = PrivateKeyDer::from_pem_slice(client.key_pem.as_bytes())
        .map_err(|e| tls_error("client key PEM", e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error("protocol versions", e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| tls_error("client certificate", e))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| tls_error("connect", e))?;
    let name = ServerName::try_from("localhost").map_err(|e| tls_error("server name", e))?;
    let stream = tokio::time::timeout(
        std::time::Duration::from_secs(15),
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .map_err(|e| tls_error("handshake", e))?
    .map_err(|e| tls_error("handshake", e))?;
    let (_, connection) = stream.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|certs| certs.first())
        .ok_or_else(|| tls_error("handshake", "the server sent no certificate"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| tls_error("server certificate", e))?;
    Ok(ServedCertificate {
        serial: parsed.tbs_certificate.raw_serial_as_string(),
        not_after: parsed.validity().not_after.timestamp(),
    })
}
