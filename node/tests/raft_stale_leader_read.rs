//! A leader cut off from its peers must not answer a linearizable read once they have elected a
//! newer leader — even when openraft's read-index confirms its leadership, as openraft's
//! replication can when replies delayed across a partition arrive after the heal (the fault
//! suite caught an old leader answering `next` below an offset the new leader had
//! acknowledged; see node/src/raft/leadership.rs). The `read-index-passes` failpoint stands in
//! for that wrong confirmation; the second confirmation (each voter's current vote, asked after
//! the read began) must still refuse the read.

mod raft_common;

use proglog_node::raft::failpoint;
use raft_common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deposed_leader_refuses_a_linearizable_read_even_when_its_read_index_passes() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let old = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let old_id = cluster.node(old).node_id();
    let mut client = cluster.log_client(old).await;
    let first = produce(&mut client, "acknowledged by the old leader")
        .await
        .expect("a healthy cluster takes a produce");

    // Cut the old leader off: nothing reaches it, and none of its Raft messages reach the
    // others (its leadership confirmations still do, which is what the fix relies on).
    cluster.stop_serving(old).await;
    failpoint::arm(&format!("raft-rpcs-dropped-from:{old_id}"));
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = cluster.wait_for_leader_among(&others).await;
    let mut client = cluster.log_client(new).await;
    let acknowledged = produce(&mut client, "acknowledged by the new leader")
        .await
        .expect("the majority elected a leader that takes produces");
    assert!(acknowledged > first);
    assert_eq!(
        cluster.node(old).metrics().current_leader,
        Some(old_id),
        "the cut-off leader should still believe it leads (it has heard nothing)"
    );

    // openraft's read-index on the old leader passes, as it wrongly can.
    failpoint::arm(&format!("read-index-passes:{old_id}"));
    match cluster.node(old).linearizable_bounds().await {
        Ok(bounds) => panic!(
            "the deposed leader answered a linearizable read with next {} although offset \
             {acknowledged} was acknowledged before the read began",
            bounds.next
        ),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("no longer the leader") && message.contains("newer vote"),
                "the read should be refused because a voter holds a newer vote: {message}"
            );
        }
    }

    // The new leader answers the same read with the acknowledged record in it.
    let (_, next) = linearizable_bounds(&mut client)
        .await
        .expect("the new leader answers");
    assert!(next > acknowledged);
}
