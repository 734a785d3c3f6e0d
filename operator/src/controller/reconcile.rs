//! One reconciliation of a ProgLogCluster under its finalizer: the pass toward the spec
//! ([`super::apply`]), or, on deletion, removing what garbage collection does not; reconcile
//! metrics, and a failed pass reported as a Degraded condition and a Warning event.

use std::{sync::Arc, time::Instant};

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::EventType,
        finalizer::{Error as FinalizerError, Event, finalizer},
        reflector::ObjectRef,
    },
};
use time::OffsetDateTime;

use super::{
    Context, FIELD_MANAGER, ReconcileError,
    apply::apply,
    events::publish,
    status::{self, Problem, StatusInput},
};
use crate::{
    builders::{BuildError, ClusterRef, INSTANCE_LABEL},
    crd::{FINALIZER, PAUSE_ANNOTATION, ProgLogCluster, VolumeRetention},
};

/// Entry point called by the controller for every change and requeue.
pub(crate) async fn reconcile(
    cluster: Arc<ProgLogCluster>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let started = Instant::now();
    let namespace = cluster
        .namespace()
        .ok_or(BuildError::MissingMetadata("namespace"))?;
    let api: Api<ProgLogCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let result = finalizer(&api, FINALIZER, cluster.clone(), |event| async {
        match event {
            Event::Apply(cluster) => apply(&cluster, &ctx).await,
            Event::Cleanup(cluster) => cleanup(&cluster, &ctx).await,
        }
    })
    .await
    .map_err(|error| match error {
        FinalizerError::ApplyFailed(e) | FinalizerError::CleanupFailed(e) => e,
        other => ReconcileError::Finalizer(other.to_string()),
    });
    ctx.config
        .metrics
        .observe_reconcile(started.elapsed(), result.is_err());
    match &result {
        Ok(_) => {
            let mut failures = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
            failures.remove(&ObjectRef::from(cluster.as_ref()));
        }
        Err(error) if cluster.meta().deletion_timestamp.is_none() => {
            report_failure(&api, &cluster, error, &ctx).await;
        }
        Err(_) => {}
    }
    result
}

/// Best effort: a Degraded condition and a Warning event explaining the failure.
async fn report_failure(
    api: &Api<ProgLogCluster>,
    cluster: &ProgLogCluster,
    error: &ReconcileError,
    ctx: &Context,
) {
    let problem = Problem {
        reason: error.reason().to_owned(),
        message: error.to_string(),
    };
    let input = StatusInput {
        problem: Some(problem),
        initialized: cluster.status.as_ref().is_some_and(|s| s.initialized),
        ..StatusInput::default()
    };
    let mut new_status = status::compute(cluster, &input, OffsetDateTime::now_utc());
    // Keep what was observed last time; only the conditions and phase change.
    if let Some(previous) = &cluster.status {
        new_status.replicas = previous.replicas;
        new_status.ready_replicas = previous.ready_replicas;
        new_status.leader = previous.leader.clone();
        new_status.voters = previous.voters.clone();
        new_status.learners = previous.learners.clone();
        new_status.members = previous.members.clone();
    }
    if let Err(e) = status::write(api, &cluster.name_any(), &new_status).await {
        tracing::warn!(error = %e, "could not write the Degraded status");
    }
    publish(
        ctx,
        cluster,
        EventType::Warning,
        error.reason(),
        "Reconcile",
        error.to_string(),
    )
    .await;
}

/// Server-side applies `object`; returns the object as the API server now has it.
pub(super) async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<K, ReconcileError>
where
    K: Resource + serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    Ok(api
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await?)
}

/// Whether the pause annotation is set to `"true"` (any other value is ignored, like an absent
/// annotation: a typo must not silently stop the operator, so it is also logged).
pub(super) fn is_paused(cluster: &ProgLogCluster) -> bool {
    match cluster
        .annotations()
        .get(PAUSE_ANNOTATION)
        .map(String::as_str)
    {
        Some("true") => true,
        Some(other) => {
            tracing::warn!(
                value = other,
                "{PAUSE_ANNOTATION} is not \"true\"; not pausing"
            );
            false
        }
        None => false,
    }
}

/// Finalizer: owned objects are garbage-collected through owner references; PersistentVolumeClaims
/// are not (they belong to the StatefulSet's claim templates), so they are deleted here only when
/// `spec.storage.retentionOnDelete` is Delete.
async fn cleanup(cluster: &ProgLogCluster, ctx: &Context) -> Result<Action, ReconcileError> {
    let cluster_ref = ClusterRef::of(cluster)?;
    let selector = format!("{INSTANCE_LABEL}={}", cluster_ref.name);
    let note = match cluster.spec.storage.retention_on_delete {
        VolumeRetention::Delete => {
            let claims: Api<PersistentVolumeClaim> =
                Api::namespaced(ctx.client.clone(), &cluster_ref.namespace);
            claims
                .delete_collection(
                    &DeleteParams::default(),
                    &ListParams::default().labels(&selector),
                )
                .await?;
            "deleted the cluster's PersistentVolumeClaims".to_owned()
        }
        VolumeRetention::Retain => format!(
            "kept the PersistentVolumeClaims labelled {selector} (spec.storage.retentionOnDelete is Retain)"
        ),
    };
    publish(ctx, cluster, EventType::Normal, "Deleted", "Cleanup", note).await;
    Ok(Action::await_change())
}
