//! A leader killed and restarted before anyone else is elected must not lead again in the term
//! it led before the crash; it waits for an election like any restarted node.
//!
//! Found by the fault suite (seed 422591246, `fsync-error`): the leader's fsync failed, it
//! exited, and the entries it had sent but not yet made durable were gone from its disk, while
//! both followers had made them durable and committed them. openraft restored it as leader of
//! its old term from its persisted vote (`Config::enable_leader_restore`, on by default). It then
//! appended new entries at the same indexes *in the same term*; the followers, who compare log ids
//! only, kept their own entries under those ids and acknowledged the leader's; both versions
//! counted as committed, and the logs diverged from offset 19573 on, with acknowledged records
//! lost. A new election instead makes the node with the shorter log lose, and whoever wins has
//! every committed entry.
//!
//! The rounds also check the earlier finding (fault suite, seed 7): the first linearizable reads
//! after such a restart must see every append acknowledged before the crash.

mod node_process;

use std::time::{Duration, Instant};

use node_process::cluster::{ProcessCluster, WAIT};
use proglog_proto::log::v1::{Consistency, GetLogBoundsRequest};

/// Crash-and-restart rounds. The restart is quicker than an election timeout, so without the fix
/// the old leader resumed its term (the test failed in round 0).
const ROUNDS: usize = 6;
/// Linearizable reads checked right after each restart (the stale window is short).
const READS: usize = 40;

#[test]
fn a_restarted_leader_never_leads_its_old_term_again_and_serves_no_stale_read() {
    let mut cluster = ProcessCluster::new(3);
    for i in 0..3 {
        cluster.start(i, &[]);
    }
    cluster.form();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for round in 0..ROUNDS {
        let (leader, term) = cluster.leader_among(&[0, 1, 2]);
        // Appends right before the crash: acknowledged, while the committed index on disk lags.
        let values: Vec<String> = (0..30).map(|i| format!("r{round}-{i}")).collect();
        let mut args = vec!["produce"];
        args.extend(values.iter().map(String::as_str));
        let out = cluster.cli_until_ok(leader, &args);
        let acked_next = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|o| o.parse::<u64>().ok())
            .max()
            .expect("offsets")
            + 1;
        cluster.kill(leader);
        cluster.start(leader, &[]);

        let nexts = runtime.block_on(linearizable_nexts(&cluster, leader));
        let (role, term_after) = cluster.role_and_term(leader);
        println!(
            "round {round}: node {leader} {role} in term {term_after} (was {term}); acknowledged \
             next {acked_next}; reads saw next {:?}..{:?}",
            nexts.first(),
            nexts.last()
        );
        assert!(
            !(role == "leader" && term_after == term),
            "round {round}: node {leader} came back leading term {term}, the term it led before \
             the crash; entries it had not made durable may be committed on its followers, and \
             it would append different ones under the same log ids"
        );
        for next in nexts {
            assert!(
                next >= acked_next,
                "round {round}: a linearizable read saw next {next}, but {acked_next} records \
                 were acknowledged before it"
            );
        }
        let (new_leader, new_term) = cluster.leader_among(&[0, 1, 2]);
        assert!(
            new_term > term,
            "round {round}: node {new_leader} leads term {new_term} after node {leader} (leader \
             of term {term}) restarted; a new term must be elected"
        );
    }
}

/// The `next` of up to [`READS`] linearizable bounds queries to node `i`, from its first answer.
async fn linearizable_nexts(cluster: &ProcessCluster, i: usize) -> Vec<u64> {
    let deadline = Instant::now() + WAIT;
    let mut nexts = Vec::new();
    while nexts.len() < READS {
        assert!(Instant::now() < deadline, "node {i} never answered");
        let Some(mut client) = cluster.try_log_client(i, Duration::from_secs(1)).await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        while nexts.len() < READS {
            let request = GetLogBoundsRequest {
                consistency: Consistency::Linearizable as i32,
            };
            match client.get_log_bounds(request).await {
                Ok(reply) => nexts.push(reply.into_inner().next_offset),
                // Not serving yet, or no leader yet: ask again.
                Err(_) if nexts.is_empty() => {
                    assert!(Instant::now() < deadline, "node {i} never answered");
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(status) => panic!("a read failed after the node answered: {status:?}"),
            }
        }
    }
    nexts
}
