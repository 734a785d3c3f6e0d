//! Raft-level group commit (`raft::batcher`) and the stored-record format it goes with:
//! concurrent produces through the leader and a follower share Raft entries (and, on the
//! follower, forward RPCs), yet every caller
//! gets its own distinct offsets, every node stores the same records with the right offset and
//! term and counts them in its metrics, and a node restarted afterwards reads them back the
//! same way.

mod raft_common;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use proglog_proto::log::v1::{ProduceBatchRequest, Record};
use raft_common::*;
use tokio::sync::Barrier;

const PRODUCERS: usize = 120;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_produces_share_entries_and_keep_their_own_offsets() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let entries_before = cluster
        .node(leader)
        .metrics()
        .last_log_index
        .expect("the formed cluster has entries");

    // Many unary produces at once, half of them forwarded by a follower, plus one multi-record
    // ProduceBatch whose records must stay together and in order. A barrier starts them
    // together, however slowly the clients connect.
    let start = Arc::new(Barrier::new(PRODUCERS + 1));
    let mut tasks = Vec::new();
    for i in 0..PRODUCERS {
        let mut client = cluster
            .log_client(if i % 2 == 0 { leader } else { follower })
            .await;
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let value = format!("record-{i}");
            let offset = produce(&mut client, value.clone()).await.expect("produce");
            vec![(offset, value)]
        }));
    }
    let mut batch_client = cluster.log_client(leader).await;
    tasks.push(tokio::spawn(async move {
        start.wait().await;
        let values: Vec<String> = (0..5).map(|i| format!("batch-{i}")).collect();
        let records = values
            .iter()
            .map(|v| Record {
                value: Bytes::from(v.clone()),
                ..Default::default()
            })
            .collect();
        let reply = batch_client
            .produce_batch(ProduceBatchRequest { records })
            .await
            .expect("produce batch")
            .into_inner();
        assert_eq!(reply.count, 5);
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| (reply.first_offset + i as u64, v))
            .collect()
    }));
    let mut acked = BTreeMap::new();
    for task in tasks {
        for (offset, value) in task.await.expect("producer task") {
            assert!(
                acked.insert(offset, value).is_none(),
                "offset {offset} was given to two produces"
            );
        }
    }
    let total = (PRODUCERS + 5) as u64;
    assert_eq!(
        acked.keys().copied().collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>(),
        "offsets are exactly 0..{total}"
    );

    // The follower sent its half in fewer forward RPCs than produces.
    let forwards = cluster.node(follower).forward_rpcs();
    assert!(
        (1..PRODUCERS as u64 / 2).contains(&forwards),
        "{} produces through the follower took {forwards} forward RPCs",
        PRODUCERS / 2
    );

    // Fewer Raft entries than produces: concurrent produces were merged.
    let entries = cluster
        .node(leader)
        .metrics()
        .last_log_index
        .expect("entries")
        - entries_before;
    eprintln!("{total} records: {entries} Raft entries, {forwards} forward RPCs from the follower");
    assert!(
        entries < PRODUCERS as u64,
        "{PRODUCERS} concurrent produces took {entries} Raft entries; none were merged"
    );

    // Every node stores each record at the offset its producer was told, with offset and
    // term filled in.
    let term = cluster.leader_status_term(leader).await;
    for i in 0..3 {
        cluster.wait_for_next_offset(i, total).await;
    }
    let mut to_follower = cluster.log_client(follower).await;
    for (&offset, value) in &acked {
        let record = consume(&mut to_follower, offset).await.expect("consume");
        assert_eq!(record.value, value.as_bytes(), "value at offset {offset}");
        assert_eq!(record.offset, offset);
        assert_eq!(record.term, term, "term of the record at offset {offset}");
    }
    assert_eq!(cluster.records(0), cluster.records(1));
    assert_eq!(cluster.records(0), cluster.records(2));

    // Every node's Prometheus metrics count what it applied and its Raft log fsyncs; the
    // leader's entries-per-batch histogram saw fewer entries than produces.
    for i in 0..3 {
        let text = cluster.node(i).prometheus().encode();
        assert_eq!(
            metric(&text, "proglog_records_appended_total"),
            total as f64,
            "node {i}:\n{text}"
        );
        assert!(metric(&text, "proglog_log_fsync_duration_seconds_count") > 0.0);
    }
    let text = cluster.node(leader).prometheus().encode();
    let entries_observed = metric(&text, "proglog_log_commit_batch_records_count");
    assert!(
        (1.0..PRODUCERS as f64).contains(&entries_observed),
        "{entries_observed} entries for {total} records"
    );
    assert_eq!(
        metric(&text, "proglog_log_commit_batch_records_sum"),
        total as f64
    );

    // A restarted follower reads the stored records back identically.
    let before = cluster.records(follower);
    cluster.stop(follower).await;
    cluster.start(follower).await;
    cluster.wait_for_next_offset(follower, total).await;
    assert_eq!(cluster.records(follower), before);
    let mut restarted = cluster.log_client(follower).await;
    let record = consume(&mut restarted, total - 1).await.expect("consume");
    assert_eq!(record.value, acked[&(total - 1)].as_bytes());
    assert_eq!(record.offset, total - 1);
}

/// The value of the unlabelled sample `name` in Prometheus text output.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
        .trim()
        .parse()
        .expect("a number")
}
