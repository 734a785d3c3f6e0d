//! A leader killed and restarted before anyone else is elected gets its leadership back from its
//! persisted vote. Its first linearizable read must still see every append acknowledged before
//! the crash. Found by the fault suite (`make test-faults`, seed 7): openraft's read index is
//! `max(committed, this leader's first entry)`, and both can be stale after such a restart — the
//! leader's first entry is from before the crash and the committed index is persisted lazily
//! (see `log_store.rs`) — so a read answered `next` 38 records short of what was acknowledged.

mod node_process;

use std::time::{Duration, Instant};

use node_process::cluster::{ProcessCluster, WAIT};
use proglog_proto::log::v1::{Consistency, GetLogBoundsRequest};

/// Crash-and-restart rounds; a round counts when the restarted node led in the same term.
const ROUNDS: usize = 6;
/// Linearizable reads checked right after each restart (the stale window is short).
const READS: usize = 40;

#[test]
fn a_leader_restarted_in_its_own_term_serves_no_stale_linearizable_read() {
    let mut cluster = ProcessCluster::new(3);
    for i in 0..3 {
        cluster.start(i, &[]);
    }
    cluster.form();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mut restored = 0;
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
        let same_leadership = role == "leader" && term_after == term;
        println!(
            "round {round}: node {leader} {role} in term {term_after} (was {term}); acknowledged \
             next {acked_next}; reads saw next {:?}..{:?}",
            nexts.first(),
            nexts.last()
        );
        restored += usize::from(same_leadership);
        for next in nexts {
            assert!(
                next >= acked_next,
                "round {round}: a linearizable read saw next {next}, but {acked_next} records \
                 were acknowledged before it"
            );
        }
    }
    println!("{restored} of {ROUNDS} restarts kept their leadership");
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
