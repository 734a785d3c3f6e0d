//! Membership changes under load, as an operator replacing a failed member does them: remove the
//! member (the leader itself half the time), wipe its disk, start it empty — it comes back with
//! a new identity — and add it again as a learner that catches up (by a snapshot install, since
//! the others purged their logs long ago) before it is promoted to voter. Every step goes
//! through the `proglog cluster` CLI against another node, which forwards to the leader.

use std::time::Duration;

use anyhow::{Context, Result};

use crate::cluster::Cluster;

/// How long each membership step may take (an add waits for the learner to catch up).
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// Removes node `victim` from the cluster, wipes it, restarts it empty and adds it back.
pub async fn replace(cluster: &mut Cluster, victim: usize) -> Result<String> {
    let old_id = cluster
        .status(victim)
        .await
        .map(|s| s.node_id)
        .context("the member to replace does not answer")?;
    replace_id(cluster, victim, old_id).await
}

/// [`replace`] for a member whose id is known (it may not be running any more).
pub async fn replace_id(cluster: &mut Cluster, victim: usize, old_id: u64) -> Result<String> {
    let n = cluster.len();
    // Any other running node: the CLI finds the leader through it.
    let via = (1..n)
        .map(|k| (victim + k) % n)
        .find(|&i| cluster.is_running(i))
        .context("no other node runs")?;
    cluster
        .cli_until_ok(
            via,
            &["cluster", "remove", &old_id.to_string()],
            STEP_TIMEOUT,
        )
        .await
        .with_context(|| format!("removing n{victim} (id {old_id})"))?;
    cluster.kill_all(&[victim]).await?;
    let data = cluster.data_dir(victim);
    std::fs::remove_dir_all(&data).with_context(|| format!("wiping {}", data.display()))?;
    // The wiped files' records would only describe freed inodes.
    std::fs::write(cluster.sync_journal(victim), b"")?;
    cluster.start(victim)?;
    let addr = cluster.endpoints.addrs[victim].clone();
    cluster
        .cli_until_ok(via, &["cluster", "add", &addr], STEP_TIMEOUT)
        .await
        .with_context(|| format!("adding n{victim} back"))?;
    let new_id = cluster.status(victim).await.map_or(0, |s| s.node_id);
    Ok(format!(
        "removed n{victim} (id {old_id}), wiped its disk, added it back empty as id {new_id}"
    ))
}
