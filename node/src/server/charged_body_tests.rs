//! Unit tests of the request and response bodies under the memory budget.

use std::time::Duration;

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
    ChargedBody {
        inner,
        budget: budget.clone(),
        max_message_bytes: 1000,
        credit: credit.clone(),
        header: Vec::new(),
        message_left: 0,
        rest: None,
        waiting: None,
    }
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
