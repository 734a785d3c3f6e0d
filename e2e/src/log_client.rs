//! The client side of the scenarios: a CA the test owns (handed to the operator as a
//! user-supplied CA Secret, so the test can issue itself a client certificate), and a
//! `log.v1.Log` client over mutual TLS.

use proglog_proto::log::v1::log_client::LogClient;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::E2eError;

/// A certificate and its private key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct PemPair {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
}

/// A new self-signed CA for one test cluster.
pub fn new_ca(common_name: &str) -> Result<PemPair, E2eError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A client certificate whose Common Name (the ACL identity) is `common_name`, signed by `ca`.
pub fn issue_client_certificate(ca: &PemPair, common_name: &str) -> Result<PemPair, E2eError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server-and-client certificate for `common_name` with DNS `sans` (IP addresses are
/// recognized), valid from `not_before` to `not_after`, signed by `ca`: what the operator puts
/// in a cluster's node certificate Secret, with a validity the test chooses.
pub fn issue_node_certificate(
    ca: &PemPair,
    common_name: &str,
    sans: &[String],
    not_before: time::OffsetDateTime,
    not_after: time::OffsetDateTime,
) -> Result<PemPair, E2eError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem)?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans
        .iter()
        .map(|san| match san.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(san.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params
        .distinguished_name
        .push(DnType::OrganizationName, "ProgLog");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Connects to `127.0.0.1:port` (a port-forward), verifying the node certificate against
/// `ca_pem` under the name `localhost` (a SAN of every node certificate the operator issues).
pub async fn connect(
    port: u16,
    ca_pem: &str,
    client: &PemPair,
) -> Result<LogClient<Channel>, E2eError> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(&client.cert_pem, &client.key_pem))
        .domain_name("localhost");
    let channel = Channel::from_shared(format!("https://127.0.0.1:{port}"))
        .map_err(|err| E2eError::Unexpected(format!("bad endpoint for port {port}: {err}")))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(10))
        // A forward whose pod is gone must be noticed, not waited on.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(LogClient::new(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_client_certificate_is_signed_by_the_ca_and_names_the_identity() {
        let ca = new_ca("e2e-test-ca").unwrap();
        let client = issue_client_certificate(&ca, "proglog-e2e").unwrap();
        let (_, cert) = x509_parser::pem::parse_x509_pem(client.cert_pem.as_bytes()).unwrap();
        let cert = cert.parse_x509().unwrap();
        let (_, ca_cert) = x509_parser::pem::parse_x509_pem(ca.cert_pem.as_bytes()).unwrap();
        let ca_cert = ca_cert.parse_x509().unwrap();
        let cn: Vec<_> = cert
            .subject()
            .iter_common_name()
            .map(|cn| cn.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cn, ["proglog-e2e"]);
        assert_eq!(cert.issuer(), ca_cert.subject());
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
    }

    #[test]
    fn a_key_that_is_not_pem_is_rejected() {
        let ca = PemPair {
            cert_pem: "not a certificate".to_owned(),
            key_pem: "not a key".to_owned(),
        };
        assert!(issue_client_certificate(&ca, "proglog-e2e").is_err());
    }
}
