//! A draining node (shutdown started, a call still in flight) keeps its port open and answers
//! every call on a new connection with `UNAVAILABLE` marked not-executed, so the clients that
//! still reach it retry elsewhere instead of being refused at connect — which, through a
//! `kubectl port-forward`, would cut the connection carrying the call in flight. The call in
//! flight completes; then the port closes.

mod abuse_support;
mod server_support;

use std::time::Duration;

use abuse_support::{grpc_frame, open_call, outcome, produce_message, raw_connection, root_tls};
use bytes::Bytes;
use proglog_proto::log::v1::{ProduceRequest, ProduceResponse};
use proglog_proto::retry::{produce_not_executed, says_not_executed};
use server_support::{NodeOptions, PATIENCE, TestNode, record};
use tonic::Code;

#[tokio::test]
async fn a_draining_node_refuses_new_calls_as_not_executed_and_finishes_the_one_in_flight() {
    let node = TestNode::start_with(NodeOptions {
        shutdown_grace: PATIENCE,
        ..NodeOptions::default()
    })
    .await;

    // A produce in flight: its request message is half sent, so the node waits for the rest.
    let connection = raw_connection(&node, root_tls(&node)).await;
    let (response, mut body) = open_call(&connection, "Produce").await;
    let message = prost::Message::encode_to_vec(&ProduceRequest {
        record: Some(record("in flight at shutdown")),
    });
    let frame = grpc_frame(u32::try_from(message.len()).expect("small"), &message);
    let (head, tail) = frame.split_at(8);
    body.send_data(Bytes::copy_from_slice(head), false)
        .expect("first half");
    // A whole produce on the same connection, answered: HTTP/2 frames of one connection arrive
    // in order, so the node has the half-sent call by then.
    let (answer, mut whole) = open_call(&connection, "Produce").await;
    whole
        .send_data(produce_message("before shutdown"), true)
        .expect("a whole produce");
    assert_eq!(outcome(answer).await.status.code(), Code::Ok);

    node.shutdown.cancel();

    // A new connection while the node drains: served, until the drain takes effect, then
    // refused call by call — never at connect.
    let refusal = tokio::time::timeout(PATIENCE, async {
        loop {
            let channel = match node.channel(Some("root")).await {
                Ok(channel) => channel,
                Err(error) => panic!(
                    "a new connection to the draining node failed (the port closed while a call \
                     was in flight): {error:?}",
                ),
            };
            let mut client = proglog_proto::log::v1::log_client::LogClient::new(channel);
            match client
                .produce(ProduceRequest {
                    record: Some(record("after shutdown")),
                })
                .await
            {
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(status) => return status,
            }
        }
    })
    .await
    .expect("a refusal within the patience");
    assert_eq!(refusal.code(), Code::Unavailable, "{refusal:?}");
    assert!(
        says_not_executed(&refusal),
        "marked not executed: {refusal:?}"
    );
    assert!(produce_not_executed(&refusal));
    assert!(
        refusal.message().contains("shutting down"),
        "the message says why: {refusal:?}"
    );
    assert!(
        !node.handle.as_ref().expect("server").is_finished(),
        "the node waits for the call in flight"
    );

    // The call in flight completes.
    body.send_data(Bytes::copy_from_slice(tail), true)
        .expect("second half");
    let answered = outcome(response).await;
    assert_eq!(answered.status.code(), Code::Ok, "{:?}", answered.status);
    let produced: ProduceResponse =
        prost::Message::decode(answered.messages.first().expect("a response").clone())
            .expect("a ProduceResponse");
    drop(connection);

    // Then the node stops, and its port is closed.
    let addr = node.addr;
    let dir = node.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the port is closed after the drain"
    );

    // The acknowledged record is in the log after a restart.
    let node = TestNode::start_in(dir, NodeOptions::default()).await;
    let mut client = node.client(Some("root")).await;
    let read = client
        .consume(proglog_proto::log::v1::ConsumeRequest {
            offset: produced.offset,
        })
        .await
        .expect("consume")
        .into_inner()
        .record
        .expect("a record");
    assert_eq!(read.value, &b"in flight at shutdown"[..]);
}
