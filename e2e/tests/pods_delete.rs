//! Pod scenario: deleting the ProgLogCluster removes everything it owns and its PVCs follow
//! the retention policy (scenario 8 of the table in docs/LOCAL_KUBERNETES.md).
//!
//! `#[ignore]`d: run by scripts/e2e-pods.sh (`make e2e-pods`) on a cluster where pods run. The
//! scenario fails (never passes) without `PROGLOG_E2E_PODS=1`, has a deadline, and dumps pods,
//! events, the ProgLogCluster status and every log when it fails.

use anyhow::{Context, ensure};
use bytes::Bytes;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api,
    api::{DeleteParams, ListParams},
};
use proglog_e2e::{
    E2eError, env, load, log_client,
    owned::list_owned,
    port_forward::PortForward,
    scenario::{CA_SECRET, GRPC_PORT, INSTANCE_LABEL, Scenario, pod_names, pods_spec},
    wait::{Check, until},
};
use serde_json::json;
use tokio::time::Instant;

/// Scenario 8: deleting a ProgLogCluster removes everything it owns (StatefulSet, pods,
/// Services, ConfigMap, its Secrets, PodDisruptionBudget) but not the user's CA Secret; its PVCs
/// follow `spec.storage.retentionOnDelete`: Retain (the default) keeps them, and a new cluster
/// of the same name finds its records again; Delete removes them.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn deleting_the_cluster_removes_what_it_owns_and_pvcs_follow_the_policy() -> anyhow::Result<()>
{
    let sc = Scenario::start("delete").await?;
    let result = sc.within_deadline(delete(&sc)).await;
    sc.finish(result).await
}

async fn owned_count(sc: &Scenario, uid: &str, name: &str) -> Result<String, E2eError> {
    let ns = &sc.ns;
    let c = &sc.client;
    let counts = [
        (
            "StatefulSet",
            list_owned(&Api::<StatefulSet>::namespaced(c.clone(), ns), uid)
                .await?
                .len(),
        ),
        (
            "Service",
            list_owned(&Api::<Service>::namespaced(c.clone(), ns), uid)
                .await?
                .len(),
        ),
        (
            "ConfigMap",
            list_owned(&Api::<ConfigMap>::namespaced(c.clone(), ns), uid)
                .await?
                .len(),
        ),
        (
            "Secret",
            list_owned(&Api::<Secret>::namespaced(c.clone(), ns), uid)
                .await?
                .len(),
        ),
        (
            "PodDisruptionBudget",
            list_owned(&Api::<PodDisruptionBudget>::namespaced(c.clone(), ns), uid)
                .await?
                .len(),
        ),
        ("Pod", sc.cluster_pods(name).await?.len()),
    ];
    Ok(counts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect::<Vec<_>>()
        .join(", "))
}

async fn delete(sc: &Scenario) -> anyhow::Result<()> {
    const KEEP: &str = "keep";
    const DROP: &str = "drop";
    let keep_uid = sc
        .create_cluster(KEEP, pods_spec(1))
        .await?
        .metadata
        .uid
        .context("uid")?;
    let mut spec = pods_spec(1);
    spec["storage"]["retentionOnDelete"] = json!("Delete");
    let drop_uid = sc
        .create_cluster(DROP, spec)
        .await?
        .metadata
        .uid
        .context("uid")?;
    sc.wait_healthy(KEEP, 1).await?;
    sc.wait_healthy(DROP, 1).await?;
    let statefulsets: Api<StatefulSet> = Api::namespaced(sc.client.clone(), &sc.ns);
    for (name, when_deleted) in [(KEEP, "Retain"), (DROP, "Delete")] {
        let policy = statefulsets
            .get(name)
            .await?
            .spec
            .and_then(|s| s.persistent_volume_claim_retention_policy)
            .context("persistentVolumeClaimRetentionPolicy")?;
        ensure!(
            policy.when_deleted.as_deref() == Some(when_deleted)
                && policy.when_scaled.as_deref() == Some("Retain"),
            "StatefulSet {name} has {policy:?}, want whenDeleted {when_deleted}, whenScaled Retain"
        );
    }
    for (name, uid) in [(KEEP, &keep_uid), (DROP, &drop_uid)] {
        let owned = owned_count(sc, uid, name).await?;
        sc.log(format!("{name} owns {owned}"));
    }

    // Records in the cluster whose volume is retained.
    let forward = PortForward::to_service(&sc.ns, KEEP, GRPC_PORT, env::api_timeout()).await?;
    let log = log_client::connect(forward.local_port, &sc.ca.cert_pem, &sc.identity).await?;
    let values = (0..100)
        .map(|i| Bytes::from(format!("kept-{i:03}")))
        .collect();
    let acks = load::produce_stream(log, values, Instant::now()).await?;
    drop(forward);

    for name in [KEEP, DROP] {
        sc.clusters().delete(name, &DeleteParams::default()).await?;
    }
    for (name, uid) in [(KEEP, &keep_uid), (DROP, &drop_uid)] {
        until(
            &format!("ProgLogCluster {name} and everything it owns to be deleted"),
            env::pod_timeout(),
            || async {
                if let Some(cluster) = sc.clusters().get_opt(name).await? {
                    return Ok(Check::NotYet(format!(
                        "the cluster still exists (finalizers {:?})",
                        cluster.metadata.finalizers
                    )));
                }
                let owned = owned_count(sc, uid, name).await?;
                Ok(if owned.is_empty() {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("still owned: {owned}"))
                })
            },
        )
        .await?;
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sc.client.clone(), &sc.ns);
    until(
        "the PVC of the Delete cluster to be deleted",
        env::pod_timeout(),
        || async {
            let left = claims
                .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={DROP}")))
                .await?;
            Ok(if left.items.is_empty() {
                Check::Done(())
            } else {
                Check::NotYet(format!("{} PVCs left", left.items.len()))
            })
        },
    )
    .await?;
    let kept = claims.get(&format!("data-{KEEP}-0")).await?;
    ensure!(
        kept.metadata.deletion_timestamp.is_none(),
        "the PVC of the Retain cluster is being deleted"
    );
    ensure!(
        Api::<Secret>::namespaced(sc.client.clone(), &sc.ns)
            .get_opt(CA_SECRET)
            .await?
            .is_some(),
        "the user's CA Secret (not owned by the cluster) was deleted"
    );
    sc.log("owned objects gone; Retain kept its PVC, Delete removed its PVC");

    // Retain: a new cluster of the same name finds the records.
    sc.create_cluster(KEEP, pods_spec(1)).await?;
    let status = sc.wait_healthy(KEEP, 1).await?;
    sc.log(format!("recreated: {}", status.brief()));
    let verified = sc.verify_acks(&pod_names(KEEP, 1), &acks).await?;
    sc.log(format!("the retained volume kept the records: {verified}"));
    Ok(())
}
