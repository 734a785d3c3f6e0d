//! Rolling restarts against a real API server and kube-controller-manager (no kubelet: pods the
//! StatefulSet controller creates stay Pending, and no node answers the admin API). The
//! StatefulSet is `OnDelete`, so a template change leaves the pods alone until the operator
//! decides, and the operator does not restart pods of a cluster whose members are not healthy.
//! The order of a roll against running nodes is tested by the e2e scenario
//! `a_config_change_rolls_the_pods_one_at_a_time_under_load` (e2e/tests/pods_scale_roll.rs).

mod common;

use std::time::Duration;

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api,
    api::{Patch, PatchParams, PostParams},
};
use proglog_operator::{
    builders::{REVISION_LABEL, UPDATE_STRATEGY},
    crd::ProgLogCluster,
};
use serde_json::json;

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn a_template_change_restarts_no_pod_of_an_unhealthy_cluster() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-roll").await;
    let _controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(
            &PostParams::default(),
            &common::cluster("roll", json!({"replicas": 1})),
        )
        .await
        .unwrap();
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    // The StatefulSet controller creates pod 0 from the first revision.
    let (first_revision, uid) = common::eventually("pod roll-0 with its revision", || {
        let pods = pods.clone();
        async move {
            let pod = pods.get_opt("roll-0").await.ok()??;
            let revision = pod.metadata.labels?.get(REVISION_LABEL).cloned()?;
            Some((revision, pod.metadata.uid?))
        }
    })
    .await;
    let sts = statefulsets.get("roll").await.unwrap();
    let strategy = sts.spec.unwrap().update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some(UPDATE_STRATEGY));
    assert_eq!(UPDATE_STRATEGY, "OnDelete");

    // A configuration change: a new pod template, hence a new update revision.
    clusters
        .patch(
            "roll",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"log": {"maxRecordBytes": 65536}}})),
        )
        .await
        .unwrap();
    common::eventually("the StatefulSet controller to see a new revision", || {
        let statefulsets = statefulsets.clone();
        let first_revision = first_revision.clone();
        async move {
            let sts = statefulsets.get("roll").await.ok()?;
            let status = sts.status?;
            let new = status.update_revision.filter(|r| *r != first_revision)?;
            (status.observed_generation == sts.metadata.generation).then_some(new)
        }
    })
    .await;

    // Many reconciles later (progress requeue is 1 s in tests) pod 0 is still the same pod: the
    // StatefulSet controller does not roll it (OnDelete; with RollingUpdate it deletes a Pending
    // pod at once), and the operator does not either, since its node is not a healthy member.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let pod = pods.get("roll-0").await.unwrap();
    assert_eq!(
        pod.metadata.uid.as_ref(),
        Some(&uid),
        "pod roll-0 was replaced"
    );
    assert!(
        pod.metadata.deletion_timestamp.is_none(),
        "pod roll-0 is terminating"
    );
    assert_eq!(
        pod.metadata.labels.unwrap().get(REVISION_LABEL),
        Some(&first_revision)
    );
    common::delete_namespace(&client, &ns).await;
}
