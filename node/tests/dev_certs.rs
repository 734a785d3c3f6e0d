//! The development CA of `proglog certs` (crate `proglog-cli`) against the node's own TLS and
//! ACL code: the identities the node reads from the certificates are the common names the CA
//! wrote, and the ACL file it writes parses and grants what it says.

use proglog_cli::dev_ca::*;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

#[test]
fn writes_every_file_and_identities_are_the_common_names() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_dev_certs(dir.path()).unwrap();
    assert_eq!(written.len(), 9);
    for (file, cn) in [
        ("node.pem", "proglog-node"),
        ("root.pem", "root"),
        ("nobody.pem", "nobody"),
    ] {
        let pem = std::fs::read(dir.path().join(file)).unwrap();
        let cert = CertificateDer::from_pem_slice(&pem).unwrap();
        assert_eq!(proglog_node::tls::identity_of(&cert).as_deref(), Some(cn));
    }
    let acl = proglog_node::acl::Policy::parse(
        &std::fs::read_to_string(dir.path().join("acl.csv")).unwrap(),
    )
    .unwrap();
    assert!(acl.is_allowed("root", "log", proglog_node::acl::Action::Produce));
    assert!(!acl.is_allowed("nobody", "log", proglog_node::acl::Action::Consume));
}

#[test]
fn client_certificates_from_an_existing_ca_carry_the_identity() {
    let dir = tempfile::tempdir().unwrap();
    write_dev_certs(dir.path()).unwrap();
    let out = dir.path().join("users");
    let written = write_client_cert(
        &dir.path().join("ca.pem"),
        &dir.path().join("ca-key.pem"),
        "orders-service",
        DEV_VALIDITY,
        &out,
    )
    .unwrap();
    assert_eq!(
        written,
        vec![
            out.join("orders-service.pem"),
            out.join("orders-service-key.pem")
        ]
    );
    let pem = std::fs::read(&written[0]).unwrap();
    let cert = CertificateDer::from_pem_slice(&pem).unwrap();
    assert_eq!(
        proglog_node::tls::identity_of(&cert).as_deref(),
        Some("orders-service")
    );
    // Signed by that CA: a server trusting only it accepts the pair.
    let files = proglog_node::tls::ClientTlsFiles {
        ca: dir.path().join("ca.pem"),
        cert: Some(written[0].clone()),
        key: Some(written[1].clone()),
        server_name: None,
    };
    proglog_node::tls::client_tls_config(&files).unwrap();

    let missing = write_client_cert(
        &dir.path().join("no-ca.pem"),
        &dir.path().join("ca-key.pem"),
        "x",
        DEV_VALIDITY,
        &out,
    )
    .unwrap_err();
    assert!(missing.to_string().contains("no-ca.pem"), "{missing}");
}

#[test]
fn identity_falls_back_to_first_san() {
    let ca = DevCa::generate("test CA").unwrap();
    let pair = ca
        .issue(
            "",
            &["client.example".to_owned()],
            CertUsage::Client,
            DEV_VALIDITY,
        )
        .unwrap();
    let cert = CertificateDer::from_pem_slice(pair.cert_pem.as_bytes()).unwrap();
    assert_eq!(
        proglog_node::tls::identity_of(&cert).as_deref(),
        Some("client.example")
    );
}
