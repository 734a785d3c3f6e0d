//! A development certificate authority (rcgen): the `proglog certs` command and the TLS fixtures
//! of the tests. It writes a CA, the node's server certificate and client certificates for the
//! `root` and `nobody` identities, plus a dev ACL granting `root` everything it needs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::OffsetDateTime;

/// Certificate generation or writing failed.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// rcgen could not make a key or sign a certificate (or parse a given CA).
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A certificate, key or ACL file (or its directory) could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The CA certificate or key to issue from could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// A PEM certificate and its PEM private key.
#[derive(Debug, Clone)]
pub struct PemPair {
    /// The certificate, PEM-encoded.
    pub cert_pem: String,
    /// Its private key, PEM-encoded (PKCS#8).
    pub key_pem: String,
}

/// What a certificate is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertUsage {
    /// A node: serves TLS and also connects to other nodes as a client.
    Node,
    /// A client only.
    Client,
}

/// A self-signed CA that issues certificates.
#[derive(Debug)]
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    pem: PemPair,
}

/// The validity of dev certificates: long enough for development, short of "forever".
pub const DEV_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);

impl DevCa {
    /// A new CA with the given Common Name.
    pub fn generate(common_name: &str) -> Result<Self, CertsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, OffsetDateTime::now_utc(), DEV_VALIDITY * 10);
        let cert = params.self_signed(&key)?;
        let pem = PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        Ok(Self {
            issuer: Issuer::new(params, key),
            pem,
        })
    }

    /// A CA from its PEM certificate and key (for example `ca.pem` and `ca-key.pem` written
    /// by [`write_dev_certs`]), to issue more certificates.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertsError> {
        let key = KeyPair::from_pem(key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key)?;
        Ok(Self {
            pem: PemPair {
                cert_pem: cert_pem.to_owned(),
                key_pem: key_pem.to_owned(),
            },
            issuer,
        })
    }

    /// The CA certificate and key.
    pub fn pem(&self) -> &PemPair {
        &self.pem
    }

    /// Issues a certificate valid for `validity` from now.
    pub fn issue(
        &self,
        common_name: &str,
        sans: &[String],
        usage: CertUsage,
        validity: Duration,
    ) -> Result<PemPair, CertsError> {
        self.issue_between(
            common_name,
            sans,
            usage,
            OffsetDateTime::now_utc() - time::Duration::hours(1),
            OffsetDateTime::now_utc() + validity,
        )
    }

    /// Issues a certificate valid between two instants (tests use this for expired ones).
    pub fn issue_between(
        &self,
        common_name: &str,
        sans: &[String],
        usage: CertUsage,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<PemPair, CertsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(sans.to_vec())?;
        params.distinguished_name = name(common_name);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match usage {
            CertUsage::Node => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            CertUsage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "ProgLog dev");
    dn
}

fn set_validity(params: &mut CertificateParams, now: OffsetDateTime, validity: Duration) {
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + validity;
}

/// The SANs of the dev node certificate: `localhost` and 127.0.0.1 to 127.0.0.9 (a local
/// cluster binds one loopback address per node).
pub fn dev_node_sans() -> Vec<String> {
    let mut sans = vec!["localhost".to_owned()];
    sans.extend((1..=9).map(|i| format!("127.0.0.{i}")));
    sans
}

/// The dev ACL: `root` may do everything a user does, and nodes may replicate between
/// themselves and forward produces.
pub const DEV_ACL: &str = "\
# ProgLog dev ACL: subject, object, action (default deny)
root, *, produce
root, *, consume
root, *, admin
proglog-node, *, replicate
proglog-node, *, produce
proglog-node, *, consume
";

/// Writes the dev CA, certificates and ACL into `dir` (created if needed); returns the paths.
pub fn write_dev_certs(dir: &Path) -> Result<Vec<PathBuf>, CertsError> {
    proglog_log::durable_fs::create_dir_all(dir).map_err(|e| CertsError::Write {
        path: e.path().to_path_buf(),
        source: e.into_io(),
    })?;
    let ca = DevCa::generate("ProgLog dev CA")?;
    let node = ca.issue(
        "proglog-node",
        &dev_node_sans(),
        CertUsage::Node,
        DEV_VALIDITY,
    )?;
    let root = ca.issue("root", &[], CertUsage::Client, DEV_VALIDITY)?;
    let nobody = ca.issue("nobody", &[], CertUsage::Client, DEV_VALIDITY)?;
    let files: [(&str, &str); 9] = [
        ("ca.pem", &ca.pem().cert_pem),
        ("ca-key.pem", &ca.pem().key_pem),
        ("node.pem", &node.cert_pem),
        ("node-key.pem", &node.key_pem),
        ("root.pem", &root.cert_pem),
        ("root-key.pem", &root.key_pem),
        ("nobody.pem", &nobody.cert_pem),
        ("nobody-key.pem", &nobody.key_pem),
        ("acl.csv", DEV_ACL),
    ];
    let mut written = Vec::new();
    for (file, contents) in files {
        let path = dir.join(file);
        write_private(&path, contents.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// Issues a client certificate for the identity `name` from the CA in `ca_cert`/`ca_key`
/// (PEM files; e.g. the `tls.crt`/`tls.key` of a cluster's CA Secret) and writes
/// `dir/NAME.pem` and `dir/NAME-key.pem`; returns their paths.
pub fn write_client_cert(
    ca_cert: &Path,
    ca_key: &Path,
    name: &str,
    validity: Duration,
    dir: &Path,
) -> Result<Vec<PathBuf>, CertsError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| CertsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let ca = DevCa::from_pem(&read(ca_cert)?, &read(ca_key)?)?;
    let pair = ca.issue(name, &[], CertUsage::Client, validity)?;
    proglog_log::durable_fs::create_dir_all(dir).map_err(|e| CertsError::Write {
        path: e.path().to_path_buf(),
        source: e.into_io(),
    })?;
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    write_private(&cert, pair.cert_pem.as_bytes())?;
    write_private(&key, pair.key_pem.as_bytes())?;
    Ok(vec![cert, key])
}

/// Writes a file readable by its owner only (it may hold a private key).
fn write_private(path: &Path, contents: &[u8]) -> Result<(), CertsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CertsError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(contents).map_err(err)
}
