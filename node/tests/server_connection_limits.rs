//! Connection caps on a real node (in process, real mutual TLS): silent TCP connections and
//! anonymous TLS connections hold at most `max_unauthenticated_connections` slots and are closed
//! after the handshake / unauthenticated timeouts, so an mTLS client still gets served; past
//! `max_connections` new connections wait until one closes. No assertion on speed.

mod server_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use proglog_proto::log::v1::{GetLogBoundsRequest, ProduceRequest};
use server_support::{NodeOptions, PATIENCE, TestNode, record};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const UNAUTHENTICATED_CAP: usize = 4;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(1);
const UNAUTHENTICATED_TIMEOUT: Duration = Duration::from_secs(2);

async fn node_with_caps(max_connections: usize) -> TestNode {
    let mut options = NodeOptions::default();
    options.limits.max_connections = max_connections;
    options.limits.max_unauthenticated_connections = UNAUTHENTICATED_CAP;
    options.limits.handshake_timeout = HANDSHAKE_TIMEOUT;
    options.limits.unauthenticated_timeout = UNAUTHENTICATED_TIMEOUT;
    TestNode::start_with(options).await
}

/// Reads until the server closes the connection (EOF or an error); how long that took.
async fn closed_by_server(mut stream: impl tokio::io::AsyncRead + Unpin) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the server closes the connection");
    started.elapsed()
}

/// A TLS connection that completed the handshake without a client certificate.
async fn anonymous_tls(node: &TestNode) -> tokio_rustls::client::TlsStream<TcpStream> {
    let roots = proglog_node::tls::load_root_store(&node.certs().join("ca.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(proglog_node::tls::crypto_provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(node.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio::time::timeout(PATIENCE, connector.connect(name, tcp))
        .await
        .expect("the handshake completes")
        .expect("an anonymous handshake is accepted")
}

#[tokio::test]
async fn silent_and_anonymous_connections_cannot_crowd_out_an_mtls_client() {
    let node = node_with_caps(1024).await;
    // Three times the unauthenticated cap of connections that never start a handshake.
    let mut silent = Vec::new();
    for _ in 0..3 * UNAUTHENTICATED_CAP {
        silent.push(TcpStream::connect(node.addr).await.unwrap());
    }
    // An mTLS client is still served: at worst it waits for silent ones to time out.
    let started = Instant::now();
    let mut client = tokio::time::timeout(PATIENCE, node.client(Some("root")))
        .await
        .expect("an mTLS client connects despite the silent connections");
    let offset = client
        .produce(ProduceRequest {
            record: Some(record("served")),
        })
        .await
        .expect("produce")
        .into_inner()
        .offset;
    eprintln!(
        "mTLS client served after {:?} behind {} silent connections",
        started.elapsed(),
        silent.len()
    );
    assert_eq!(offset, 0);
    // Every silent connection is closed by the server (handshake timeout).
    for stream in silent {
        closed_by_server(stream).await;
    }

    // Anonymous clients may check health, but their connections do not stay.
    let mut health = HealthClient::new(node.channel(None).await.unwrap());
    health
        .check(HealthCheckRequest::default())
        .await
        .expect("health needs no certificate");
    let anonymous = anonymous_tls(&node).await;
    let lived = closed_by_server(anonymous).await;
    assert!(
        lived >= UNAUTHENTICATED_TIMEOUT / 2,
        "closed after {lived:?}: an anonymous connection lives for the unauthenticated timeout"
    );
    // The authenticated connection is still there.
    client
        .get_log_bounds(GetLogBoundsRequest::default())
        .await
        .expect("the mTLS connection stays open");
    node.stop().await;
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let node = node_with_caps(3).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut client = node.client(Some("root")).await;
        client
            .get_log_bounds(GetLogBoundsRequest::default())
            .await
            .expect("within the cap");
        clients.push(client);
    }
    let fourth = tokio::spawn({
        let files = node.client_files(Some("root"));
        let addr = node.addr;
        async move {
            let channel = server_support::connect(addr, &files)
                .await
                .expect("connect");
            proglog_proto::log::v1::log_client::LogClient::new(channel)
                .get_log_bounds(GetLogBoundsRequest::default())
                .await
                .expect("served once admitted")
                .into_inner()
                .next_offset
        }
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !fourth.is_finished(),
        "a fourth connection waits at the cap"
    );
    drop(clients.pop());
    let next = tokio::time::timeout(PATIENCE, fourth)
        .await
        .expect("admitted once a connection closed")
        .unwrap();
    assert_eq!(next, 0);
    node.stop().await;
}
