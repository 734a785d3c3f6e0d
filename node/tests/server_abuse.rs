//! Abuse of a real node's gRPC port (in process, real mutual TLS; issue 11): truncated gRPC
//! messages, absurd length prefixes, ten thousand concurrent HTTP/2 streams (within the stream
//! cap on 40 connections, and beyond it on one), streams that announce large messages and
//! stall, and connections that stall in the TLS handshake. After each, the node's server task
//! still runs and a normal tonic client, on a connection of its own, produces and consumes; no
//! bad request appends a record.
//!
//! Malformed requests go through a raw HTTP/2 client (`h2` over `tokio-rustls`, as the dev
//! `root` identity) or, past the stream cap, hand-written frames; see `abuse_support`. Memory
//! is the process's `VmRSS`, which includes the test's own clients: the bounds are upper bounds
//! for the node. The tests run one at a time ([`ONE_AT_A_TIME`]) so that each measures only
//! itself. No assertion on speed: deadlines are generous and only stop a hang.

mod abuse_support;
mod server_support;

use std::time::Duration;

use abuse_support::frames::FloodingClient;
use abuse_support::{
    MIB, ONE_AT_A_TIME, closed_by_server, grpc_frame, open_call, outcome, partial_client_hello,
    produce_message, raw_connection, root_tls, rss_bytes, stalled_connection, still_served,
};
use proglog_node::server::ServerLimits;
use server_support::{NodeOptions, PATIENCE, TestNode, eventually};
use tonic::Code;

#[tokio::test]
async fn a_truncated_message_fails_the_call_and_appends_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let node = TestNode::start().await;
    let raw = raw_connection(&node, root_tls(&node)).await;

    // Unary: the prefix announces 100 bytes, 10 follow, then END_STREAM.
    let (response, mut body) = open_call(&raw, "Produce").await;
    body.send_data(grpc_frame(100, &[0x0a; 10]), true).unwrap();
    let unary = outcome(response).await.status;
    // What gRPC prescribes for a request that is not a whole message (as grpc-go and tonic do).
    assert_eq!(unary.code(), Code::Internal, "{unary:?}");
    assert_eq!(unary.message(), "Unexpected EOF decoding stream.");

    // Streaming: one whole message is appended and acknowledged, the truncated one after it
    // fails the call.
    let (response, mut body) = open_call(&raw, "ProduceStream").await;
    let mut data = produce_message("whole").to_vec();
    data.extend_from_slice(&grpc_frame(100, &[0x0a; 10]));
    body.send_data(data.into(), true).unwrap();
    let streamed = outcome(response).await;
    assert_eq!(
        streamed.status.code(),
        Code::Internal,
        "{:?}",
        streamed.status
    );
    assert_eq!(
        streamed.messages.len(),
        1,
        "the whole message is acknowledged"
    );

    assert_eq!(
        node.log_length().await,
        1,
        "only the whole message was appended"
    );
    assert_eq!(still_served(&node, "after truncation").await, 1);
    node.stop().await;
}

#[tokio::test]
async fn a_4_gib_length_prefix_is_refused_at_once_without_allocating_it() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let node = TestNode::start().await;
    let raw = raw_connection(&node, root_tls(&node)).await;
    let before = rss_bytes();

    // The request stays open: the answer must come from the prefix alone, not after 4 GiB.
    for method in ["Produce", "ProduceStream", "Consume", "ProduceBatch"] {
        let (response, mut body) = open_call(&raw, method).await;
        body.send_data(grpc_frame(u32::MAX, b"0123456789"), false)
            .unwrap();
        let status = outcome(response).await.status;
        assert_eq!(
            status.code(),
            Code::ResourceExhausted,
            "{method}: {status:?}"
        );
        assert!(
            status.message().contains("4294967295") && status.message().contains("limit"),
            "{method}: the message says what was announced and the limit: {}",
            status.message()
        );
        drop(body);
    }

    let grown = rss_bytes().saturating_sub(before);
    eprintln!("RSS growth after four 4 GiB prefixes: {} KiB", grown / 1024);
    assert!(
        grown < 64 * MIB,
        "the announced 4 GiB were not allocated (grew {} MiB)",
        grown / MIB
    );
    assert_eq!(node.log_length().await, 0, "nothing was appended");
    assert_eq!(still_served(&node, "after a huge prefix").await, 0);
    node.stop().await;
}

/// Connections of the many-streams test, each with streams up to the node's default per
/// connection cap (256): 10 000 streams in all.
const STREAM_CONNECTIONS: usize = 40;
const STREAMS_PER_CONNECTION: usize = 250;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_open_streams_stay_bounded_and_others_are_served() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut options = NodeOptions::default();
    // The stalled messages stay open for the whole test (their timeout is the next test's).
    options.limits.message_timeout = 100 * PATIENCE;
    let node = TestNode::start_with(options).await;
    let tls = root_tls(&node);
    let before = rss_bytes();

    // Every stream is a ProduceStream whose body starts a 1 KiB message and never finishes it.
    let (mut connections, mut held, mut responses) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..STREAM_CONNECTIONS {
        let raw = raw_connection(&node, tls.clone()).await;
        for _ in 0..STREAMS_PER_CONNECTION {
            let (response, mut body) = open_call(&raw, "ProduceStream").await;
            body.send_data(grpc_frame(1024, &[0x0a; 16]), false)
                .unwrap();
            held.push(body);
            responses.push(response);
        }
        connections.push(raw);
    }
    // The node answers every stream's headers: all 10 000 calls are open on its side.
    let mut open = Vec::new();
    for response in responses {
        let response = tokio::time::timeout(PATIENCE, response)
            .await
            .expect("the node answers each stream")
            .expect("a response");
        assert_eq!(response.status(), http::StatusCode::OK);
        open.push(response);
    }
    let streams = open.len();
    let grown = rss_bytes().saturating_sub(before);
    eprintln!(
        "{streams} open streams on {STREAM_CONNECTIONS} connections: RSS grew {} MiB",
        grown / MIB
    );

    // Served while all of them stay open.
    assert_eq!(still_served(&node, "beside 10k streams").await, 0);
    assert_eq!(streams, STREAM_CONNECTIONS * STREAMS_PER_CONNECTION);
    // Bound: 20 KiB of HTTP/2, tonic and handler state per stream on both sides (the client is
    // in this process too; tonic alone gives each call an 8 KiB decoding buffer), plus every
    // connection's 1 MiB window.
    let bound = (streams as u64 * 20 * 1024) + STREAM_CONNECTIONS as u64 * MIB;
    assert!(
        grown < bound,
        "RSS grew {} MiB with {streams} streams open, over the {} MiB bound",
        grown / MIB,
        bound / MIB
    );
    drop((held, open, connections));
    assert_eq!(
        node.log_length().await,
        1,
        "no stalled message was appended"
    );
    node.stop().await;
}

/// Streams one raw connection opens at once, ignoring the node's limit.
const FLOOD: usize = 10_000;

#[tokio::test]
async fn streams_beyond_the_per_connection_cap_are_refused() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let node = TestNode::start().await;
    let cap = ServerLimits::default().max_concurrent_streams as usize;
    let before = rss_bytes();

    // One connection, 10 000 ProduceStream calls at once: what a client that ignores the
    // server's SETTINGS_MAX_CONCURRENT_STREAMS sends.
    let mut flood = FloodingClient::connect(&node, root_tls(&node)).await;
    flood.open_streams("ProduceStream", FLOOD).await;
    eventually("the node answers every stream or goes away", || {
        let answers = flood.answers();
        async move { answers.goaway || answers.opened.len() + answers.refused.len() >= FLOOD }
    })
    .await;
    let answers = flood.answers();
    eprintln!(
        "{FLOOD} streams on one connection: {} opened, {} refused, GOAWAY {}; RSS grew {} KiB",
        answers.opened.len(),
        answers.refused.len(),
        answers.goaway,
        rss_bytes().saturating_sub(before) / 1024
    );
    assert!(
        answers.opened.len() <= cap,
        "at most the cap ({cap}) of calls started, not {}",
        answers.opened.len()
    );
    assert!(answers.opened.is_disjoint(&answers.refused));
    // Served while the flooding connection (and its open calls) stay open.
    assert_eq!(still_served(&node, "beside a stream flood").await, 0);
    assert!(
        !flood.answers().closed,
        "the flood's connection is still open"
    );
    drop(flood);
    node.stop().await;
}

/// How long the stalled-messages test's node waits for an announced message's bytes.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test]
async fn streams_that_announce_large_messages_and_stall_do_not_starve_others() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut options = NodeOptions::default();
    options.limits.memory_budget_bytes = 16 * MIB as usize;
    options.limits.message_timeout = MESSAGE_TIMEOUT;
    let announced = options.limits.max_message_bytes as u32;
    let node = TestNode::start_with(options).await;
    let raw = raw_connection(&node, root_tls(&node)).await;
    let before = rss_bytes();

    // Twice the node's whole memory budget announced in messages of the largest size accepted,
    // 16 bytes of each sent. Each message is paid for whole when its prefix arrives, so without
    // a bound on the wait for the rest, these calls would hold the budget for good and every
    // other call of the node (even GetLogBounds) would queue behind them.
    let stalled_streams = 2 * 16 * MIB as usize / announced as usize;
    let (mut responses, mut held) = (Vec::new(), Vec::new());
    for i in 0..stalled_streams {
        let method = if i % 2 == 0 {
            "Produce"
        } else {
            "ProduceStream"
        };
        let (response, mut body) = open_call(&raw, method).await;
        body.send_data(grpc_frame(announced, &[0x0a; 16]), false)
            .unwrap();
        responses.push(response);
        held.push(body);
    }
    // Served while the stalled clients' connection and streams stay open on their side.
    assert_eq!(still_served(&node, "beside stalled messages").await, 0);
    for response in responses {
        let status = outcome(response).await.status;
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(
            status.message().contains("--message-timeout"),
            "the message names the limit: {}",
            status.message()
        );
    }
    eprintln!(
        "{stalled_streams} stalled messages of {} KiB: RSS grew {} KiB",
        announced / 1024,
        rss_bytes().saturating_sub(before) / 1024
    );
    drop((held, raw));
    assert_eq!(
        node.log_length().await,
        1,
        "no stalled message was appended"
    );
    assert_eq!(still_served(&node, "after stalled messages").await, 1);
    node.stop().await;
}

/// Connections of the slow-loris test: half send nothing, half half a ClientHello.
const STALLED_HANDSHAKES: usize = 500;

#[tokio::test]
async fn stalled_tls_handshakes_are_closed_and_do_not_block_others() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let mut options = NodeOptions::default();
    // Room for all of them, so that the handshake timeout (not the eviction of the oldest
    // handshake at the cap) is what closes them.
    options.limits.max_unauthenticated_connections = 2 * STALLED_HANDSHAKES;
    options.limits.handshake_timeout = Duration::from_secs(3);
    let node = TestNode::start_with(options).await;
    let hello = root_tls(&node);
    let before = rss_bytes();

    let mut stalled = Vec::new();
    for i in 0..STALLED_HANDSHAKES {
        let prefix = if i % 2 == 0 {
            Vec::new()
        } else {
            partial_client_hello(hello.clone(), 100)
        };
        stalled.push(stalled_connection(&node, &prefix).await);
    }
    assert_eq!(still_served(&node, "beside stalled handshakes").await, 0);
    let open = stalled.iter().filter(|s| !closed_by_server(s)).count();
    eprintln!(
        "{open} of {STALLED_HANDSHAKES} stalled handshakes still open when a normal client was \
         served; RSS grew {} KiB",
        rss_bytes().saturating_sub(before) / 1024
    );

    eventually("the node closes every stalled handshake", || {
        let all = stalled.iter().all(closed_by_server);
        async move { all }
    })
    .await;
    assert_eq!(still_served(&node, "after stalled handshakes").await, 1);
    node.stop().await;
}
