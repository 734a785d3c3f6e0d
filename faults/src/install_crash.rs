//! A crash during a snapshot install, under load (the `snapshot-install-crash` fault):
//!
//! 1. a follower is cut off from the other nodes (clients still reach it);
//! 2. the others go on until each purged its Raft log past the follower's last entry (runs use a
//!    small snapshot policy, so this takes seconds), so the follower can only catch up by a
//!    snapshot install;
//! 3. the follower is restarted with `PROGLOG_FAILPOINT=crash-at:<step>` (one of the install's
//!    steps, `proglog_node::raft::snapshot_install::INSTALL_STEPS`, a node test-only failpoint
//!    of the `failpoints` build the harness runs) and let back in: the leader sends it a
//!    snapshot and the node aborts at that step, as a `kill -9` or a power cut would stop it —
//!    e.g. at `install-copying`, with part of the snapshot's records copied into its live log;
//! 4. it is restarted without the failpoint and must catch up with the leader (recovery finishes
//!    or discards the interrupted install); the checker then sees what it serves.
//!
//! A step that cannot happen (no purge, no crash, no catch-up, each within [`STEP_TIMEOUT`]) is
//! an error: the fault would otherwise pass without testing anything.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use proglog_proto::proglog::admin::v1::ClusterStatusResponse;
use tokio::time::Instant;

use crate::cluster::{Cluster, run_checked};
use crate::rules::{heal_rules, isolate};

/// The longest each step of the fault may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(200);

/// Runs the fault on the `pick`th follower, crashing it at `step`; returns what happened.
pub async fn snapshot_install_crash(
    cluster: &mut Cluster,
    pick: usize,
    step: &str,
) -> Result<String> {
    let n = cluster.len();
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await?;
    let followers: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
    let victim = followers[pick % followers.len()];
    let last = cluster
        .status(victim)
        .await
        .with_context(|| format!("n{victim}, the follower to cut off, does not answer"))?
        .last_log_index;
    let topo = cluster.topo.clone();
    for cmd in isolate(&topo, victim) {
        run_checked(&cmd).await?;
    }
    let cut_at = Instant::now();
    // Every other node: whichever leads when the follower comes back must need a snapshot.
    let others: Vec<usize> = (0..n).filter(|&i| i != victim).collect();
    let purged = wait_for(cluster, &others, |s| s.purged_index > last)
        .await
        .with_context(|| format!("the others did not purge past n{victim}'s last entry {last}"))?;
    let purge_secs = cut_at.elapsed().as_secs_f64();

    cluster.kill(victim).await?;
    let failpoint = format!("crash-at:{step}");
    cluster.start_armed(victim, Some(&failpoint))?;
    for cmd in heal_rules(&topo) {
        run_checked(&cmd).await?;
    }
    // On an error the nemesis's heal restarts the node, without the failpoint.
    let Some(status) = cluster.wait_exit(victim, STEP_TIMEOUT).await else {
        cluster.kill(victim).await?;
        bail!("n{victim} did not crash at {failpoint} within {STEP_TIMEOUT:?} of rejoining");
    };
    let crashed = node_log_tail(cluster, victim)
        .await
        .contains(&format!("failpoint {failpoint}"));
    if !crashed {
        bail!("n{victim} exited ({status}) but not at {failpoint}: see n{victim}.log");
    }

    let restarted = Instant::now();
    cluster.start(victim)?;
    let leader = cluster.wait_for_leader(STEP_TIMEOUT).await?;
    let target = cluster
        .status(leader)
        .await
        .context("the leader does not answer")?
        .committed_index;
    wait_for(cluster, &[victim], |s| s.applied_index >= target)
        .await
        .with_context(|| {
            format!("n{victim} did not catch up (apply index {target}) after its restart")
        })?;
    Ok(format!(
        "follower n{victim} (last entry {last}) cut off; others purged past it in {purge_secs:.1}s \
         (purged {}); restarted with {failpoint}, rejoined, aborted there ({status}); restarted \
         without it, applied the leader's commit index {target} in {:.1}s",
        purged.join(", "),
        restarted.elapsed().as_secs_f64()
    ))
}

/// Waits until every node of `nodes` answers a status that satisfies `done`; their purged
/// indexes (`nI N`).
async fn wait_for(
    cluster: &Cluster,
    nodes: &[usize],
    done: impl Fn(&ClusterStatusResponse) -> bool,
) -> Result<Vec<String>> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        let mut seen = Vec::new();
        for &i in nodes {
            match cluster.status(i).await {
                Some(s) if done(&s) => seen.push(format!("n{i} {}", s.purged_index)),
                _ => break,
            }
        }
        if seen.len() == nodes.len() {
            return Ok(seen);
        }
        if Instant::now() > deadline {
            bail!("not within {STEP_TIMEOUT:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The end of node `i`'s log (stderr of all its runs), where the failpoint names itself.
async fn node_log_tail(cluster: &Cluster, i: usize) -> String {
    let path = cluster.config.run_dir.join(format!("n{i}.log"));
    let text = tokio::fs::read(&path).await.unwrap_or_default();
    let tail = &text[text.len().saturating_sub(64 * 1024)..];
    String::from_utf8_lossy(tail).into_owned()
}
