//! Pod scenario of the operator's replacement of a member whose pod stays down, under a steady
//! load (scenario 10 of the table in docs/LOCAL_KUBERNETES.md). It cordons every node, so
//! scripts/e2e-pods.sh runs it in the sequential lane.
//!
//! `#[ignore]`d: run by scripts/e2e-pods.sh (`make e2e-pods`) on a cluster where pods run. The
//! scenario fails (never passes) without `PROGLOG_E2E_PODS=1`, has a deadline, and dumps pods,
//! events, the ProgLogCluster status and every log when it fails.

use std::{
    collections::BTreeSet,
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{Api, api::DeleteParams};
use proglog_e2e::{
    env,
    load::{Load, LoadConfig},
    rolling::event_notes,
    scenario::{Scenario, cordon_all_nodes, pod_names, pods_spec},
    wait::{Check, until},
};
use serde_json::json;

/// Scenario 10: with `spec.replacement: {after: 1m, deleteVolume: true}`, a member whose pod
/// stays down (deleted while the node is cordoned, so it cannot be scheduled again: a lost
/// machine) is not replaced before a minute, then is: a `MemberReplaced` event names its pod,
/// its claim is re-created (new uid), a new node id joins as a learner and becomes a voter, the
/// old id is gone, 3 healthy voters; under a steady load, no acknowledged record is lost and no
/// produce fails without a safe retry.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn a_member_down_longer_than_replacement_after_is_replaced_empty() -> anyhow::Result<()> {
    let sc = Scenario::start("replace").await?;
    let result = sc.within_deadline(replace(&sc)).await;
    sc.finish(result).await
}

async fn replace(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "replace";
    const AFTER: Duration = Duration::from_secs(60);
    /// Operator requeue and kube-controller-manager latency on top of `AFTER`.
    const SLACK: Duration = Duration::from_secs(90);
    let victim = format!("{NAME}-1");
    let claim = format!("data-{victim}");
    let mut spec = pods_spec(3);
    spec["replacement"] = json!({ "after": "1m", "deleteVolume": true });
    sc.create_cluster(NAME, spec).await?;
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", status.brief()));
    let old_id = status
        .voter_of_pod(&victim)
        .map(|m| m.node_id)
        .context("the victim's voter")?;
    let victim_led = status
        .leader
        .as_deref()
        .is_some_and(|l| proglog_e2e::scenario::pod_of_address(l) == victim);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sc.client.clone(), &sc.ns);
    let old_claim_uid = claims.get(&claim).await?.metadata.uid;

    // The victim goes away with its node: one forward per producer (see
    // Load::start_with_forwards), so a forward to the lost pod hurts only its own producer.
    let config = LoadConfig::default();
    let mut forwards = Vec::new();
    for _ in 0..config.clients {
        forwards.push(sc.service_forward(NAME).await?);
    }
    let load = Load::start_with_forwards(&forwards, &sc.ca.cert_pem, &sc.identity, config);
    load.wait_for_progress(100, env::pod_timeout()).await?;

    let cordon = cordon_all_nodes(&sc.client).await?;
    sc.log(format!(
        "node(s) cordoned; deleting {victim} (node {old_id}, leader: {victim_led})"
    ));
    let down_at = Instant::now();
    sc.pods().delete(&victim, &DeleteParams::default()).await?;

    // Nothing happens before `after`; shortly after it, the replacement.
    let replaced = until(
        "the failed member to be replaced",
        AFTER + SLACK,
        || async {
            let notes = event_notes(&sc.client, &sc.ns, NAME, "MemberReplaced").await?;
            let uid = claims.get_opt(&claim).await?.and_then(|c| c.metadata.uid);
            Ok(match notes.last() {
                Some(note) => Check::Done((note.clone(), down_at.elapsed())),
                None => Check::NotYet(format!(
                    "no MemberReplaced event; claim {claim} re-created: {}",
                    uid != old_claim_uid
                )),
            })
        },
    )
    .await;
    let released = cordon.release().await;
    let (note, seen_after) = replaced?;
    released?;
    sc.log(format!("replaced after {seen_after:.1?}: {note}"));
    ensure!(
        seen_after >= AFTER,
        "the member was replaced {seen_after:.1?} after its pod went down, before \
         replacement.after ({AFTER:?}); event {note:?}"
    );
    ensure!(
        note.contains(&format!("deleted pod {victim} "))
            && note.contains(&format!("deleted PersistentVolumeClaim {claim}"))
            && note.contains(&old_id.to_string()),
        "the MemberReplaced event does not name pod {victim}, claim {claim} and node {old_id}: \
         {note:?}"
    );

    // The new member: a learner first, then a voter; the old id gone.
    let roles: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let new_id = until(
        "a new member on the victim's pod to become a voter",
        env::pod_timeout(),
        || async {
            let (_, status) = sc.status(NAME).await?;
            let member = status
                .members
                .iter()
                .find(|m| m.pod == victim && m.node_id != old_id);
            let mut roles = roles.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(member) = member
                && roles.last() != Some(&member.role)
            {
                roles.push(member.role.clone());
            }
            Ok(match member {
                Some(m)
                    if m.role != "Learner"
                        && status.voter_of_pod(&victim).map(|v| v.node_id) == Some(m.node_id) =>
                {
                    Check::Done(m.node_id)
                }
                _ => Check::NotYet(status.brief()),
            })
        },
    )
    .await?;
    let roles = roles.into_inner().unwrap_or_else(|p| p.into_inner());
    // A learner caught up within one status write is seen only in the operator's events.
    let learner_events = event_notes(&sc.client, &sc.ns, NAME, "MembershipChanged")
        .await?
        .into_iter()
        .filter(|n| n.contains(&format!("(node {new_id}) as a learner")))
        .count();
    sc.log(format!(
        "new member {new_id} on {victim}: roles seen {roles:?}, learner events {learner_events}"
    ));
    ensure!(
        roles.first().map(String::as_str) == Some("Learner") || learner_events > 0,
        "node {new_id} was never a learner (roles seen {roles:?}, no event adding it as one)"
    );
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", status.brief()));
    let ids: BTreeSet<u64> = status.voters.iter().map(|m| m.node_id).collect();
    ensure!(
        !ids.contains(&old_id) && status.members.iter().all(|m| m.node_id != old_id),
        "the old node {old_id} is still a member: {}",
        status.brief()
    );
    ensure!(
        status.voter_of_pod(&victim).map(|m| m.node_id) == Some(new_id),
        "{victim}'s voter is not the new node {new_id}: {}",
        status.brief()
    );
    let new_claim_uid = claims.get(&claim).await?.metadata.uid;
    ensure!(
        new_claim_uid.is_some() && new_claim_uid != old_claim_uid,
        "claim {claim} was not re-created: uid {old_claim_uid:?} → {new_claim_uid:?}"
    );

    load.wait_for_progress(100, env::pod_timeout()).await?;
    let history = load.stop().await;
    sc.log(format!("load: {}", history.summary()));
    let verified = sc.verify_acks(&pod_names(NAME, 3), &history.acks).await?;
    sc.log(format!("no acknowledged record lost: {verified}"));
    ensure!(
        history.failures.is_empty(),
        "{} produces failed without a safe retry (the lost pod led: {victim_led}): {:?}",
        history.failures.len(),
        &history.failures[..history.failures.len().min(10)]
    );
    Ok(())
}
