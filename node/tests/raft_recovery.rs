//! Catch-up of a node far behind by snapshot (the leader has purged the entries it misses), and
//! a 5-node cluster surviving two failures.

mod raft_common;

use openraft::SnapshotPolicy;
use proglog_node::raft::RaftNodeConfig;
use raft_common::*;

fn snapshot_often(config: &mut RaftNodeConfig) {
    small_segments(config);
    config.raft.snapshot_policy = SnapshotPolicy::LogsSinceLast(20);
    config.raft.max_in_snapshot_log_to_keep = 0;
    config.raft.purge_batch_size = 1;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_far_behind_catches_up_by_snapshot() {
    let mut cluster = TestCluster::with_tuning(3, snapshot_often);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let lagging = (leader + 1) % 3;
    let mut client = cluster.log_client(leader).await;
    for i in 0..10u32 {
        produce(&mut client, format!("before-{i}"))
            .await
            .expect("produce");
    }
    cluster.wait_for_next_offset(lagging, 10).await;
    let lagging_last = cluster
        .node(lagging)
        .metrics()
        .last_log_index
        .expect("has entries");
    cluster.stop(lagging).await;

    for i in 0..300u32 {
        produce(&mut client, format!("while-down-{i}-{}", "x".repeat(64)))
            .await
            .expect("produce");
    }
    // The leader purged (whole segments of) the entries the stopped node is missing.
    let leader_node = cluster.node(leader).clone();
    wait_until("the leader purges its log past the lagging node", || {
        let purged = leader_node.metrics().purged?;
        (purged.index > lagging_last + 1).then_some(())
    })
    .await;
    let purged_dir_entries = std::fs::read_dir(cluster.data_dir(leader).join("raft/log"))
        .expect("raft log dir")
        .count();

    cluster.start(lagging).await;
    cluster.wait_for_next_offset(lagging, 310).await;
    assert_eq!(cluster.records(lagging), cluster.records(leader));
    assert!(
        cluster.node(lagging).installed_snapshots() >= 1,
        "caught up by installing a snapshot"
    );
    let snapshot = cluster
        .node(lagging)
        .metrics()
        .snapshot
        .expect("the node has a snapshot");
    assert!(
        snapshot.index > lagging_last,
        "snapshot {snapshot} covers what the node missed"
    );
    // Disk use on the leader is bounded: old segments were deleted.
    let entries_now = std::fs::read_dir(cluster.data_dir(leader).join("raft/log"))
        .expect("dir")
        .count();
    assert!(
        entries_now <= purged_dir_entries + 4,
        "raft log keeps shrinking behind snapshots"
    );

    // It keeps replicating normally afterwards.
    for i in 0..5u32 {
        produce(&mut client, format!("after-{i}"))
            .await
            .expect("produce");
    }
    cluster.wait_for_next_offset(lagging, 315).await;
    assert_eq!(cluster.records(lagging), cluster.records(leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_tolerate_two_failures() {
    let mut cluster = TestCluster::new(5);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2, 3, 4]).await;
    let mut client = cluster.log_client(leader).await;
    for i in 0..20u32 {
        produce(&mut client, format!("five-{i}"))
            .await
            .expect("produce");
    }
    // Stop the leader and one follower.
    let other = (leader + 1) % 5;
    cluster.stop(leader).await;
    cluster.stop(other).await;
    let rest: Vec<usize> = (0..5).filter(|&i| i != leader && i != other).collect();
    let new_leader = cluster.wait_for_leader_among(&rest).await;
    let mut client = cluster.log_client(rest[0]).await;
    for i in 20..40u32 {
        let offset = produce(&mut client, format!("five-{i}"))
            .await
            .expect("produce with two nodes down");
        assert_eq!(offset, u64::from(i));
    }
    for &i in &rest {
        cluster.wait_for_next_offset(i, 40).await;
        assert_eq!(cluster.records(i), cluster.records(new_leader));
    }
}
