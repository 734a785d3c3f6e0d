//! A follower that fell behind by more bytes than one Raft message may carry catches up from
//! the log (no snapshot): openraft bounds an AppendEntries request by entry count (1024), not by
//! bytes, so with multi-MiB entries one request can exceed the transport's message limit
//! ([`codec::MAX_RAFT_MESSAGE_BYTES`], 73 MiB); the network splits it (`raft::append_split`).
//! Before, this follower sometimes never caught up (about one run in three, 0 of 120 records
//! after 300 s): opening the replication stream was bounded by openraft's per-RPC timeout (about
//! a heartbeat interval) while the previous attempt's ~120 MB still filled the connection, so
//! every attempt timed out behind the last one.

mod raft_common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use proglog_node::raft::codec;
use proglog_proto::log::v1::{ProduceBatchRequest, Record};
use raft_common::*;

/// Three records just under the default 1 MiB limit per request: one ~3 MB Raft entry each.
const RECORD_BYTES: usize = 1_000_000;
const PER_BATCH: usize = 3;
/// 40 entries, ~120 MB: more than one message may carry.
const BATCHES: usize = 40;
const CATCH_UP_WAIT: Duration = Duration::from_secs(300);
const _: () = assert!(RECORD_BYTES * PER_BATCH * BATCHES > codec::MAX_RAFT_MESSAGE_BYTES);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_behind_by_more_than_one_message_catches_up_from_the_log() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let lagging = (leader + 1) % 3;
    cluster.stop(lagging).await;

    let mut client = cluster.log_client(leader).await;
    let value = Bytes::from(vec![7u8; RECORD_BYTES]);
    for _ in 0..BATCHES {
        let records = (0..PER_BATCH)
            .map(|_| Record {
                value: value.clone(),
                ..Default::default()
            })
            .collect();
        client
            .produce_batch(ProduceBatchRequest { records })
            .await
            .expect("produce batch");
    }
    let total = (PER_BATCH * BATCHES) as u64;

    cluster.start(lagging).await;
    let node = cluster.node(lagging).clone();
    let started = Instant::now();
    while node.user_log().applied_end() < total {
        assert!(
            started.elapsed() < CATCH_UP_WAIT,
            "the follower has {} of {total} records after {CATCH_UP_WAIT:?}",
            node.user_log().applied_end()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("caught up {total} records in {:?}", started.elapsed());
    assert_eq!(node.installed_snapshots(), 0, "caught up from the log");
    assert_eq!(cluster.records(lagging), cluster.records(leader));
}
