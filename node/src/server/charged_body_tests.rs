//! Unit tests of the request and response bodies under the memory budget.

use std::time::Duration;

use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};

use super::*;

fn body_of(frames: Vec<Vec<u8>>) -> tonic::body::Body {
    let frames = frames
        .into_iter()
        .map(|f| Ok::<_, Status>(Frame::data(Bytes::from(f))));
    tonic::body::Body::new(StreamBody::new(futures::stream::iter(frames)))
}

/// A gRPC message header for a message of `len` bytes.
fn header(len: u32) -> Vec<u8> {
    let mut h = vec![0];
    h.extend_from_slice(&len.to_be_bytes());
    h
}

fn charged(inner: tonic::body::Body, budget: &MemoryBudget, credit: &RequestCredit) -> ChargedBody {
    ChargedBody::new(
        inner,
        budget.clone(),
        1000,
        Duration::from_secs(3600),
        credit.clone(),
    )
}

async fn next_data(body: &mut ChargedBody) -> Vec<u8> {
    body.frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn messages_are_paid_for_whole_before_any_of_them_is_handed_on() {
    let budget = MemoryBudget::new(20);
    let credit = RequestCredit::default();
    // Message A (8 bytes) and the first 3 bytes of B's header; then the rest of B.
    let mut first = header(8);
    first.extend_from_slice(b"aaaaaaaa");
    first.extend_from_slice(&header(8)[..3]);
    let mut second = header(8)[3..].to_vec();
    second.extend_from_slice(b"bbbbbbbb");
    let mut body = charged(
        body_of(vec![first.clone(), second.clone()]),
        &budget,
        &credit,
    );

    assert_eq!(next_data(&mut body).await, first, "A was paid for at once");
    assert_eq!((credit.bytes(), budget.available()), (13, 7));
    // B's header is handed on (A is complete); B itself waits for its 13 bytes.
    assert_eq!(next_data(&mut body).await, second[..2].to_vec());
    let waiting = tokio::spawn(async move { next_data(&mut body).await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!waiting.is_finished(), "B waits while the budget is spent");
    // The handler takes A's payment (decoded) and releases it (appended).
    drop(credit.take_message());
    assert_eq!(waiting.await.unwrap(), b"bbbbbbbb".to_vec());
    assert_eq!((credit.bytes(), budget.available()), (13, 7));
}

#[tokio::test]
async fn a_message_over_the_decoding_limit_is_not_paid_for() {
    let budget = MemoryBudget::new(20);
    let credit = RequestCredit::default();
    let mut frame = header(5000);
    frame.extend_from_slice(b"xyz");
    let mut body = charged(body_of(vec![frame.clone()]), &budget, &credit);
    assert_eq!(next_data(&mut body).await, frame);
    assert_eq!(
        budget.available(),
        20,
        "tonic refuses it; nothing to wait for"
    );
}

#[tokio::test]
async fn a_response_chunk_carries_its_budget_until_dropped() {
    let budget = MemoryBudget::new(10);
    let credit = Credit::default();
    credit.add(budget.acquire(10).await);
    let mut body = PaidBody {
        inner: body_of(vec![b"chunk!".to_vec(), b"more".to_vec(), b"free".to_vec()]),
        credit: credit.clone(),
    };
    let chunk = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&chunk[..], b"chunk!");
    assert_eq!((credit.bytes(), budget.available()), (4, 0));
    let more = body.frame().await.unwrap().unwrap().into_data().unwrap();
    let unpaid = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!((&more[..], &unpaid[..]), (&b"more"[..], &b"free"[..]));
    // A slice of the chunk (what HTTP/2 writes from) keeps the budget too.
    let tail = chunk.slice(3..);
    drop(chunk);
    assert_eq!(budget.available(), 0);
    drop(tail);
    assert_eq!(budget.available(), 6);
    drop(more);
    assert_eq!(budget.available(), 10);
}

/// A body that sends `frames` and then nothing, without ending.
fn stalling_body(frames: Vec<Vec<u8>>) -> tonic::body::Body {
    let frames = frames
        .into_iter()
        .map(|f| Ok::<_, Status>(Frame::data(Bytes::from(f))));
    let stream = futures::stream::iter(frames).chain(futures::stream::pending());
    tonic::body::Body::new(StreamBody::new(stream))
}

#[tokio::test]
async fn a_paid_message_whose_client_stalls_fails_the_call_and_releases_its_payment() {
    let budget = MemoryBudget::new(100);
    let credit = RequestCredit::default();
    let mut first = header(40);
    first.extend_from_slice(b"abc");
    let inner = stalling_body(vec![first.clone()]);
    let mut body = ChargedBody::new(
        inner,
        budget.clone(),
        1000,
        Duration::from_millis(50),
        credit.clone(),
    );
    assert_eq!(next_data(&mut body).await, first);
    assert_eq!(credit.bytes(), 45, "the whole message is paid for");
    let status = tokio::time::timeout(Duration::from_secs(20), body.frame())
        .await
        .expect("the stall ends the call")
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("37 of them are still missing"));
    assert!(
        body.frame().await.is_none(),
        "the body ends after the failure"
    );
    drop((body, credit));
    assert_eq!(budget.available(), 100, "the payment is released");
}

#[tokio::test]
async fn time_the_node_does_not_read_is_not_held_against_the_client() {
    let budget = MemoryBudget::new(100);
    let credit = RequestCredit::default();
    let (client, frames) = futures::channel::mpsc::unbounded::<Result<Frame<Bytes>, Status>>();
    let data = |bytes: &[u8]| Ok(Frame::data(Bytes::copy_from_slice(bytes)));
    let timeout = Duration::from_millis(500);
    let inner = tonic::body::Body::new(StreamBody::new(frames));
    let mut body = ChargedBody::new(inner, budget.clone(), 1000, timeout, credit.clone());
    let mut first = header(8);
    first.extend_from_slice(b"abc");
    client.unbounded_send(data(&first)).unwrap();
    assert_eq!(next_data(&mut body).await, first);
    // The node waits for the client, which sends more of the message at once...
    assert!(futures::poll!(body.frame()).is_pending());
    client.unbounded_send(data(b"de")).unwrap();
    // ... but the node reads it only after twice the timeout (its own backpressure).
    tokio::time::sleep(2 * timeout).await;
    assert_eq!(next_data(&mut body).await, b"de");
    // Waiting for the rest again: the client kept the node waiting for almost nothing so far.
    assert!(
        futures::poll!(body.frame()).is_pending(),
        "the node's own time counted against the client"
    );
    client.unbounded_send(data(b"fgh")).unwrap();
    assert_eq!(next_data(&mut body).await, b"fgh");
    assert_eq!(credit.bytes(), 13, "one message, paid once");
}
