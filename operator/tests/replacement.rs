//! `spec.replacement` against a real API server (no kubelet: the test writes the pods' Ready
//! condition through the status subresource). The controller never replaces a pod while it
//! cannot see a Raft membership with a quorum, however long the pod has been down; and the
//! Kubernetes half of a replacement deletes the pod, and the claim only with the volume policy,
//! after which the StatefulSet controller re-creates both. The Raft half (removal, rejoin as a
//! learner, the quorum rule with real nodes) is in `real_nodes.rs`.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams, PostParams},
};
use proglog_operator::{controller::replacement::delete_pod_and_claim, crd::ProgLogCluster};
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

async fn uid<K>(api: &Api<K>, name: &str) -> Option<String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let object = api.get_opt(name).await.ok()??;
    if object.meta().deletion_timestamp.is_some() {
        return None;
    }
    object.meta().uid.clone()
}

/// Marks the pod not Ready since two hours ago (what the kubelet would write).
async fn mark_down_for_hours(pods: &Api<Pod>, name: &str) {
    let since = (OffsetDateTime::now_utc() - time::Duration::hours(2))
        .format(&Rfc3339)
        .unwrap();
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [
            {"type": "Ready", "status": "False", "lastTransitionTime": since,
             "reason": "ContainersNotReady"},
        ]}})),
    )
    .await
    .expect("pod status patched");
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn a_down_pod_is_replaced_only_with_a_quorum_and_the_claim_only_with_the_policy() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-replace").await;
    let _controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(
            &PostParams::default(),
            &common::cluster(
                "down",
                json!({"replicas": 1, "replacement": {"after": "1m", "deleteVolume": true}}),
            ),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let pod_uid = common::eventually("pod down-0 from the StatefulSet", || {
        let pods = pods.clone();
        async move { uid(&pods, "down-0").await }
    })
    .await;
    let claim_uid = common::eventually("claim data-down-0 from the StatefulSet", || {
        let claims = claims.clone();
        async move { uid(&claims, "data-down-0").await }
    })
    .await;

    // Down for two hours, replacement after 1m with deleteVolume: but no node answers, so no
    // Raft membership (let alone a quorum) is known, and the controller must leave it alone.
    mark_down_for_hours(&pods, "down-0").await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(uid(&pods, "down-0").await.as_ref(), Some(&pod_uid));
        assert_eq!(uid(&claims, "data-down-0").await.as_ref(), Some(&claim_uid));
    }
    let cluster = clusters.get("down").await.unwrap();
    let operation = cluster.status.and_then(|s| s.operation).unwrap_or_default();
    assert!(!operation.contains("replace"), "{operation}");

    // The Kubernetes half with the volume kept: a new pod, the same claim.
    let done = delete_pod_and_claim(&client, &ns, "down", 0, false)
        .await
        .unwrap();
    assert_eq!(
        done,
        ["deleted pod down-0 for the StatefulSet to re-create"]
    );
    let new_pod = common::eventually("a re-created pod down-0", || {
        let (pods, old) = (pods.clone(), pod_uid.clone());
        async move { uid(&pods, "down-0").await.filter(|u| *u != old) }
    })
    .await;
    assert_eq!(uid(&claims, "data-down-0").await, Some(claim_uid.clone()));

    // With deleteVolume: the claim goes too, and the StatefulSet makes a new empty one.
    let done = delete_pod_and_claim(&client, &ns, "down", 0, true)
        .await
        .unwrap();
    assert_eq!(done.len(), 2, "{done:?}");
    common::eventually("a new claim data-down-0", || {
        let (claims, old) = (claims.clone(), claim_uid.clone());
        async move { uid(&claims, "data-down-0").await.filter(|u| *u != old) }
    })
    .await;
    let pod = common::eventually("a third pod down-0", || {
        let (pods, old) = (pods.clone(), new_pod.clone());
        async move {
            let pod = pods.get_opt("down-0").await.ok()??;
            (pod.uid()? != old && pod.metadata.deletion_timestamp.is_none()).then_some(pod)
        }
    })
    .await;
    assert_eq!(pod.name_any(), "down-0");

    // Idempotent: deleting what is gone again is no error.
    delete_pod_and_claim(&client, &ns, "down", 7, true)
        .await
        .expect("nothing to delete is not an error");
    common::delete_namespace(&client, &ns).await;
}
