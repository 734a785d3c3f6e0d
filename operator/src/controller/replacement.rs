//! The Kubernetes side of replacing a failed member (`spec.replacement`, decided by
//! `crate::replacement`): since when each pod has been not Ready (its Ready condition's
//! lastTransitionTime, kept by the API server, so an operator restart does not reset the clock),
//! and the execution of `Step::ReplaceFailedMember`: remove the member from Raft, delete its
//! PersistentVolumeClaim (only with `deleteVolume`), delete the pod so the StatefulSet re-creates
//! it.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams},
};
use time::OffsetDateTime;

use super::{
    Context, ReconcileError,
    membership::{Observation, pod_ordinal},
};
use crate::{
    builders::ClusterRef,
    crd::ProgLogCluster,
    planner::Step,
    replacement::{NotReadyPod, ReplacementPolicy, parse_duration},
};

/// The claim template's name in the StatefulSet: claims are `data-NAME-ORDINAL`.
const CLAIM_TEMPLATE: &str = "data";

/// `spec.replacement`, or None when it is unset or its duration does not parse (the schema
/// rejects such a value; a bypassed schema must not make every pod replaceable at once).
pub(crate) fn policy(cluster: &ProgLogCluster) -> Option<ReplacementPolicy> {
    let spec = cluster.spec.replacement.as_ref()?;
    Some(ReplacementPolicy {
        after: parse_duration(&spec.after)?.max(Duration::from_secs(60)),
        delete_volume: spec.delete_volume,
    })
}

/// The pods of the cluster whose Ready condition is not True, with how long they have been so.
pub(crate) fn not_ready_pods(
    cluster_name: &str,
    pods: &[Pod],
    now: OffsetDateTime,
) -> Vec<NotReadyPod> {
    pods.iter()
        .filter_map(|pod| {
            let ordinal = pod_ordinal(cluster_name, pod.metadata.name.as_deref()?)?;
            let ready = pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|conditions| conditions.iter().find(|c| c.type_ == "Ready"));
            let since = match ready {
                Some(condition) if condition.status == "True" => return None,
                Some(condition) => condition.last_transition_time.as_ref(),
                None => None,
            }
            .or(pod.metadata.creation_timestamp.as_ref())?;
            let down_secs = now.unix_timestamp() - since.0.as_second();
            Some(NotReadyPod {
                ordinal,
                down_for: Duration::from_secs(u64::try_from(down_secs).unwrap_or(0)),
            })
        })
        .collect()
}

/// Executes a `ReplaceFailedMember` step; returns what was done, for the event.
pub(crate) async fn execute(
    ctx: &Context,
    cluster_ref: &ClusterRef,
    observation: &mut Observation,
    step: &Step,
) -> Result<String, ReconcileError> {
    let Step::ReplaceFailedMember {
        ordinal,
        remove_node_id,
        delete_volume,
        ..
    } = step
    else {
        return Ok(String::new());
    };
    // Raft first: once the member is gone nothing counts on its data.
    observation.execute(step).await?;
    let mut done = Vec::new();
    if let Some(node_id) = remove_node_id {
        done.push(format!("removed node {node_id} from the Raft voters"));
    }
    done.extend(
        delete_pod_and_claim(
            &ctx.client,
            &cluster_ref.namespace,
            &cluster_ref.name,
            *ordinal,
            *delete_volume,
        )
        .await?,
    );
    Ok(format!("{step}: {}", done.join(", ")))
}

/// Deletes the PersistentVolumeClaim of pod `NAME-ORDINAL` (only when `delete_volume`), then
/// the pod, so the StatefulSet re-creates it (with a new, empty claim when it was deleted).
/// Returns what was done. Idempotent: what is already gone is not an error.
pub async fn delete_pod_and_claim(
    client: &Client,
    namespace: &str,
    cluster_name: &str,
    ordinal: u32,
    delete_volume: bool,
) -> Result<Vec<String>, kube::Error> {
    let pod = format!("{cluster_name}-{ordinal}");
    let mut done = Vec::new();
    if delete_volume {
        // By name through deletecollection, the verb the finalizer already has (no new RBAC
        // verb). The claim stays (pvc-protection finalizer) until the pod below is gone, so
        // the re-created pod cannot mount the old volume.
        let claim = format!("{CLAIM_TEMPLATE}-{pod}");
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
        claims
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().fields(&format!("metadata.name={claim}")),
            )
            .await?;
        done.push(format!("deleted PersistentVolumeClaim {claim}"));
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    match pods.delete(&pod, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(e),
    }
    done.push(format!(
        "deleted pod {pod} for the StatefulSet to re-create"
    ));
    Ok(done)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(name: &str, status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": "logs",
                "creationTimestamp": "2026-12-01T09:00:00Z",
            },
            "status": status,
        }))
        .unwrap()
    }

    fn ready(status: &str, since: &str) -> serde_json::Value {
        json!({ "conditions": [
            { "type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-01T09:00:00Z" },
            { "type": "Ready", "status": status, "lastTransitionTime": since },
        ] })
    }

    #[test]
    fn down_time_comes_from_the_ready_condition_or_the_creation() {
        let now = OffsetDateTime::parse(
            "2026-12-01T10:00:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        let pods = [
            pod("demo-0", ready("True", "2026-12-01T09:01:00Z")),
            pod("demo-1", ready("False", "2026-12-01T09:48:00Z")),
            // Pending, never Ready: counted from its creation.
            pod("demo-2", json!({ "phase": "Pending" })),
            pod("other-0", ready("False", "2026-12-01T09:00:00Z")),
        ];
        let down = not_ready_pods("demo", &pods, now);
        assert_eq!(
            down,
            vec![
                NotReadyPod {
                    ordinal: 1,
                    down_for: Duration::from_secs(12 * 60),
                },
                NotReadyPod {
                    ordinal: 2,
                    down_for: Duration::from_secs(3600),
                },
            ]
        );
    }
}
