//! Every rejection of the security model on a real node: no client certificate, a certificate
//! from another CA, an expired certificate, a wrong server name, an ACL denial; the allowed
//! path; health without a certificate (TLS port and plaintext h2c port); ACL and certificate
//! reload without restart.

mod server_support;

use std::time::Duration;

use proglog_cli::dev_ca::{CertUsage, DevCa};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{ConsumeRequest, ProduceRequest};
use server_support::{
    NodeOptions, TestNode, connect, eventually, foreign_pair, record, write_pair,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn produce_request(value: &str) -> ProduceRequest {
    ProduceRequest {
        record: Some(record(value)),
    }
}

/// Produces with the given client files; returns the error (connection or RPC).
async fn produce_with(
    node: &TestNode,
    files: &proglog_node::tls::ClientTlsFiles,
) -> Result<u64, String> {
    let channel = connect(node.addr, files)
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    LogClient::new(channel)
        .produce(produce_request("x"))
        .await
        .map(|r| r.into_inner().offset)
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn allowed_identity_may_produce_and_consume() {
    let node = TestNode::start().await;
    let mut root = node.client(Some("root")).await;
    assert_eq!(
        root.produce(produce_request("hi"))
            .await
            .unwrap()
            .into_inner()
            .offset,
        0
    );
    let r = root
        .consume(ConsumeRequest { offset: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&r.record.unwrap().value[..], b"hi");
    node.stop().await;
}

#[tokio::test]
async fn no_client_certificate_is_unauthenticated() {
    let node = TestNode::start().await;
    let mut anonymous = node.client(None).await;
    let status = anonymous.produce(produce_request("x")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = anonymous
        .consume(ConsumeRequest { offset: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(node.log_length().await, 0);
    node.stop().await;
}

#[tokio::test]
async fn acl_denied_subject_gets_permission_denied_for_produce_and_consume() {
    let node = TestNode::start().await;
    let mut nobody = node.client(Some("nobody")).await;
    let status = nobody.produce(produce_request("x")).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("nobody"), "{}", status.message());
    let status = nobody
        .consume(ConsumeRequest { offset: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = nobody
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(node.log_length().await, 0);
    node.stop().await;
}

#[tokio::test]
async fn certificate_from_another_ca_is_refused() {
    let node = TestNode::start().await;
    // CN "root" would be allowed by the ACL: only the signature is wrong.
    let files = write_pair(&node.certs(), "impostor", &foreign_pair("root"));
    let error = produce_with(&node, &files).await.unwrap_err();
    assert!(!error.contains("PermissionDenied"), "{error}");
    assert_eq!(node.log_length().await, 0, "nothing was appended");
    node.stop().await;
}

#[tokio::test]
async fn expired_certificate_is_refused() {
    let node = TestNode::start().await;
    let files = node.issue_expired_client("expired-root", "root");
    let error = produce_with(&node, &files).await.unwrap_err();
    assert!(!error.contains("PermissionDenied"), "{error}");
    assert_eq!(node.log_length().await, 0, "nothing was appended");
    // The same identity with a valid certificate is accepted: the expiry was the reason.
    let valid = node.issue_client("valid-root", |ca| {
        ca.issue("root", &[], CertUsage::Client, Duration::from_secs(3600))
            .unwrap()
    });
    assert_eq!(produce_with(&node, &valid).await.unwrap(), 0);
    node.stop().await;
}

#[tokio::test]
async fn wrong_server_name_fails_verification_on_the_client() {
    let node = TestNode::start().await;
    let mut files = node.client_files(Some("root"));
    files.server_name = Some("not-the-node.example".to_owned());
    let error = produce_with(&node, &files).await.unwrap_err();
    assert!(!error.contains("PermissionDenied"), "{error}");
    assert_eq!(node.log_length().await, 0);
    node.stop().await;
}

#[tokio::test]
async fn health_needs_no_client_certificate_on_tls_and_h2c_ports() {
    let node = TestNode::start_with(NodeOptions {
        with_metrics_port: true,
        ..NodeOptions::default()
    })
    .await;
    let mut tls_health = HealthClient::new(node.channel(None).await.unwrap());
    for service in ["", "log.v1.Log"] {
        let status = tls_health
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "service {service:?}");
    }
    // Plaintext HTTP/2 gRPC health on the metrics port, as Kubernetes grpc probes use it.
    let metrics_addr = node.metrics_addr.unwrap();
    let h2c = tonic::transport::Endpoint::from_shared(format!("http://{metrics_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let status = HealthClient::new(h2c)
        .check(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    // Plain HTTP/1 endpoints.
    for (path, expect) in [
        ("/healthz", "ok"),
        ("/readyz", "ready"),
        ("/metrics", "proglog_log_next_offset"),
    ] {
        let body = http_get(metrics_addr, path).await;
        assert!(body.starts_with("HTTP/1.1 200"), "{path}: {body}");
        assert!(body.contains(expect), "{path}: {body}");
    }
    node.stop().await;
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn acl_reloads_when_its_file_changes() {
    let node = TestNode::start().await;
    let watching = CancellationToken::new();
    node.acl
        .spawn_watcher(Duration::from_millis(50), watching.clone())
        .expect("file-backed ACL");
    let mut nobody = node.client(Some("nobody")).await;
    let denied = nobody.produce(produce_request("x")).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let acl = node.certs().join("acl.csv");
    let mut policy = std::fs::read_to_string(&acl).unwrap();
    policy.push_str("nobody, log, produce\n");
    std::fs::write(&acl, policy).unwrap();
    eventually("nobody to be allowed to produce", || {
        let mut client = nobody.clone();
        async move { client.produce(produce_request("y")).await.is_ok() }
    })
    .await;
    // A broken file keeps the last good policy.
    std::fs::write(&acl, "this is not, a valid, policy, line\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(nobody.produce(produce_request("z")).await.is_ok());
    watching.cancel();
    node.stop().await;
}

#[tokio::test]
async fn server_certificate_reloads_without_dropping_connections() {
    let node = TestNode::start().await;
    let watching = CancellationToken::new();
    node.tls
        .spawn_watcher(Duration::from_millis(50), watching.clone());
    let mut existing = node.client(Some("root")).await;
    existing.produce(produce_request("before")).await.unwrap();

    // Rotate the node certificate to one that is valid only for a new name.
    let certs = node.certs();
    let ca = DevCa::from_pem(
        &std::fs::read_to_string(certs.join("ca.pem")).unwrap(),
        &std::fs::read_to_string(certs.join("ca-key.pem")).unwrap(),
    )
    .unwrap();
    let rotated = ca
        .issue(
            "proglog-node",
            &["rotated.proglog.test".to_owned()],
            CertUsage::Node,
            Duration::from_secs(3600),
        )
        .unwrap();
    std::fs::write(certs.join("node-key.pem"), &rotated.key_pem).unwrap();
    std::fs::write(certs.join("node.pem"), &rotated.cert_pem).unwrap();

    let mut rotated_files = node.client_files(Some("root"));
    rotated_files.server_name = Some("rotated.proglog.test".to_owned());
    let addr = node.addr;
    eventually("new connections to present the rotated certificate", || {
        let files = rotated_files.clone();
        async move {
            match connect(addr, &files).await {
                Ok(channel) => LogClient::new(channel)
                    .produce(produce_request("after"))
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        }
    })
    .await;
    // The connection made before the rotation still works.
    existing.produce(produce_request("still")).await.unwrap();
    // And the old name no longer verifies for new connections.
    let old = node.client_files(Some("root"));
    assert!(produce_with(&node, &old).await.is_err());
    watching.cancel();
    node.stop().await;
}
