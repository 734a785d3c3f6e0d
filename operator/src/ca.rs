//! The cluster's certificate authority: an `rcgen` CA per ProgLogCluster (or the user's CA),
//! the node certificate (SANs for every pod FQDN, the Services and localhost), the operator's
//! admin client certificate, and when to renew them (after 2/3 of their lifetime, when the SANs
//! change, or when the CA changed). Pure: the controller stores the PEMs in Secrets.

use std::{collections::BTreeSet, net::IpAddr, time::Duration};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;
use x509_parser::{extensions::GeneralName, pem::parse_x509_pem};

use crate::builders::ClusterRef;

/// Lifetime of a CA the operator creates.
pub const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// Certificates start this long in the past to tolerate clock skew between machines.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// Errors creating or reading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// rcgen refused the parameters or the key.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM certificate could not be parsed.
    #[error("invalid certificate PEM ({0})")]
    InvalidCertificate(String),
    /// The CA key could not be loaded.
    #[error("invalid CA private key: {0}")]
    InvalidKey(rcgen::Error),
    /// A certificate that must be a CA is not one.
    #[error("the certificate in the CA Secret is not a CA (basicConstraints cA is false)")]
    NotACa,
}

/// A PEM certificate and its PEM private key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedCertificate {
    /// PEM certificate.
    pub cert_pem: String,
    /// PEM (PKCS#8) private key.
    pub key_pem: String,
}

impl std::fmt::Debug for KeyedCertificate {
    // Never print private keys into logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// What the operator needs to know about an existing certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateInfo {
    /// Subject Common Name, if any.
    pub common_name: Option<String>,
    /// DNS and IP SANs.
    pub sans: BTreeSet<String>,
    /// Start of validity.
    pub not_before: OffsetDateTime,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// basicConstraints cA.
    pub is_ca: bool,
}

impl CertificateInfo {
    /// Parses the first certificate of a PEM string.
    pub fn parse(pem: &str) -> Result<Self, CaError> {
        let (_, pem) = parse_x509_pem(pem.as_bytes())
            .map_err(|e| CaError::InvalidCertificate(e.to_string()))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| CaError::InvalidCertificate(e.to_string()))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let mut sans = BTreeSet::new();
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(dns) => {
                        sans.insert((*dns).to_owned());
                    }
                    GeneralName::IPAddress(bytes) => {
                        let ip = match bytes.len() {
                            4 => <[u8; 4]>::try_from(*bytes).ok().map(IpAddr::from),
                            16 => <[u8; 16]>::try_from(*bytes).ok().map(IpAddr::from),
                            _ => None,
                        };
                        if let Some(ip) = ip {
                            sans.insert(ip.to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let to_time = |t: &x509_parser::time::ASN1Time| {
            OffsetDateTime::from_unix_timestamp(t.timestamp())
                .map_err(|e| CaError::InvalidCertificate(e.to_string()))
        };
        let validity = cert.validity();
        Ok(Self {
            common_name,
            sans,
            not_before: to_time(&validity.not_before)?,
            not_after: to_time(&validity.not_after)?,
            is_ca: cert.is_ca(),
        })
    }

    /// When the certificate should be replaced: two thirds into its lifetime.
    pub fn renew_at(&self) -> OffsetDateTime {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ProgLog");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, now: OffsetDateTime, lifetime: Duration) {
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
}

/// Creates a CA for a cluster.
pub fn generate_ca(cluster: &ClusterRef, now: OffsetDateTime) -> Result<KeyedCertificate, CaError> {
    generate_ca_generation(cluster, 1, now)
}

/// Creates the CA of rotation `generation` (1 is the first); later generations name theirs in
/// the subject, so a person (and a path builder) tells the old and new CA apart.
pub fn generate_ca_generation(
    cluster: &ClusterRef,
    generation: u64,
    now: OffsetDateTime,
) -> Result<KeyedCertificate, CaError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut name = format!("ProgLog CA {}/{}", cluster.namespace, cluster.name);
    if generation > 1 {
        name.push_str(&format!(" generation {generation}"));
    }
    params.distinguished_name = distinguished_name(&name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, now, CA_LIFETIME);
    let cert = params.self_signed(&key)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Every name a node may be reached by: each pod's FQDN (and shorter forms), the Services, and
/// localhost for the node's own health checks and port-forwards.
pub fn node_sans(cluster: &ClusterRef, pods: u32) -> BTreeSet<String> {
    let mut sans = BTreeSet::new();
    let ns = &cluster.namespace;
    let headless = cluster.headless_service_name();
    for ordinal in 0..pods {
        let pod = cluster.pod_name(ordinal);
        sans.insert(format!("{pod}.{headless}"));
        sans.insert(format!("{pod}.{headless}.{ns}"));
        sans.insert(format!("{pod}.{headless}.{ns}.svc"));
        sans.insert(cluster.pod_fqdn(ordinal));
    }
    for service in [cluster.name.clone(), headless] {
        sans.insert(service.clone());
        sans.insert(format!("{service}.{ns}"));
        sans.insert(format!("{service}.{ns}.svc"));
        sans.insert(format!("{service}.{ns}.svc.cluster.local"));
    }
    sans.insert("localhost".to_owned());
    sans.insert("127.0.0.1".to_owned());
    sans.insert("::1".to_owned());
    sans
}

fn issue(
    ca: &KeyedCertificate,
    common_name: &str,
    sans: &BTreeSet<String>,
    server: bool,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<KeyedCertificate, CaError> {
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(CaError::InvalidKey)?;
    if !CertificateInfo::parse(&ca.cert_pem)?.is_ca {
        return Err(CaError::NotACa);
    }
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key)?;
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.subject_alt_names = sans
        .iter()
        .map(|san| match san.parse::<IpAddr>() {
            Ok(ip) => Ok(SanType::IpAddress(ip)),
            Err(_) => Ok(SanType::DnsName(san.clone().try_into()?)),
        })
        .collect::<Result<_, rcgen::Error>>()?;
    params.distinguished_name = distinguished_name(common_name);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    if server {
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
    }
    params.use_authority_key_identifier_extension = true;
    validity(&mut params, now, lifetime);
    let cert = params.signed_by(&key, &issuer)?;
    Ok(KeyedCertificate {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The node certificate: serves clients and peers, and authenticates to peers as the cluster's
/// node identity (CN `NAME-node`, granted `replicate` by the ACL).
pub fn issue_node_certificate(
    ca: &KeyedCertificate,
    cluster: &ClusterRef,
    pods: u32,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<KeyedCertificate, CaError> {
    issue(
        ca,
        &cluster.node_identity(),
        &node_sans(cluster, pods),
        true,
        now,
        lifetime,
    )
}

/// A client certificate with `common_name` as its identity (the operator's is `proglog-operator`).
pub fn issue_client_certificate(
    ca: &KeyedCertificate,
    common_name: &str,
    now: OffsetDateTime,
    lifetime: Duration,
) -> Result<KeyedCertificate, CaError> {
    issue(ca, common_name, &BTreeSet::new(), false, now, lifetime)
}

/// Whether the leaf certificate `leaf_pem` chains to one of the CAs in `roots_pem` (a PEM
/// bundle) and is valid at `now`: the proof that a leaf was signed by a given CA, whatever its
/// subject says.
pub fn verifies(leaf_pem: &str, roots_pem: &str, now: OffsetDateTime) -> bool {
    use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(roots_pem.as_bytes()).flatten() {
        if roots.add(cert).is_err() {
            return false;
        }
    }
    let Ok(leaf) = CertificateDer::from_pem_slice(leaf_pem.as_bytes()) else {
        return false;
    };
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let Ok(verifier) =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider).build()
    else {
        return false;
    };
    let at = UnixTime::since_unix_epoch(Duration::from_secs(
        u64::try_from(now.unix_timestamp()).unwrap_or(0),
    ));
    verifier.verify_client_cert(&leaf, &[], at).is_ok()
}

/// Why a stored certificate must be reissued, or `None` when it is still good.
pub fn renewal_reason(
    current: &CertificateInfo,
    expected_sans: &BTreeSet<String>,
    issued_by_current_ca: bool,
    now: OffsetDateTime,
) -> Option<&'static str> {
    if !issued_by_current_ca {
        Some("the CA changed")
    } else if now >= current.renew_at() {
        Some("two thirds of its lifetime have passed")
    } else if &current.sans != expected_sans {
        Some("the set of names changed")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn cluster_ref() -> ClusterRef {
        ClusterRef::of(&cluster()).unwrap()
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[test]
    fn ca_is_a_ca_with_ten_year_lifetime() {
        let ca = generate_ca(&cluster_ref(), now()).unwrap();
        let info = CertificateInfo::parse(&ca.cert_pem).unwrap();
        assert!(info.is_ca);
        assert_eq!(info.common_name.as_deref(), Some("ProgLog CA logs/demo"));
        assert!(info.not_after - now() >= time::Duration::days(3649));
        assert!(!format!("{ca:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn node_certificate_has_every_pod_fqdn_services_and_localhost() {
        let ca = generate_ca(&cluster_ref(), now()).unwrap();
        let cert = issue_node_certificate(&ca, &cluster_ref(), 3, now(), 90 * DAY).unwrap();
        let info = CertificateInfo::parse(&cert.cert_pem).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("demo-node"));
        assert!(!info.is_ca);
        for name in [
            "demo-0.demo-headless.logs.svc.cluster.local",
            "demo-2.demo-headless.logs.svc.cluster.local",
            "demo.logs.svc.cluster.local",
            "demo",
            "demo-headless.logs.svc",
            "localhost",
            "127.0.0.1",
        ] {
            assert!(
                info.sans.contains(name),
                "missing SAN {name}: {:?}",
                info.sans
            );
        }
        assert!(
            !info
                .sans
                .contains("demo-3.demo-headless.logs.svc.cluster.local")
        );
        assert_eq!(info.sans, node_sans(&cluster_ref(), 3));
    }

    #[test]
    fn node_certificate_verifies_against_the_ca() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};
        let ca = generate_ca(&cluster_ref(), now()).unwrap();
        let cert = issue_node_certificate(&ca, &cluster_ref(), 1, now(), 90 * DAY).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let leaf = CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(Duration::from_secs(1_800_000_100));
        let name = "demo-0.demo-headless.logs.svc.cluster.local"
            .try_into()
            .unwrap();
        verifier
            .verify_server_cert(&leaf, &[], &name, &[], at)
            .expect("node certificate verifies for a pod FQDN");
        let wrong = "demo-9.demo-headless.logs.svc.cluster.local"
            .try_into()
            .unwrap();
        assert!(
            verifier
                .verify_server_cert(&leaf, &[], &wrong, &[], at)
                .is_err()
        );
    }

    #[test]
    fn operator_client_certificate_identity() {
        let ca = generate_ca(&cluster_ref(), now()).unwrap();
        let cert = issue_client_certificate(&ca, "proglog-operator", now(), DAY).unwrap();
        let info = CertificateInfo::parse(&cert.cert_pem).unwrap();
        assert_eq!(info.common_name.as_deref(), Some("proglog-operator"));
        assert!(info.sans.is_empty());
    }

    #[test]
    fn renewal_after_two_thirds_of_lifetime_or_when_names_change() {
        let ca = generate_ca(&cluster_ref(), now()).unwrap();
        let cert = issue_node_certificate(&ca, &cluster_ref(), 3, now(), 90 * DAY).unwrap();
        let info = CertificateInfo::parse(&cert.cert_pem).unwrap();
        let sans = node_sans(&cluster_ref(), 3);
        assert_eq!(renewal_reason(&info, &sans, true, now() + 59 * DAY), None);
        assert!(renewal_reason(&info, &sans, true, now() + 61 * DAY).is_some());
        let more = node_sans(&cluster_ref(), 5);
        assert_eq!(
            renewal_reason(&info, &more, true, now()),
            Some("the set of names changed")
        );
        assert_eq!(
            renewal_reason(&info, &sans, false, now()),
            Some("the CA changed")
        );
    }

    #[test]
    fn bad_ca_material_is_a_clear_error() {
        let ca = generate_ca(&cluster_ref(), now()).unwrap();
        let leaf = issue_client_certificate(&ca, "someone", now(), DAY).unwrap();
        let err = issue_client_certificate(&leaf, "x", now(), DAY).unwrap_err();
        assert!(matches!(err, CaError::NotACa), "{err}");
        let garbage = KeyedCertificate {
            cert_pem: ca.cert_pem.clone(),
            key_pem: "not a key".to_owned(),
        };
        let err = issue_client_certificate(&garbage, "x", now(), DAY).unwrap_err();
        assert!(matches!(err, CaError::InvalidKey(_)), "{err}");
        assert!(CertificateInfo::parse("nope").is_err());
    }
}
