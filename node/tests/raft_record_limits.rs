//! Record size limits apply to new produces only (issue 10, item 2): a node must apply and serve
//! every record the cluster committed, whatever its own `--max-record-size`,
//! `--max-message-size` and segment size are today. Real `proglog-node` processes: records larger
//! than the default message size are committed while one node is down, then every node restarts
//! with limits far below those records (and segments smaller than one record); the cluster comes
//! back, every node holds and serves the records, and only new produces see the new limit.
//! And the one size every node must agree on, the largest Raft entry, is checked when a produce
//! is proposed, never when the entry is stored or applied.

mod node_process;
mod raft_common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use node_process::cluster::{ProcessCluster, WAIT};
use proglog_node::backend::{BackendError, LogBackend};
use proglog_node::raft::{RaftBackend, RaftNodeConfig};
use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{ConsumeRequest, ProduceRequest, Record};
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// Larger than the default 4 MiB message, so serving it needs more than the node's own limit.
const LARGE: usize = 5 << 20;
const LARGE_RECORDS: u64 = 3;
/// The node that is down while the large records commit: it must apply them at the small limit.
const LATE: usize = 2;

const BIG_LIMITS: [(&str, &str); 2] = [
    ("PROGLOG_MAX_RECORD_SIZE", "6291456"),
    ("PROGLOG_MAX_MESSAGE_SIZE", "8388608"),
];
const SMALL_LIMITS: [(&str, &str); 2] = [
    ("PROGLOG_MAX_RECORD_SIZE", "1024"),
    ("PROGLOG_SEGMENT_MAX_STORE_BYTES", "1048576"),
];

fn large_value(i: u64) -> Bytes {
    Bytes::from(vec![b'a' + i as u8; LARGE])
}

fn client(cluster: &ProcessCluster, i: usize) -> LogClient<Channel> {
    let certs = cluster.dir.path().join("certs");
    let tls = client_tls_config(&ClientTlsFiles {
        ca: certs.join("ca.pem"),
        cert: Some(certs.join("root.pem")),
        key: Some(certs.join("root-key.pem")),
        server_name: None,
    })
    .expect("client tls");
    let channel = Endpoint::from_shared(format!("https://{}", cluster.addr(i)))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    LogClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

async fn produce(client: &mut LogClient<Channel>, value: Bytes) -> Result<u64, tonic::Status> {
    let record = Record {
        value,
        ..Default::default()
    };
    let request = ProduceRequest {
        record: Some(record),
    };
    client.produce(request).await.map(|r| r.into_inner().offset)
}

/// Produces through node `i` until it succeeds (the cluster may be electing a leader).
async fn produce_until_ok(cluster: &ProcessCluster, i: usize, value: Bytes) -> u64 {
    let deadline = Instant::now() + WAIT;
    let mut client = client(cluster, i);
    loop {
        match produce(&mut client, value.clone()).await {
            Ok(offset) => return offset,
            Err(status) => assert!(Instant::now() < deadline, "produce on node {i}: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until node `i` serves `offset` from its own log, and returns the value. Fails at once
/// if the node's process has exited (a node that cannot apply a committed entry stops).
async fn consume_when_applied(cluster: &mut ProcessCluster, i: usize, offset: u64) -> Bytes {
    let deadline = Instant::now() + WAIT;
    let mut client = client(cluster, i);
    loop {
        let request = ConsumeRequest { offset };
        match client.consume(request).await {
            Ok(response) => {
                let record = response.into_inner().record.expect("record");
                assert_eq!(record.offset, offset);
                return record.value;
            }
            Err(status) => {
                assert!(
                    cluster.is_running(i),
                    "node {i} exited before serving offset {offset} ({status}); its log:\n{}",
                    tail(&cluster.log(i))
                );
                assert!(
                    Instant::now() < deadline,
                    "node {i} never served offset {offset}: {status}; its log:\n{}",
                    tail(&cluster.log(i))
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_records_survive_a_restart_of_every_node_with_smaller_limits() {
    let mut cluster = ProcessCluster::new(3);
    for i in 0..3 {
        cluster.start(i, &BIG_LIMITS);
    }
    let formed = tokio::task::block_in_place(|| {
        cluster.form();
        cluster.cli_until_ok(0, &["produce", "small-before"])
    });
    assert!(formed.status.success(), "{formed:?}");

    // Committed by the other two while LATE is down: LATE applies them only after the restart.
    tokio::task::block_in_place(|| cluster.stop(LATE));
    for i in 0..LARGE_RECORDS {
        let offset = produce_until_ok(&cluster, 0, large_value(i)).await;
        assert_eq!(offset, 1 + i);
    }
    tokio::task::block_in_place(|| {
        cluster.stop(0);
        cluster.stop(1);
    });

    // Every node now refuses records a thousandth of those sizes, with default messages (4 MiB)
    // and 1 MiB segments.
    for i in 0..3 {
        cluster.start(i, &SMALL_LIMITS);
    }
    for i in [LATE, 0, 1] {
        for offset in 1..=LARGE_RECORDS {
            let value = consume_when_applied(&mut cluster, i, offset).await;
            assert!(
                value == large_value(offset - 1),
                "node {i} offset {offset}: {} bytes, not the record produced",
                value.len()
            );
        }
    }

    // The cluster takes new produces, on every node, under the new limit only.
    for i in 0..3 {
        let offset = produce_until_ok(&cluster, i, Bytes::from_static(b"small-after")).await;
        assert!(offset > LARGE_RECORDS, "{offset}");
        let mut client = client(&cluster, i);
        let refused = produce(&mut client, Bytes::from(vec![0u8; 1025]))
            .await
            .expect_err("a record over the new limit is refused");
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");
        assert!(refused.message().contains("1025"), "{refused}");
    }
    for i in 0..3 {
        assert!(
            cluster.is_running(i),
            "node {i}:\n{}",
            tail(&cluster.log(i))
        );
    }
}

/// One produce whose records exceed the largest Raft entry is refused where it is proposed
/// (on the leader, and on a follower before forwarding) with INVALID_ARGUMENT, and the cluster
/// keeps working: the entry never reaches a Raft log, whose append failing would stop the
/// leader's Raft core for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_larger_than_a_raft_entry_is_refused_when_proposed() {
    let mut cluster = raft_common::TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    // 76 MiB in 19 records of 4 MiB: each within any record limit, together over one entry.
    let records: Vec<Record> = (0..19)
        .map(|_| Record {
            value: Bytes::from(vec![1u8; 4 << 20]),
            ..Default::default()
        })
        .collect();
    for i in [leader, follower] {
        let backend = RaftBackend::new(cluster.node(i).clone());
        match backend.append(records.clone()).await {
            Err(BackendError::InvalidArgument(message)) => {
                assert!(message.contains("largest Raft entry"), "{message}")
            }
            other => panic!("node {i}: expected INVALID_ARGUMENT, got {other:?}"),
        }
    }
    let mut client = cluster.log_client(follower).await;
    let offset = raft_common::produce(&mut client, "still-working")
        .await
        .expect("the cluster keeps taking produces");
    assert_eq!(offset, 0);
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 1).await;
    }
}

/// Node 2 runs with a user-log record limit (100 bytes) and segments (4 KiB) far below the
/// records the others commit while it is down; the leader has purged those entries, so it
/// catches up by installing a snapshot: staging and installing it must take every record.
fn small_limits_on_node_2(config: &mut RaftNodeConfig) {
    raft_common::small_segments(config);
    config.raft.snapshot_policy = openraft::SnapshotPolicy::LogsSinceLast(20);
    config.raft.max_in_snapshot_log_to_keep = 0;
    config.raft.purge_batch_size = 1;
    if config.ordinal == 2 {
        config.user_log.max_record_bytes = 100;
        config.user_log.max_store_bytes = 4096;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_records_over_a_nodes_limits_installs() {
    const LAGGING: usize = 2;
    let mut cluster = raft_common::TestCluster::with_tuning(3, small_limits_on_node_2);
    cluster.start_all_and_form().await;
    cluster.stop(LAGGING).await;
    let leader = cluster.wait_for_leader_among(&[0, 1]).await;
    let mut client = cluster.log_client(leader).await;
    for i in 0..60u8 {
        let value = vec![i; 6000];
        raft_common::produce(&mut client, value)
            .await
            .expect("produce");
    }
    let leader_node = cluster.node(leader).clone();
    raft_common::wait_until("the leader purges entries behind a snapshot", || {
        leader_node
            .metrics()
            .purged
            .filter(|p| p.index > 20)
            .map(|_| ())
    })
    .await;

    cluster.start(LAGGING).await;
    cluster.wait_for_next_offset(LAGGING, 60).await;
    assert!(cluster.node(LAGGING).installed_snapshots() >= 1);
    assert_eq!(cluster.records(LAGGING), cluster.records(leader));
}
