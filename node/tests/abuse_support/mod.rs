//! Tools of the `server_abuse` tests: a raw HTTP/2 client over the fixture's mutual TLS (to send
//! gRPC framing that tonic's client never would), connections that stall in the TLS handshake,
//! the process's resident memory, and the check that a normal client is still served.
#![allow(dead_code)] // not every tool is used by every test

pub mod frames;

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::{ResponseFuture, SendRequest};
use proglog_proto::log::v1::{ConsumeRequest, ProduceRequest};
use rustls::pki_types::ServerName;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::server_support::{PATIENCE, TestNode, record};

pub const MIB: u64 = 1 << 20;

/// The tests measure the memory of the whole process, so they must not overlap: each holds this
/// for its whole run (whatever the harness's thread count).
pub static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// This process's resident memory (`VmRSS` of `/proc/self/status`), in bytes. The node runs in
/// this process, so that is the node's memory plus the test's clients: an upper bound.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .expect("a VmRSS line")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmRSS in kB");
    kib * 1024
}

/// A rustls client configuration as the node's dev `root` identity, speaking HTTP/2.
pub fn root_tls(node: &TestNode) -> Arc<rustls::ClientConfig> {
    let certs = node.certs();
    let roots = proglog_node::tls::load_root_store(&certs.join("ca.pem")).expect("CA");
    let chain = proglog_node::tls::load_certs(&certs.join("root.pem")).expect("root cert");
    let key = proglog_node::tls::load_private_key(&certs.join("root-key.pem")).expect("root key");
    let mut config =
        rustls::ClientConfig::builder_with_provider(proglog_node::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate");
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

fn server_name() -> ServerName<'static> {
    ServerName::try_from("localhost").expect("server name")
}

/// A raw HTTP/2 connection to the node as `root`. The connection is driven by a task of its own
/// and closes when the returned handle and all its streams are dropped.
pub async fn raw_connection(node: &TestNode, tls: Arc<rustls::ClientConfig>) -> SendRequest<Bytes> {
    let connect = async {
        let tcp = TcpStream::connect(node.addr).await.expect("TCP connect");
        let tls = TlsConnector::from(tls)
            .connect(server_name(), tcp)
            .await
            .expect("mutual TLS handshake");
        let (send, connection) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        send
    };
    tokio::time::timeout(PATIENCE, connect)
        .await
        .expect("raw connection within the patience")
}

/// Opens a `log.v1.Log` call (`method` is e.g. `Produce`) without ending the request: the caller
/// sends the body on the returned stream.
pub async fn open_call(
    send: &SendRequest<Bytes>,
    method: &str,
) -> (ResponseFuture, h2::SendStream<Bytes>) {
    let request = http::Request::post(format!("https://localhost/log.v1.Log/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request");
    let mut ready = tokio::time::timeout(PATIENCE, send.clone().ready())
        .await
        .expect("a stream slot within the patience")
        .expect("connection open");
    ready.send_request(request, false).expect("send headers")
}

/// A gRPC message as framed on the wire: the flag byte (uncompressed), the `announced` length,
/// then `payload` (which need not be `announced` bytes long: that is the point).
pub fn grpc_frame(announced: u32, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(5 + payload.len());
    frame.put_u8(0);
    frame.put_u32(announced);
    frame.put_slice(payload);
    frame.freeze()
}

/// A `ProduceRequest` of one record, framed honestly.
pub fn produce_message(value: &str) -> Bytes {
    let body = prost::Message::encode_to_vec(&ProduceRequest {
        record: Some(record(value)),
    });
    grpc_frame(u32::try_from(body.len()).expect("small"), &body)
}

/// How a raw call ended: the response messages' payloads and the final status.
pub struct Outcome {
    pub messages: Vec<Bytes>,
    pub status: tonic::Status,
}

/// Reads a call's response to its end (within the patience): its messages and its status, from
/// a trailers-only response or from the trailers.
pub async fn outcome(response: ResponseFuture) -> Outcome {
    let read = async {
        let response = response.await.expect("a response");
        let (parts, mut body) = response.into_parts();
        if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
            return Outcome {
                messages: Vec::new(),
                status,
            };
        }
        let mut bytes = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("response data");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        let trailers = body.trailers().await.expect("trailers").expect("trailers");
        let status = tonic::Status::from_header_map(&trailers).expect("grpc-status");
        Outcome {
            messages: split_messages(bytes.freeze()),
            status,
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the call ends within the patience")
}

fn split_messages(mut bytes: Bytes) -> Vec<Bytes> {
    let mut messages = Vec::new();
    while bytes.len() >= 5 {
        let len = u32::from_be_bytes(bytes[1..5].try_into().expect("4 bytes")) as usize;
        let _header = bytes.split_to(5);
        messages.push(bytes.split_to(len.min(bytes.len())));
    }
    messages
}

/// A normal tonic client, on a connection of its own, produces `value` and consumes it back;
/// returns its offset. Fails the test if that does not happen within the patience.
pub async fn still_served(node: &TestNode, value: &str) -> u64 {
    let served = async {
        let mut client = node.client(Some("root")).await;
        let offset = client
            .produce(ProduceRequest {
                record: Some(record(value)),
            })
            .await
            .expect("produce")
            .into_inner()
            .offset;
        let consumed = client
            .consume(ConsumeRequest { offset })
            .await
            .expect("consume")
            .into_inner()
            .record
            .expect("a record");
        assert_eq!(
            consumed.value,
            value.as_bytes(),
            "consumed what was produced"
        );
        offset
    };
    let offset = tokio::time::timeout(PATIENCE, served)
        .await
        .expect("a normal client is served within the patience");
    let server = node.handle.as_ref().expect("server task");
    assert!(!server.is_finished(), "the server task is still running");
    offset
}

/// The first bytes of a real TLS ClientHello (as `root` would send it), cut to `keep` bytes.
pub fn partial_client_hello(tls: Arc<rustls::ClientConfig>, keep: usize) -> Vec<u8> {
    let mut client = rustls::ClientConnection::new(tls, server_name()).expect("client");
    let mut hello = Vec::new();
    client.write_tls(&mut hello).expect("ClientHello");
    assert!(hello.len() > keep, "the cut leaves the hello incomplete");
    hello.truncate(keep);
    hello
}

/// A TCP connection to the node that sent `prefix` (maybe nothing) and then stalls.
pub async fn stalled_connection(node: &TestNode, prefix: &[u8]) -> TcpStream {
    let mut tcp = TcpStream::connect(node.addr).await.expect("TCP connect");
    tcp.write_all(prefix).await.expect("send the prefix");
    tcp
}

/// Whether the server has closed `stream` (EOF or reset), without waiting.
pub fn closed_by_server(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match stream.try_read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a TLS alert before the close
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}
