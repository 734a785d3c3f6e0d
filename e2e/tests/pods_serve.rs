//! Pod scenarios: serving records, and surviving the loss of a pod or of a pod's volume.
//! Scenarios 1 (apply, 10 000 records, consume from every pod, then a ProgLogUser's access from
//! creation to deletion), 2 (delete the leader pod) and 4
//! (delete a pod and its PVC) of the table in docs/LOCAL_KUBERNETES.md.
//!
//! `#[ignore]`d: run by scripts/e2e-pods.sh (`make e2e-pods`) on a cluster where pods run. Each
//! scenario fails (never passes) without `PROGLOG_E2E_PODS=1`, has a deadline, and dumps pods,
//! events, the ProgLogCluster status and every log when it fails.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use bytes::Bytes;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{
    Api,
    api::{DeleteParams, ObjectMeta},
};
use proglog_e2e::{
    env,
    load::{self, Load, LoadConfig, Outcome},
    log_client,
    port_forward::PortForward,
    scenario::{
        Cordon, GRPC_PORT, Scenario, cordon_all_nodes, pod_names, pod_of_address, pods_spec,
    },
    users,
    wait::{Check, until},
};
use proglog_proto::log::v1::GetServersRequest;
use tokio::time::Instant;

const RECORDS: usize = 10_000;
const STREAMS: usize = 4;

/// Scenario 1: a 3-node cluster becomes healthy (all pods Ready, 3 voters, one leader, the
/// conditions say so); 10 000 records produced through the client Service from outside the
/// pods are read back from every pod.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn apply_then_serve_10000_records_from_every_pod() -> anyhow::Result<()> {
    let sc = Scenario::start("serve").await?;
    let result = sc.within_deadline(serve(&sc)).await;
    sc.finish(result).await
}

async fn serve(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "serve";
    sc.create_cluster(NAME, pods_spec(3)).await?;
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", status.brief()));
    let leader = status
        .leader
        .clone()
        .context("healthy status names a leader")?;

    let forward = PortForward::to_service(&sc.ns, NAME, GRPC_PORT, env::api_timeout()).await?;
    let log = log_client::connect(forward.local_port, &sc.ca.cert_pem, &sc.identity).await?;
    let servers = log
        .clone()
        .get_servers(GetServersRequest {})
        .await?
        .into_inner()
        .servers;
    ensure!(servers.len() == 3, "GetServers lists {servers:?}, want 3");
    let leaders: Vec<_> = servers.iter().filter(|s| s.is_leader).collect();
    ensure!(
        leaders.len() == 1,
        "GetServers must mark exactly one leader: {servers:?}"
    );
    ensure!(
        pod_of_address(&leaders[0].rpc_addr) == pod_of_address(&leader),
        "GetServers' leader {:?} is not the status' leader {leader}",
        leaders[0].rpc_addr
    );

    // Several concurrent streams: each is pipelined by the node, together they keep it busy.
    let started = Instant::now();
    let per_stream = RECORDS / STREAMS;
    let streams = (0..STREAMS).map(|s| {
        let values = (0..per_stream)
            .map(|i| Bytes::from(format!("serve-s{s}-{i:06}")))
            .collect();
        load::produce_stream(log.clone(), values, started)
    });
    let acks: Vec<_> = futures::future::try_join_all(streams)
        .await?
        .into_iter()
        .flatten()
        .collect();
    let offsets: BTreeSet<u64> = acks.iter().map(|a| a.offset).collect();
    ensure!(
        acks.len() == RECORDS && offsets.len() == RECORDS,
        "{} acknowledgements with {} distinct offsets, want {RECORDS} of each",
        acks.len(),
        offsets.len()
    );
    sc.log(format!(
        "produced {RECORDS} records over {STREAMS} streams in {:?} (offsets {:?}..={:?})",
        started.elapsed(),
        offsets.first(),
        offsets.last()
    ));
    drop(forward);

    let started = Instant::now();
    let verified = sc.verify_acks(&pod_names(NAME, 3), &acks).await?;
    sc.log(format!("read back in {:?}: {verified}", started.elapsed()));

    // An application identity from a ProgLogUser: in through the Service, out on deletion.
    sc.log(users::access_lifecycle(sc, NAME).await?);
    Ok(())
}

/// Scenario 2: under a steady load, deleting the leader's pod elects a new leader; no
/// acknowledged record is lost; the recreated pod (same volume, same Raft node id) rejoins as a
/// voter.
///
/// The nodes are cordoned while the leader pod is deleted: its replacement stays Pending until
/// a new leader is elected. Without that, a replacement that starts within the election timeout
/// (about a second with a cached image) resumes leadership in the same term — the node does not
/// hand leadership over on SIGTERM — and no other node ever becomes leader.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn deleting_the_leader_pod_elects_a_new_leader_and_loses_nothing() -> anyhow::Result<()> {
    let sc = Scenario::start("failover").await?;
    let mut cordon = None;
    let result = sc.within_deadline(failover(&sc, &mut cordon)).await;
    let result = match (result, cordon.take()) {
        (result, Some(cordon)) => result.and(cordon.release().await.map_err(Into::into)),
        (result, None) => result,
    };
    sc.finish(result).await
}

async fn failover(sc: &Scenario, cordon: &mut Option<Cordon>) -> anyhow::Result<()> {
    const NAME: &str = "failover";
    sc.create_cluster(NAME, pods_spec(3)).await?;
    let before = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", before.brief()));
    let old_leader = pod_of_address(before.leader.as_deref().context("a leader")?).to_owned();
    let old_id = before
        .voter_of_pod(&old_leader)
        .context("the leader is a voter")?
        .node_id;
    let old_uid = sc.pods().get(&old_leader).await?.metadata.uid;

    let load = Load::start(
        sc.service_forward(NAME).await?,
        &sc.ca.cert_pem,
        &sc.identity,
        LoadConfig::default(),
    );
    load.wait_for_progress(100, env::pod_timeout()).await?;
    *cordon = Some(cordon_all_nodes(&sc.client).await?);
    sc.log(format!(
        "load running ({} acknowledged); nodes cordoned; deleting leader pod {old_leader} (node {old_id})",
        load.acked()
    ));
    let deleted_at = load.elapsed();
    sc.pods()
        .delete(&old_leader, &DeleteParams::default())
        .await?;

    let new_leader = until("a new leader", env::pod_timeout(), || async {
        let (_, status) = sc.status(NAME).await?;
        Ok(match status.leader.as_deref().map(pod_of_address) {
            Some(leader) if leader != old_leader => Check::Done(leader.to_owned()),
            _ => Check::NotYet(status.brief()),
        })
    })
    .await?;
    sc.log(format!("new leader {new_leader}"));
    load.wait_for_progress(100, env::pod_timeout()).await?;
    sc.log(format!(
        "writes acknowledged again with 2 of 3 voters ({}); uncordoning",
        load.acked()
    ));
    if let Some(cordon) = cordon.take() {
        cordon.release().await?;
    }

    let after = sc.wait_healthy(NAME, 3).await?;
    let new_uid = sc.pods().get(&old_leader).await?.metadata.uid;
    ensure!(
        new_uid != old_uid,
        "pod {old_leader} was not recreated (uid {new_uid:?})"
    );
    let rejoined = after
        .voter_of_pod(&old_leader)
        .context("the recreated pod is a voter")?;
    ensure!(
        rejoined.node_id == old_id,
        "pod {old_leader} rejoined as node {} but kept its volume, so it must be node {old_id}",
        rejoined.node_id
    );
    sc.log(format!(
        "{old_leader} rejoined as voter {old_id}: {}",
        after.brief()
    ));
    load.wait_for_progress(100, env::pod_timeout()).await?;

    let history = load.stop().await;
    sc.log(format!("load: {}", history.summary()));
    ensure!(
        history.acks_after(deleted_at) > 0,
        "no produce was acknowledged after the leader pod was deleted"
    );
    let refused: Vec<_> = history
        .failures
        .iter()
        .filter(|f| f.outcome == Outcome::Refused)
        .collect();
    ensure!(
        refused.is_empty(),
        "produces refused by the cluster: {refused:?}"
    );
    let verified = sc.verify_acks(&pod_names(NAME, 3), &history.acks).await?;
    sc.log(format!("no acknowledged record lost: {verified}"));
    Ok(())
}

/// Scenario 4: deleting a pod together with its PersistentVolumeClaim brings the pod back empty
/// under a new Raft identity, which the operator adds in place of the old one (removed).
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn a_pod_that_lost_its_volume_rejoins_under_a_new_identity() -> anyhow::Result<()> {
    let sc = Scenario::start("reborn").await?;
    let result = sc.within_deadline(reborn(&sc)).await;
    sc.finish(result).await
}

async fn reborn(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "reborn";
    sc.create_cluster(NAME, pods_spec(3)).await?;
    let before = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", before.brief()));
    let leader = pod_of_address(before.leader.as_deref().context("a leader")?).to_owned();
    // A follower: losing the leader's volume is scenario 2 plus an election.
    let victim = pod_names(NAME, 3)
        .into_iter()
        .rev()
        .find(|pod| *pod != leader)
        .context("a follower")?;
    let old_id = before
        .voter_of_pod(&victim)
        .context("the victim is a voter")?
        .node_id;

    let load = Load::start(
        sc.service_forward(NAME).await?,
        &sc.ca.cert_pem,
        &sc.identity,
        LoadConfig::default(),
    );
    load.wait_for_progress(200, env::pod_timeout()).await?;

    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sc.client.clone(), &sc.ns);
    let claim = format!("data-{victim}");
    let old_claim_uid = claims.get(&claim).await?.metadata.uid;
    sc.log(format!(
        "deleting PVC {claim} and pod {victim} (node {old_id}); leader is {leader}"
    ));
    // The claim stays (Terminating) while the pod uses it, and goes with the pod.
    claims.delete(&claim, &DeleteParams::background()).await?;
    sc.pods().delete(&victim, &DeleteParams::default()).await?;

    let new_id = until(
        &format!("pod {victim} to rejoin under a new node id, replacing {old_id}"),
        env::pod_timeout(),
        || async {
            let (_, status) = sc.status(NAME).await?;
            let old_gone = status
                .voters
                .iter()
                .chain(&status.learners)
                .all(|m| m.node_id != old_id);
            Ok(match status.voter_of_pod(&victim) {
                Some(member) if member.node_id != old_id && old_gone => Check::Done(member.node_id),
                _ => Check::NotYet(status.brief()),
            })
        },
    )
    .await?;
    let after = sc.wait_healthy(NAME, 3).await?;
    ensure!(
        after.voter_of_pod(&victim).map(|m| m.node_id) == Some(new_id),
        "pod {victim} changed identity again: {}",
        after.brief()
    );
    let new_claim: Option<ObjectMeta> = claims.get_opt(&claim).await?.map(|c| c.metadata);
    let new_claim_uid = new_claim.and_then(|m| m.uid);
    ensure!(
        new_claim_uid.is_some() && new_claim_uid != old_claim_uid,
        "PVC {claim} was not recreated (uid {new_claim_uid:?}, was {old_claim_uid:?})"
    );
    sc.log(format!(
        "{victim} is voter {new_id} on a new volume; {old_id} removed: {}",
        after.brief()
    ));
    load.wait_for_progress(100, env::pod_timeout()).await?;

    let history = load.stop().await;
    sc.log(format!("load: {}", history.summary()));
    // The new member was filled by replication: it holds every acknowledged record.
    let verified = sc.verify_acks(&pod_names(NAME, 3), &history.acks).await?;
    sc.log(format!("no acknowledged record lost: {verified}"));
    Ok(())
}
