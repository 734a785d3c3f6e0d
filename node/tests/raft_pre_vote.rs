//! Pre-Vote (Raft thesis §9.6): a node that cannot hear the leader asks the others whether they
//! would vote for it before it bumps its term. Without it, a follower behind a partition (or
//! restarted, or paused) campaigns alone, inflates its term, and deposes a healthy leader the
//! moment it is reachable again — one needless election per rejoin, which is what an operator's
//! rolling restart would cause for every follower it restarts.

mod raft_common;

use std::time::Duration;

use raft_common::*;

/// Several election timeouts of the tests' Raft configuration (300–600 ms).
const CUT_OFF: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_cannot_hear_the_leader_does_not_inflate_its_term() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let term_before = cluster.node(follower).metrics().current_term;

    // The others cannot reach the follower; it can still reach them, so every vote or pre-vote
    // it sends arrives.
    cluster.stop_serving(follower).await;
    tokio::time::sleep(CUT_OFF).await;
    let isolated_term = cluster.node(follower).metrics().current_term;
    let healthy_term = [0, 1, 2]
        .into_iter()
        .filter(|&i| i != follower)
        .map(|i| cluster.node(i).metrics().current_term)
        .max()
        .expect("two healthy nodes");
    assert!(
        isolated_term <= healthy_term,
        "the cut-off follower campaigned alone: its term went from {term_before} to \
         {isolated_term}, past the healthy majority's {healthy_term}"
    );

    // Healed, it follows the leader again and catches up on what was written meanwhile.
    let mut client = cluster.log_client(leader).await;
    let offset = produce(&mut client, "written while a follower was cut off")
        .await
        .expect("a majority is up");
    cluster.serve_again(follower).await;
    cluster.wait_for_next_offset(follower, offset + 1).await;
}
