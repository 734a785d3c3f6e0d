//! A snapshot of more than 1 GiB of records (issue 10, item 6). A node joins a leader whose Raft
//! log was purged, so it catches up by one streamed snapshot: the sender reads the user log with
//! its chunked reader, the receiver writes a staging log on disk and then installs it. The
//! install takes longer than the transfer's stall timeout (the `slow-install` failpoint adds a
//! few seconds, as installing many GiB on a slow disk would), which must not count it: before,
//! the sender gave up on every attempt and resent the snapshot forever. Prints the size, time
//! and throughput of the catch-up.

mod raft_common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::SnapshotPolicy;
use proglog_node::raft::{RaftNodeConfig, failpoint};
use proglog_proto::log::v1::{ProduceBatchRequest, Record};
use proglog_proto::proglog::admin::v1::{AddLearnerRequest, InitializeRequest};
use raft_common::*;

/// 512 KiB records, four per request: 2 080 records are 1.02 GiB.
const RECORD_BYTES: usize = 512 * 1024;
const PER_BATCH: usize = 4;
const RECORDS: usize = 2080;
/// Longest the catch-up may take (a bound against hanging, not a performance assertion).
const CATCH_UP_WAIT: Duration = Duration::from_secs(600);

fn tune(config: &mut RaftNodeConfig) {
    config.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(50);
    config.raft.max_in_snapshot_log_to_keep = 0;
    // Far shorter than installing 1 GiB takes: only the transfer itself may count as a stall.
    config.network.snapshot_stall_timeout = Duration::from_secs(2);
}

fn value(i: usize) -> Bytes {
    let mut value = vec![(i % 251) as u8; RECORD_BYTES];
    value[..8].copy_from_slice(&(i as u64).to_be_bytes());
    value.into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_catches_up_from_a_snapshot_of_more_than_a_gibibyte() {
    failpoint::arm("slow-install");
    let mut cluster = TestCluster::with_tuning(2, tune);
    cluster.start(0).await;
    let mut admin = cluster.admin(0).await;
    admin
        .initialize(InitializeRequest { members: vec![] })
        .await
        .expect("initialize node 0");
    cluster.wait_for_leader_among(&[0]).await;

    let mut client = cluster.log_client(0).await;
    let produced = Instant::now();
    for batch in 0..RECORDS / PER_BATCH {
        let records = (0..PER_BATCH)
            .map(|j| Record {
                value: value(batch * PER_BATCH + j),
                ..Default::default()
            })
            .collect();
        client
            .produce_batch(ProduceBatchRequest { records })
            .await
            .expect("produce batch");
    }
    let bytes = (RECORDS * RECORD_BYTES) as f64;
    println!(
        "produced {:.2} GiB in {:?}",
        bytes / f64::from(1 << 30),
        produced.elapsed()
    );
    let leader = cluster.node(0).clone();
    wait_until("the leader purges its Raft log", || {
        leader.metrics().purged.filter(|p| p.index > 100)
    })
    .await;

    cluster.start(1).await;
    let joined = Instant::now();
    admin
        .add_learner(AddLearnerRequest {
            member: Some(cluster.member(1)),
            wait_caught_up: false,
        })
        .await
        .expect("add learner");
    let joining = cluster.node(1).clone();
    let deadline = Instant::now() + CATCH_UP_WAIT;
    while joining.user_log().applied_end() < RECORDS as u64 {
        assert!(
            Instant::now() < deadline,
            "the new node has {} of {RECORDS} records after {CATCH_UP_WAIT:?} ({} snapshots installed)",
            joining.user_log().applied_end(),
            joining.installed_snapshots()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = joined.elapsed();
    println!(
        "caught up by {} snapshot install(s): {:.2} GiB in {took:?}, {:.0} MiB/s",
        joining.installed_snapshots(),
        bytes / f64::from(1 << 30),
        bytes / f64::from(1 << 20) / took.as_secs_f64()
    );
    assert!(
        joining.installed_snapshots() >= 1,
        "caught up by a snapshot"
    );

    // The same records at the same offsets, compared without holding them all in memory.
    let ours = joining.user_log().log().clone();
    let theirs = leader.user_log().log().clone();
    assert_eq!(ours.lowest_offset(), theirs.lowest_offset());
    let mut compared = 0;
    for (a, b) in ours.reader(0).zip(theirs.reader(0)) {
        let (a, b) = (a.expect("new node's record"), b.expect("leader's record"));
        assert_eq!(a.0, b.0, "offsets");
        assert!(a.1 == b.1, "record {} differs", a.0);
        compared += 1;
    }
    assert_eq!(compared, RECORDS);
}
