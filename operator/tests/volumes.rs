//! Volume growth against a real API server: a claim the API server will not grow (here: not
//! bound yet — no provisioner runs; in production: a StorageClass without
//! `allowVolumeExpansion`) is reported in a Degraded condition, and the rest of the cluster's
//! changes still roll out instead of the whole reconciliation failing on it.

mod common;

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::PersistentVolumeClaim};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use proglog_operator::{builders::CONFIG_HASH_ANNOTATION, crd::ProgLogCluster};
use serde_json::json;

fn config_hash(sts: &StatefulSet) -> Option<String> {
    sts.spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get(CONFIG_HASH_ANNOTATION)
        .cloned()
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn a_refused_volume_growth_is_reported_and_does_not_block_other_changes() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-grow").await;
    let _controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(
            &PostParams::default(),
            &common::cluster("grow", json!({"replicas": 1, "storage": {"size": "1Gi"}})),
        )
        .await
        .unwrap();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    common::eventually("the StatefulSet's claim", || {
        let claims = claims.clone();
        async move { claims.get_opt("data-grow-0").await.ok()? }
    })
    .await;
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let before = common::eventually("the StatefulSet's config hash", || {
        let statefulsets = statefulsets.clone();
        async move { config_hash(&statefulsets.get_opt("grow").await.ok()??) }
    })
    .await;

    // Grow the volume (refused: the claim is not bound) and change the node configuration.
    clusters
        .patch(
            "grow",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"storage": {"size": "2Gi"}, "log": {"retentionAge": "1h"}}}),
            ),
        )
        .await
        .unwrap();
    common::eventually(
        "the configuration rolled out despite the refused growth",
        || {
            let statefulsets = statefulsets.clone();
            let before = before.clone();
            async move {
                let hash = config_hash(&statefulsets.get_opt("grow").await.ok()??)?;
                (hash != before).then_some(())
            }
        },
    )
    .await;
    let degraded = common::eventually("a Degraded condition naming the claim", || {
        let clusters = clusters.clone();
        async move {
            let cluster = clusters.get("grow").await.ok()?;
            let condition = cluster
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Degraded" && c.status == "True")?;
            (condition.reason == "VolumeGrowthRefused").then_some(condition)
        }
    })
    .await;
    assert!(
        degraded.message.contains("data-grow-0"),
        "{}",
        degraded.message
    );
    assert!(degraded.message.contains("2Gi"), "{}", degraded.message);
    common::delete_namespace(&client, &ns).await;
}
