//! Raft cluster paths that were implemented without tests: `GetLogBounds` with
//! `CONSISTENCY_LINEARIZABLE` (leader, follower forwarding to the leader, lost quorum),
//! `ProduceStream` through a follower (forwarded to the leader) and on the leader among unary
//! produces (several appends in flight, never reordered), and a stalled `InstallSnapshot`
//! stream on the receiving side.

mod raft_common;

use std::time::Duration;

use futures::StreamExt;
use proglog_node::raft::types::SnapshotMeta;
use proglog_node::raft::{RaftNodeConfig, TARGET_NODE_HEADER};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{Consistency, GetLogBoundsRequest, ProduceRequest, Record};
use proglog_proto::proglog::raft::v1::SnapshotChunk;
use proglog_proto::proglog::raft::v1::raft_client::RaftClient;
use raft_common::{TestCluster, WAIT, linearizable_bounds, produce};
use tonic::Code;
use tonic::transport::Channel;

fn follower_of(leader: usize) -> usize {
    (leader + 1) % 3
}

/// Sends `requests` on one `ProduceStream` and returns the acknowledged offsets, in order.
async fn stream_offsets(
    client: &mut LogClient<Channel>,
    requests: impl tokio_stream::Stream<Item = ProduceRequest> + Send + 'static,
) -> Vec<u64> {
    let mut acks = tokio::time::timeout(WAIT, client.produce_stream(requests))
        .await
        .expect("ProduceStream opens")
        .expect("the node accepts the stream")
        .into_inner();
    let mut offsets = Vec::new();
    while let Some(ack) = tokio::time::timeout(WAIT, acks.next())
        .await
        .expect("acks keep coming")
    {
        offsets.push(ack.expect("record acknowledged").offset);
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_bounds_on_leader_follower_and_without_quorum() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = follower_of(leader);

    let mut leader_client = cluster.log_client(leader).await;
    for i in 0..5 {
        produce(&mut leader_client, format!("record {i}"))
            .await
            .expect("produce on the leader");
    }

    // The leader confirms its leadership with a quorum, then answers from its committed log.
    assert_eq!(
        linearizable_bounds(&mut leader_client)
            .await
            .expect("leader answers"),
        (0, 5)
    );

    // A follower forwards the linearizable read to the leader, which runs the read-index and
    // answers its own bounds.
    let mut follower_client = cluster.log_client(follower).await;
    assert_eq!(
        linearizable_bounds(&mut follower_client)
            .await
            .expect("a follower forwards a linearizable read to the leader"),
        (0, 5)
    );
    // Its local read still works (and eventually agrees with the leader).
    raft_common::wait_until("the follower applied every record", || {
        (cluster.node(follower).user_log().applied_end() == 5).then_some(())
    })
    .await;

    // Lose the quorum: only the leader keeps running. It must answer UNAVAILABLE, not hang.
    let others: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    for &i in &others {
        cluster.stop(i).await;
    }
    let lost = linearizable_bounds(&mut leader_client)
        .await
        .expect_err("no linearizable read without a quorum");
    assert_eq!(lost.code(), Code::Unavailable, "{lost:?}");
    // Either the read-index found no quorum, or the leader already stepped down when its lease
    // ran out and knows no leader to name, or (when a re-election under load had moved the
    // leadership before the stop) the node forwards to a leader that is now unreachable.
    assert!(
        lost.message().contains("quorum")
            || lost.message().contains("no leader known")
            || lost.message().contains("unreachable"),
        "the error says the quorum or the leader is missing: {lost:?}"
    );
    // A LOCAL read still answers from the committed log.
    let local = leader_client
        .get_log_bounds(GetLogBoundsRequest {
            consistency: Consistency::Local as i32,
        })
        .await
        .expect("local bounds without a quorum")
        .into_inner();
    assert_eq!((local.lowest_offset, local.next_offset), (0, 5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_stream_on_a_follower_is_forwarded_in_order() {
    const RECORDS: u64 = 200;
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = follower_of(leader);

    // Two records through the leader first, so the follower's acks must be the leader's offsets
    // (not a count starting at zero).
    let mut leader_client = cluster.log_client(leader).await;
    for i in 0..2 {
        produce(&mut leader_client, format!("before {i}"))
            .await
            .expect("produce on the leader");
    }

    let mut follower_client = cluster.log_client(follower).await;
    let requests = tokio_stream::iter((0..RECORDS).map(|i| ProduceRequest {
        record: Some(Record {
            value: format!("streamed {i}").into_bytes().into(),
            ..Default::default()
        }),
    }));
    let offsets = stream_offsets(&mut follower_client, requests).await;
    let expected: Vec<u64> = (2..2 + RECORDS).collect();
    assert_eq!(offsets, expected, "acks in request order, leader's offsets");

    let mut values: Vec<Vec<u8>> = (0..2).map(|i| format!("before {i}").into_bytes()).collect();
    values.extend((0..RECORDS).map(|i| format!("streamed {i}").into_bytes()));
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 2 + RECORDS).await;
    }
    let leader_records = cluster.records(leader);
    for i in 0..3 {
        assert_eq!(cluster.records(i), leader_records, "node {i} agrees");
    }
    // The stored records are prost `log.v1.Record`s: check values and offsets.
    for (offset, bytes) in leader_records.iter().enumerate() {
        let record: Record = prost::Message::decode(bytes.as_ref()).expect("stored record");
        assert_eq!(record.offset, offset as u64);
        assert_eq!(record.value.as_ref(), values[offset].as_slice());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_stream_on_the_leader_keeps_its_order_among_unary_produces() {
    const STREAMED: u64 = 3000;
    const UNARY_CLIENTS: u64 = 4;
    const UNARY_EACH: u64 = 60;
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;

    // Unary produces on the leader compete for Raft entries while the stream runs.
    let mut unary = Vec::new();
    for c in 0..UNARY_CLIENTS {
        let mut client = cluster.log_client(leader).await;
        unary.push(tokio::spawn(async move {
            for i in 0..UNARY_EACH {
                produce(&mut client, format!("unary {c} {i}"))
                    .await
                    .expect("unary produce on the leader");
            }
        }));
    }
    // The stream's requests arrive in small bursts, so the stream appends many small chunks,
    // several at a time.
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        for i in 0..STREAMED {
            let request = ProduceRequest {
                record: Some(Record {
                    value: format!("streamed {i}").into_bytes().into(),
                    ..Default::default()
                }),
            };
            if tx.send(request).await.is_err() {
                return;
            }
            if i % 7 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut stream_client = cluster.log_client(leader).await;
    let requests = tokio_stream::wrappers::ReceiverStream::new(rx);
    let offsets = stream_offsets(&mut stream_client, requests).await;
    for task in unary {
        task.await.expect("unary client");
    }
    assert_eq!(offsets.len() as u64, STREAMED);
    assert!(
        offsets.windows(2).all(|w| w[0] < w[1]),
        "acknowledged offsets rise in request order"
    );

    let total = STREAMED + UNARY_CLIENTS * UNARY_EACH;
    for i in 0..3 {
        cluster.wait_for_next_offset(i, total).await;
    }
    let records = cluster.records(leader);
    for i in 0..3 {
        assert_eq!(cluster.records(i), records, "node {i} agrees");
    }
    let values: Vec<String> = records
        .iter()
        .map(|bytes| {
            let record: Record = prost::Message::decode(bytes.as_ref()).expect("stored record");
            String::from_utf8(record.value.to_vec()).expect("utf-8 value")
        })
        .collect();
    for (i, &offset) in offsets.iter().enumerate() {
        assert_eq!(
            values[offset as usize],
            format!("streamed {i}"),
            "offset {offset}"
        );
    }
    let streamed: Vec<&String> = values
        .iter()
        .filter(|v| v.starts_with("streamed "))
        .collect();
    assert_eq!(
        streamed.len() as u64,
        STREAMED,
        "each streamed record stored once"
    );
}

fn short_snapshot_stall(config: &mut RaftNodeConfig) {
    config.network.snapshot_stall_timeout = Duration::from_secs(1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_install_snapshot_is_abandoned_and_leaves_the_node_intact() {
    let mut cluster = TestCluster::with_tuning(3, short_snapshot_stall);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let target = follower_of(leader);
    let mut client = cluster.log_client(leader).await;
    for i in 0..3 {
        produce(&mut client, format!("kept {i}"))
            .await
            .expect("produce");
    }
    cluster.wait_for_next_offset(target, 3).await;
    let before = cluster.records(target);
    let node = cluster.node(target).clone();
    let metrics = node.metrics();

    // A plausible first chunk: the current vote and membership, announcing 10 records of which
    // it carries 2; then the sender goes silent with the stream still open.
    let meta = SnapshotMeta {
        last_log_id: metrics.last_applied,
        last_membership: (*metrics.membership_config).clone(),
    };
    let header = serde_json::json!({
        "vote": metrics.vote,
        "meta": meta,
        "first_offset": 0,
        "next_offset": 10,
    });
    let first = SnapshotChunk {
        header: serde_json::to_vec(&header).expect("header json").into(),
        records: vec![b"staged 0".to_vec().into(), b"staged 1".to_vec().into()],
    };
    let (chunks, outbound) = tokio::sync::mpsc::channel::<SnapshotChunk>(4);
    chunks.send(first).await.expect("queue the first chunk");
    let mut request = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(outbound));
    request.metadata_mut().insert(
        TARGET_NODE_HEADER,
        node.node_id().to_string().parse().expect("header value"),
    );
    let mut raft = RaftClient::new(cluster.channel(target, "node").await);
    let status = tokio::time::timeout(WAIT, raft.install_snapshot(request))
        .await
        .expect("the receiver ends a stalled transfer instead of waiting forever")
        .expect_err("a stalled transfer fails");
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("stalled"),
        "the error says why: {status:?}"
    );
    drop(chunks); // kept open until the server gave up

    // Nothing was installed, the staging directory was cleaned up, and the node still works.
    assert_eq!(node.installed_snapshots(), 0);
    assert_eq!(cluster.records(target), before);
    let staging = cluster
        .data_dir(target)
        .join("raft")
        .join("snapshot-staging");
    raft_common::wait_until("the staging log is removed", || {
        let leftovers = std::fs::read_dir(&staging)
            .map(|entries| entries.count())
            .unwrap_or(0);
        (leftovers == 0).then_some(())
    })
    .await;
    for i in 3..6 {
        produce(&mut client, format!("after {i}"))
            .await
            .expect("produce after the stalled transfer");
    }
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 6).await;
    }
    assert_eq!(cluster.records(target), cluster.records(leader));
    assert_eq!(
        cluster.node(target).metrics().current_leader,
        Some(cluster.node(leader).node_id()),
        "the target still follows the same leader"
    );
}
