//! The `log.v1.Log` service on a real node over mutual TLS: produce and consume, both streams,
//! errors (out of range, oversized, malformed), group commit and graceful shutdown.

mod server_support;

use std::time::Duration;

use futures::StreamExt;
use proglog_proto::log::v1::{
    Consistency, ConsumeRequest, GetLogBoundsRequest, GetServersRequest, ProduceBatchRequest,
    ProduceRequest,
};
use server_support::{NodeOptions, PATIENCE, TestNode, record};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic_types::StatusExt;

/// The number of group commits (fsyncs) the node has made, from its metrics.
fn commit_count(metrics_text: &str) -> u64 {
    metrics_text
        .lines()
        .find_map(|line| line.strip_prefix("proglog_log_commit_batch_records_count "))
        .expect("commit batch histogram")
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn produce_then_consume_returns_the_record_with_its_offset() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    for (expected, value) in ["first", "second"].into_iter().enumerate() {
        let offset = client
            .produce(ProduceRequest {
                record: Some(record(value)),
            })
            .await
            .unwrap()
            .into_inner()
            .offset;
        assert_eq!(offset, expected as u64);
    }
    let got = client
        .consume(ConsumeRequest { offset: 1 })
        .await
        .unwrap()
        .into_inner()
        .record
        .unwrap();
    assert_eq!(&got.value[..], b"second");
    assert_eq!(got.offset, 1);

    let servers = client
        .get_servers(GetServersRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(servers.servers.len(), 1);
    assert!(servers.servers[0].is_leader);
    node.stop().await;
}

#[tokio::test]
async fn consume_past_the_end_is_out_of_range_with_a_localized_message() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    client
        .produce(ProduceRequest {
            record: Some(record("only")),
        })
        .await
        .unwrap();
    let status = client
        .consume(ConsumeRequest { offset: 1 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    let detail = status
        .get_details_localized_message()
        .expect("LocalizedMessage detail");
    assert_eq!(detail.locale, "en-US");
    assert_eq!(
        detail.message,
        "The requested offset is outside the log's range: 1"
    );
    node.stop().await;
}

#[tokio::test]
async fn produce_batch_gets_contiguous_offsets_and_bounds_follow() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    client
        .produce(ProduceRequest {
            record: Some(record("zero")),
        })
        .await
        .unwrap();
    let batch = client
        .produce_batch(ProduceBatchRequest {
            records: vec![record("a"), record("b"), record("c")],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((batch.first_offset, batch.count), (1, 3));
    let bounds = client
        .get_log_bounds(GetLogBoundsRequest {
            consistency: Consistency::Linearizable as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((bounds.lowest_offset, bounds.next_offset), (0, 4));
    let c = client
        .consume(ConsumeRequest { offset: 3 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&c.record.unwrap().value[..], b"c");

    let empty = client
        .produce_batch(ProduceBatchRequest { records: vec![] })
        .await
        .unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    let missing = client
        .produce(ProduceRequest { record: None })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    node.stop().await;
}

#[tokio::test]
async fn concurrent_produces_all_get_distinct_durable_offsets() {
    let node = TestNode::start().await;
    let channel = node.channel(Some("root")).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let mut client = proglog_proto::log::v1::log_client::LogClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            client
                .produce(ProduceRequest {
                    record: Some(record(&format!("v{i}"))),
                })
                .await
                .unwrap()
                .into_inner()
                .offset
        }));
    }
    let mut offsets = Vec::new();
    for task in tasks {
        offsets.push(task.await.unwrap());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..64).collect::<Vec<u64>>());
    // Group commit: fewer fsyncs than records is possible but never more.
    let encoded = node.metrics.encode();
    assert!(
        encoded.contains("proglog_records_appended_total 64"),
        "{encoded}"
    );
    node.stop().await;
}

#[tokio::test]
async fn produce_stream_pipelines_and_acknowledges_in_order() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    let (tx, rx) = mpsc::channel(2048);
    // Everything is queued before reading any ack: many records are in flight at once.
    for i in 0..1000 {
        tx.send(ProduceRequest {
            record: Some(record(&format!("r{i}"))),
        })
        .await
        .unwrap();
    }
    drop(tx);
    let mut acks = client
        .produce_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut expected = 0;
    while let Some(ack) = acks.message().await.unwrap() {
        assert_eq!(ack.offset, expected);
        expected += 1;
    }
    assert_eq!(expected, 1000);
    let r = client
        .consume(ConsumeRequest { offset: 999 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&r.record.unwrap().value[..], b"r999");
    // Pipelined: records of the stream share fsyncs. One record per fsync (a stream that waits
    // for each ack before reading the next request) would need 1000.
    let fsyncs = commit_count(&node.metrics.encode());
    assert!(
        fsyncs <= 500,
        "{fsyncs} group commits for 1000 streamed records"
    );
    node.stop().await;
}

#[tokio::test]
async fn produce_stream_acknowledges_records_before_a_bad_one_then_fails() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    let requests = vec![
        ProduceRequest {
            record: Some(record("ok")),
        },
        ProduceRequest {
            record: Some(proglog_proto::log::v1::Record {
                value: vec![0u8; 64 * 1024 + 1].into(),
                ..Default::default()
            }),
        },
    ];
    let mut acks = client
        .produce_stream(futures::stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(acks.message().await.unwrap().unwrap().offset, 0);
    let status = acks.message().await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    node.stop().await;
}

#[tokio::test]
async fn consume_stream_replays_then_follows_new_records_and_ends_on_cancel() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    for v in ["a", "b"] {
        client
            .produce(ProduceRequest {
                record: Some(record(v)),
            })
            .await
            .unwrap();
    }
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .unwrap()
        .into_inner();
    for expected in ["a", "b"] {
        let r = stream.message().await.unwrap().unwrap().record.unwrap();
        assert_eq!(&r.value[..], expected.as_bytes());
    }
    // At the end of the log the stream waits; a new record arrives on it.
    let mut producer = node.client(Some("root")).await;
    producer
        .produce(ProduceRequest {
            record: Some(record("c")),
        })
        .await
        .unwrap();
    let r = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("the follower receives the new record")
        .unwrap()
        .unwrap()
        .record
        .unwrap();
    assert_eq!((r.offset, &r.value[..]), (2, &b"c"[..]));

    // Cancelling (dropping) the stream ends the server side: the RPC is counted as finished.
    drop(stream);
    server_support::eventually("the ConsumeStream to finish on the server", || {
        let text = node.metrics.encode();
        async move { text.contains("method=\"ConsumeStream\",code=\"Cancelled\"") }
    })
    .await;
    node.stop().await;
}

#[tokio::test]
async fn consume_stream_from_past_the_end_waits_for_the_offset() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    // From beyond the end: waits, then delivers once the offset exists.
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 1 })
        .await
        .unwrap()
        .into_inner();
    let mut producer = node.client(Some("root")).await;
    for v in ["x", "y"] {
        producer
            .produce(ProduceRequest {
                record: Some(record(v)),
            })
            .await
            .unwrap();
    }
    let r = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .record
        .unwrap();
    assert_eq!((r.offset, &r.value[..]), (1, &b"y"[..]));
    node.stop().await;
}

#[tokio::test]
async fn oversized_records_and_messages_are_rejected_clearly() {
    let node = TestNode::start().await;
    let mut client = node.client(Some("root")).await;
    let big = |n: usize| proglog_proto::log::v1::Record {
        value: vec![7u8; n].into(),
        ..Default::default()
    };
    // Over --max-record-size (64 KiB here) but within the message limit.
    let status = client
        .produce(ProduceRequest {
            record: Some(big(64 * 1024 + 1)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("maximum record size"),
        "{}",
        status.message()
    );
    // Over --max-message-size (256 KiB here).
    let status = client
        .produce(ProduceRequest {
            record: Some(big(300 * 1024)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Exactly the limit is fine, and the node still serves.
    let ok = client
        .produce(ProduceRequest {
            record: Some(big(64 * 1024)),
        })
        .await
        .unwrap();
    assert_eq!(ok.into_inner().offset, 0);
    node.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_ends_followers_and_keeps_every_acknowledged_record() {
    let node = TestNode::start_with(NodeOptions {
        shutdown_grace: Duration::from_secs(10),
        ..NodeOptions::default()
    })
    .await;
    let mut client = node.client(Some("root")).await;
    let mut follower = client
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .unwrap()
        .into_inner();
    let batch = client
        .produce_batch(ProduceBatchRequest {
            records: (0..100).map(|i| record(&format!("v{i}"))).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(batch.count, 100);
    let mut seen = 0;
    while seen < 100 {
        follower.message().await.unwrap().unwrap();
        seen += 1;
    }
    let dir = node.stop().await;
    // The follower was told the node is going away instead of hanging.
    let end = tokio::time::timeout(PATIENCE, async {
        loop {
            match follower.next().await {
                Some(Ok(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the follower stream ends");
    if let Some(Err(status)) = end {
        assert!(
            matches!(
                status.code(),
                Code::Unavailable | Code::Unknown | Code::Cancelled
            ),
            "{status:?}"
        );
    }
    // Everything acknowledged is in the log after a restart.
    let node = TestNode::start_in(dir, NodeOptions::default()).await;
    let mut client = node.client(Some("root")).await;
    let r = client
        .consume(ConsumeRequest { offset: 99 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&r.record.unwrap().value[..], b"v99");
    node.stop().await;
}

#[tokio::test]
async fn offsets_removed_by_retention_are_out_of_range_and_say_so() {
    let node = TestNode::start_with(NodeOptions {
        // Tiny segments (two records each) so whole segments can be dropped.
        log: proglog_log::LogConfig {
            max_index_bytes: 24,
            ..proglog_log::LogConfig::default()
        },
        ..NodeOptions::default()
    })
    .await;
    let mut client = node.client(Some("root")).await;
    client
        .produce_batch(ProduceBatchRequest {
            records: (0..10).map(|i| record(&format!("v{i}"))).collect(),
        })
        .await
        .unwrap();
    node.local.log().truncate_prefix(6).unwrap();
    let lowest = client
        .get_log_bounds(GetLogBoundsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .lowest_offset;
    assert!(lowest > 0 && lowest <= 6, "lowest {lowest}");

    let status = client
        .consume(ConsumeRequest { offset: 0 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert!(
        status.message().contains("retention start"),
        "{}",
        status.message()
    );
    let detail = status
        .get_details_localized_message()
        .expect("LocalizedMessage");
    assert!(
        detail
            .message
            .starts_with("The requested offset is outside the log's range: 0"),
        "{}",
        detail.message
    );
    // A stream from a removed offset fails the same way instead of skipping records.
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap_err().code(), Code::OutOfRange);
    // Offsets still held are served.
    let r = client
        .consume(ConsumeRequest { offset: 9 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(&r.record.unwrap().value[..], b"v9");
    node.stop().await;
}
