//! Drives rolling restarts: builds the rollout planner's input (crate::rollout) from the
//! StatefulSet as applied this pass, its pods and the membership observation, then executes at
//! most one step — a leadership transfer, or the eviction of one pod, which the StatefulSet
//! controller (`OnDelete`) re-creates from the new template — and publishes the events
//! `RollingRestart`, `LeadershipTransferred` and `WaitingForMaintenanceWindow`.

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, EvictParams, Preconditions},
    runtime::events::EventType,
};
use time::OffsetDateTime;

use super::{
    Context, ReconcileError,
    events::{publish, publish_about},
    membership::{Observation, is_ready, pod_ordinal},
};
use crate::{
    builders::{ClusterRef, REVISION_LABEL},
    crd::ProgLogCluster,
    planner::Step,
    rollout::{RolloutAction, RolloutInput, RolloutPlan, RolloutPod, plan_rollout},
};

/// A restarted member counts as caught up when at most this many Raft entries behind the
/// leader: a follower keeping up under load is a batch or two behind, one replaying a backlog
/// is far more.
pub(crate) const ROLL_MAX_LAG: u64 = 1_000;

/// Whether the StatefulSet controller has observed the latest StatefulSet spec, so its
/// `status.updateRevision` is the revision of the current template.
fn revision_observed(sts: &StatefulSet) -> bool {
    let generation = sts.metadata.generation;
    let observed = sts.status.as_ref().and_then(|s| s.observed_generation);
    matches!((generation, observed), (Some(g), Some(o)) if o >= g)
}

/// The planner's view of each pod.
fn rollout_pods(cluster: &str, pods: &[Pod], observation: &Observation) -> Vec<RolloutPod> {
    pods.iter()
        .filter_map(|pod| {
            let ordinal = pod_ordinal(cluster, pod.metadata.name.as_deref()?)?;
            Some(RolloutPod {
                ordinal,
                revision: pod.labels().get(REVISION_LABEL).cloned(),
                ready: is_ready(pod),
                terminating: pod.metadata.deletion_timestamp.is_some(),
                node_id: observation
                    .pods
                    .iter()
                    .find(|p| p.ordinal == ordinal)
                    .and_then(|p| p.node.as_ref())
                    .map(|node| node.node_id),
            })
        })
        .collect()
}

/// Plans the next rolling-restart step and executes it. Called only when the membership
/// planner is steady (see apply.rs for why membership goes first).
pub(crate) async fn roll(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    sts: &StatefulSet,
    pods: &[Pod],
    observation: &mut Observation,
) -> Result<RolloutPlan, ReconcileError> {
    let status = sts.status.as_ref();
    let replicas = sts
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .and_then(|r| u32::try_from(r).ok())
        .unwrap_or(0);
    let rollout_pods = rollout_pods(&cluster_ref.name, pods, observation);
    let window = cluster.spec.maintenance.state(OffsetDateTime::now_utc());
    let input = RolloutInput {
        cluster: &cluster_ref.name,
        replicas,
        update_revision: status.and_then(|s| s.update_revision.as_deref()),
        revision_observed: revision_observed(sts),
        pods: &rollout_pods,
        membership: observation.membership.as_ref(),
        reported_by_leader: observation.reported_by_leader,
        max_lag: ROLL_MAX_LAG,
        window,
    };
    let plan = plan_rollout(&input);
    // Each restart's and hand-over's event names its pod (see `publish_about`).
    let pod_named = |ordinal: u32| {
        let name = format!("{}-{ordinal}", cluster_ref.name);
        pods.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
    };
    let description = plan.describe(&cluster_ref.name);
    let previous_operation = cluster
        .status
        .as_ref()
        .and_then(|s| s.operation.clone())
        .unwrap_or_default();
    match &plan.action {
        RolloutAction::UpToDate => {}
        RolloutAction::Wait { .. } => tracing::debug!(%description, "rolling restart waits"),
        RolloutAction::WaitForWindow { .. } => {
            // Once per wait, not once per reconcile.
            if !previous_operation.contains("maintenance window") {
                publish(
                    ctx,
                    cluster,
                    EventType::Normal,
                    "WaitingForMaintenanceWindow",
                    "RollingRestart",
                    description,
                )
                .await;
            }
        }
        RolloutAction::TransferLeadership { from, to, ordinal } => {
            tracing::info!(%description, "rolling restart");
            observation
                .execute(&Step::TransferLeadership {
                    from: *from,
                    to: *to,
                })
                .await?;
            ctx.config.metrics.count_membership_operation(
                &cluster_ref.namespace,
                &cluster_ref.name,
                "transfer_leadership",
            );
            publish_about(
                ctx,
                cluster,
                EventType::Normal,
                "LeadershipTransferred",
                "RollingRestart",
                description,
                pod_named(*ordinal).map(|p| p.object_ref(&())),
            )
            .await;
        }
        RolloutAction::RestartPod { ordinal, .. } => {
            let name = format!("{}-{ordinal}", cluster_ref.name);
            let pod = pod_named(*ordinal);
            let uid = pod.and_then(|p| p.metadata.uid.clone());
            tracing::info!(%description, "rolling restart");
            if let Some(refused) = evict(ctx, &cluster_ref.namespace, &name, uid).await? {
                return Ok(RolloutPlan {
                    action: RolloutAction::Wait { reason: refused },
                    ..plan
                });
            }
            publish_about(
                ctx,
                cluster,
                EventType::Normal,
                "RollingRestart",
                "RollingRestart",
                description,
                pod.map(|p| p.object_ref(&())),
            )
            .await;
        }
    }
    Ok(plan)
}

/// Evicts the pod observed with `uid` (an eviction, not a delete, so the PodDisruptionBudget
/// still guards against a concurrent drain). `Some(reason)` when the API server refused for a
/// reason the next pass may see resolved.
async fn evict(
    ctx: &Context,
    namespace: &str,
    name: &str,
    uid: Option<String>,
) -> Result<Option<String>, ReconcileError> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let params = EvictParams {
        delete_options: Some(DeleteParams {
            // Only the pod the planner saw: never its replacement.
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        }),
        ..EvictParams::default()
    };
    match pods.evict(name, &params).await {
        Ok(_) => Ok(None),
        Err(kube::Error::Api(e)) if e.code == 429 => Ok(Some(format!(
            "the PodDisruptionBudget to allow evicting pod {name} ({})",
            e.message
        ))),
        Err(kube::Error::Api(e)) if matches!(e.code, 404 | 409) => Ok(Some(format!(
            "pod {name} changed before its eviction ({})",
            e.message
        ))),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_update_revision_counts_only_once_the_controller_saw_the_generation() {
        let sts = |generation: i64, observed: Option<i64>| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": { "name": "demo", "generation": generation },
                "status": { "replicas": 3, "observedGeneration": observed,
                            "updateRevision": "demo-1" },
            }))
            .unwrap()
        };
        assert!(revision_observed(&sts(2, Some(2))));
        assert!(!revision_observed(&sts(3, Some(2))));
        assert!(!revision_observed(&sts(1, None)));
    }

    #[test]
    fn pods_carry_their_revision_readiness_and_node() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": { "name": "demo-1", "labels": { REVISION_LABEL: "demo-abc" },
                          "deletionTimestamp": "2026-12-01T00:00:00Z" },
            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
        }))
        .unwrap();
        let other: Pod =
            serde_json::from_value(json!({ "metadata": { "name": "unrelated-0" } })).unwrap();
        let mut observation = Observation::default();
        observation.pods.push(crate::planner::ObservedPod {
            ordinal: 1,
            node: Some(crate::planner::NodeIdentity {
                node_id: 10_001,
                address: "demo-1:8400".to_owned(),
                has_raft_state: true,
            }),
        });
        assert_eq!(
            rollout_pods("demo", &[pod, other], &observation),
            vec![RolloutPod {
                ordinal: 1,
                revision: Some("demo-abc".to_owned()),
                ready: true,
                terminating: true,
                node_id: Some(10_001),
            }]
        );
    }
}
