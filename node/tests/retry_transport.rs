//! "Safe to retry" against real transport failures: `proglog_proto::retry::produce_not_executed`
//! must say yes for every way a produce can fail before it reaches a node (nothing listening, the
//! client rejecting the server's certificate, the server rejecting the client's certificate after
//! a TLS 1.3 handshake), decided from the call's error chain, and no for an answer from the node.

mod server_support;

use std::time::Duration;

use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use proglog_proto::log::v1::ProduceRequest;
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::retry::{is_connect_failure, produce_not_executed, says_not_executed};
use server_support::{TestNode, foreign_pair, record, write_pair};
use tonic::Code;
use tonic::transport::Endpoint;

/// A produce over a lazily connected channel, as the client library and the node's forwarding
/// make them; the status it failed with.
async fn failed_produce(addr: &str, files: &ClientTlsFiles) -> tonic::Status {
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(client_tls_config(files).unwrap())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    LogClient::new(channel)
        .produce(ProduceRequest {
            record: Some(record("x")),
        })
        .await
        .expect_err("the produce must fail")
}

fn assert_not_executed(what: &str, status: &tonic::Status) {
    assert!(is_connect_failure(status), "{what}: {status:?}");
    assert!(produce_not_executed(status), "{what}: {status:?}");
    // Not because the node said so: no node was reached.
    assert!(!says_not_executed(status), "{what}: {status:?}");
}

#[tokio::test]
async fn failures_before_the_request_reached_a_node_are_not_executed() {
    let node = TestNode::start().await;
    let root = node.client_files(Some("root"));
    let addr = node.addr.to_string();

    // Nothing listens (the port was free a moment ago).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_addr = closed.local_addr().unwrap().to_string();
    drop(closed);
    assert_not_executed(
        "connection refused",
        &failed_produce(&closed_addr, &root).await,
    );

    // The client rejects the server's certificate during the handshake.
    let mut wrong_name = root.clone();
    wrong_name.server_name = Some("not-the-node.example".to_owned());
    assert_not_executed(
        "wrong server name",
        &failed_produce(&addr, &wrong_name).await,
    );

    // The server rejects the client's certificate: with TLS 1.3 the client has finished its side
    // of the handshake and learns it from the server's alert on the first read.
    let foreign = write_pair(&node.certs(), "impostor", &foreign_pair("root"));
    assert_not_executed("foreign client CA", &failed_produce(&addr, &foreign).await);
    let expired = node.issue_expired_client("expired-root", "root");
    assert_not_executed(
        "expired client certificate",
        &failed_produce(&addr, &expired).await,
    );
    assert_eq!(node.log_length().await, 0, "nothing was appended");

    // An answer from the node is not a transport failure, whatever it says.
    let anonymous = failed_produce(&addr, &node.client_files(None)).await;
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");
    assert!(!produce_not_executed(&anonymous), "{anonymous:?}");
    node.stop().await;
}
