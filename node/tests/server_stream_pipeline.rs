//! A `ProduceStream` keeps several appends in flight: it starts the next one as soon as the
//! previous one's place in the log is fixed, acknowledges in request order whatever order the
//! appends complete in, and — when an append fails while later ones are already under way —
//! does not tell the client that the unacknowledged records were not executed.

mod server_support;

use std::sync::Arc;

use proglog_node::backend::{
    Appended, BackendError, BackendFuture, Consistency, LocalBackend, LogBackend, LogBounds,
    QueuedAppend,
};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{ConsumeRequest, ProduceRequest, ProduceResponse, Record, Server};
use proglog_proto::retry::says_not_executed;
use server_support::{NodeOptions, PATIENCE, TestNode, record};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// How the test ends an append: `None` lets the local log's outcome through.
type Release = oneshot::Sender<Option<BackendError>>;

/// The local backend, except that each append's answer waits for the test: the append starts
/// (its place in the log fixed) at once, then the test gets its record count and its release.
#[derive(Debug)]
struct Gated {
    inner: Arc<LocalBackend>,
    started: mpsc::UnboundedSender<(usize, Release)>,
}

impl LogBackend for Gated {
    fn append(&self, records: Vec<Record>) -> BackendFuture<'_, Appended> {
        self.inner.append(records)
    }

    fn append_in_order(&self, records: Vec<Record>) -> BackendFuture<'_, QueuedAppend> {
        Box::pin(async move {
            let count = records.len();
            let stored = self.inner.append_in_order(records).await?;
            let (release, released) = oneshot::channel();
            self.started
                .send((count, release))
                .expect("the test listens");
            Ok(Box::pin(async move {
                match released.await {
                    Ok(None) => stored.await,
                    Ok(Some(error)) => Err(error),
                    Err(_) => Err(BackendError::Closed),
                }
            }) as QueuedAppend)
        })
    }

    fn read(&self, offset: u64) -> BackendFuture<'_, Record> {
        self.inner.read(offset)
    }

    fn read_run(&self, from: u64, max_bytes: u64) -> BackendFuture<'_, Vec<Record>> {
        self.inner.read_run(from, max_bytes)
    }

    fn bounds(&self, consistency: Consistency) -> BackendFuture<'_, LogBounds> {
        self.inner.bounds(consistency)
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.subscribe()
    }

    fn servers(&self) -> BackendFuture<'_, Vec<Server>> {
        self.inner.servers()
    }

    fn shutdown(&self) -> BackendFuture<'_, ()> {
        self.inner.shutdown()
    }
}

/// A node serving [`Gated`], and where its appends are announced.
async fn gated_node() -> (TestNode, mpsc::UnboundedReceiver<(usize, Release)>) {
    let (started, announced) = mpsc::unbounded_channel();
    let node = TestNode::start_with(NodeOptions {
        wrap_backend: Some(Box::new(move |inner| {
            Arc::new(Gated { inner, started }) as Arc<dyn LogBackend>
        })),
        ..NodeOptions::default()
    })
    .await;
    (node, announced)
}

fn request(value: &str) -> ProduceRequest {
    ProduceRequest {
        record: Some(record(value)),
    }
}

/// Opens a `ProduceStream`: where to send requests, and the acknowledgements.
async fn open_stream(
    client: &mut LogClient<Channel>,
) -> (
    mpsc::Sender<ProduceRequest>,
    tonic::Streaming<ProduceResponse>,
) {
    let (tx, rx) = mpsc::channel(16);
    let acks = client
        .produce_stream(ReceiverStream::new(rx))
        .await
        .expect("stream opens")
        .into_inner();
    (tx, acks)
}

/// Sends `value` on the stream and waits until the node started appending it, alone.
async fn send_and_see_started(
    tx: &mpsc::Sender<ProduceRequest>,
    announced: &mut mpsc::UnboundedReceiver<(usize, Release)>,
    value: &str,
) -> Release {
    tx.send(request(value)).await.expect("stream open");
    let (count, release) = tokio::time::timeout(PATIENCE, announced.recv())
        .await
        .unwrap_or_else(|_| panic!("the append of {value} never started"))
        .expect("backend alive");
    assert_eq!(count, 1, "one record per append: each was sent alone");
    release
}

#[tokio::test]
async fn appends_overlap_and_acks_keep_request_order() {
    let (node, mut announced) = gated_node().await;
    let mut client = node.client(Some("root")).await;
    let (tx, mut acks) = open_stream(&mut client).await;

    // Two appends in flight at once: the first has not answered when the second starts (a
    // stream with one append in flight would never start the second here).
    let first = send_and_see_started(&tx, &mut announced, "a").await;
    let second = send_and_see_started(&tx, &mut announced, "b").await;

    // They complete last to first; the acknowledgements still come in request order.
    second.send(None).unwrap();
    first.send(None).unwrap();
    let third = send_and_see_started(&tx, &mut announced, "c").await;
    third.send(None).unwrap();
    drop(tx);
    let mut offsets = Vec::new();
    while let Some(ack) = tokio::time::timeout(PATIENCE, acks.message())
        .await
        .expect("acks come")
        .expect("no failure")
    {
        offsets.push(ack.offset);
    }
    assert_eq!(offsets, vec![0, 1, 2]);
    for (offset, value) in [(0, "a"), (1, "b"), (2, "c")] {
        let consumed = client
            .consume(ConsumeRequest { offset })
            .await
            .expect("committed")
            .into_inner();
        assert_eq!(&consumed.record.unwrap().value[..], value.as_bytes());
    }
    node.stop().await;
}

#[tokio::test]
async fn a_failure_with_later_appends_under_way_is_not_marked_not_executed() {
    let (node, mut announced) = gated_node().await;
    let mut client = node.client(Some("root")).await;

    // Alone, a refused append keeps its "not executed" mark: the client may resend safely.
    let (tx, mut acks) = open_stream(&mut client).await;
    let only = send_and_see_started(&tx, &mut announced, "alone").await;
    only.send(Some(BackendError::NotExecuted(
        "refused by the test".into(),
    )))
    .unwrap();
    let status = acks.message().await.expect_err("the append failed");
    assert!(says_not_executed(&status), "{status:?}");

    // With a later append already under way (it may still commit), the mark is dropped.
    let (tx, mut acks) = open_stream(&mut client).await;
    let first = send_and_see_started(&tx, &mut announced, "first").await;
    let second = send_and_see_started(&tx, &mut announced, "second").await;
    first
        .send(Some(BackendError::NotExecuted(
            "refused by the test".into(),
        )))
        .unwrap();
    let status = acks.message().await.expect_err("the first append failed");
    assert!(!says_not_executed(&status), "{status:?}");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status
            .message()
            .contains("may or may not have been committed"),
        "{status:?}"
    );
    drop(second);
    node.stop().await;
}
