//! One reconciliation of a ProgLogCluster: validate, certificates, configuration, Services,
//! PodDisruptionBudget, observe and plan membership, StatefulSet, one membership step — or, once
//! membership is steady, one rolling-restart step — and the status.
//! Deletion (the finalizer) removes what garbage collection does not.

use std::{collections::BTreeSet, sync::Arc, time::Instant};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{PersistentVolumeClaim, Pod, Service},
};
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
use serde_json::json;
use time::OffsetDateTime;

use super::{
    Context, FIELD_MANAGER, ReconcileError, ca_rotation,
    events::{self, publish},
    member_failures, membership, replacement, rolling,
    status::{self, Problem, StatusInput},
    users,
    validation::validate_spec,
};
use crate::{
    builders::{self, BuildError, ClusterRef, INSTANCE_LABEL},
    crd::{FINALIZER, PAUSE_ANNOTATION, ProgLogCluster, VolumeRetention},
    planner::{PlannerInput, Step},
    rollout::RolloutAction,
};

/// A learner at most this many Raft entries behind the leader is promoted.
const MAX_PROMOTION_LAG: u64 = 100;

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
async fn apply_object<K>(api: &Api<K>, object: &K) -> Result<K, ReconcileError>
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
fn is_paused(cluster: &ProgLogCluster) -> bool {
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

async fn apply(cluster: &ProgLogCluster, ctx: &Context) -> Result<Action, ReconcileError> {
    let cluster_ref = ClusterRef::of(cluster)?;
    let ns = cluster_ref.namespace.as_str();
    let client = &ctx.client;
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), ns);
    let previous = cluster.status.clone().unwrap_or_default();

    if is_paused(cluster) {
        let already = previous.phase.as_deref() == Some("Paused");
        let now = OffsetDateTime::now_utc();
        status::write(&clusters, &cluster_ref.name, &status::paused(cluster, now)).await?;
        if !already {
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "ReconciliationPaused",
                "Pause",
                format!("{PAUSE_ANNOTATION} is \"true\": reconciliation paused"),
            )
            .await;
        }
        return Ok(Action::requeue(ctx.config.steady_requeue));
    }
    if previous.phase.as_deref() == Some("Paused") {
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "ReconciliationResumed",
            "Resume",
            format!("{PAUSE_ANNOTATION} removed: reconciling again"),
        )
        .await;
    }

    let problems = validate_spec(cluster);
    if !problems.is_empty() {
        let message = problems.join("; ");
        let input = StatusInput {
            problem: Some(Problem {
                reason: "InvalidSpec".to_owned(),
                message: message.clone(),
            }),
            initialized: previous.initialized,
            ..StatusInput::default()
        };
        status::write(
            &clusters,
            &cluster_ref.name,
            &status::compute(cluster, &input, OffsetDateTime::now_utc()),
        )
        .await?;
        publish(
            ctx,
            cluster,
            EventType::Warning,
            "InvalidSpec",
            "Validate",
            message,
        )
        .await;
        return Ok(Action::requeue(ctx.config.steady_requeue));
    }

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let existing_sts = statefulsets.get_opt(&cluster_ref.name).await?;
    let sts_replicas = existing_sts
        .as_ref()
        .and_then(|s| s.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let desired = u32::try_from(cluster.spec.replicas).unwrap_or(1);
    let current = u32::try_from(sts_replicas).unwrap_or(0);
    let named_pods = desired.max(current).max(1);

    let tls = ca_rotation::ensure_certificates(
        client,
        cluster,
        named_pods,
        None,
        ctx.config.admin_timeout,
    )
    .await?;
    for note in &tls.issued {
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "CertificateIssued",
            "Certificates",
            note.clone(),
        )
        .await;
    }
    for (phase, note) in &tls.rotation_notes {
        // The action names the phase entered: the recorder folds events with equal
        // reason and action into one series, which would hide all phases but the first.
        let phase = phase.to_string();
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "CARotation",
            &phase,
            note.clone(),
        )
        .await;
        ctx.config
            .metrics
            .count_ca_rotation_phase(ns, &cluster_ref.name, &phase);
    }

    // Configuration and Services: desired state, applied every pass (idempotent).
    let users = users::users_of(ctx, ns, &cluster_ref.name).await?;
    let config_map = builders::config_map(cluster, &cluster_ref, &users)?;
    let node_config = builders::node_config(cluster)?;
    apply_object(&Api::namespaced(client.clone(), ns), &config_map).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    apply_object(&services, &builders::headless_service(&cluster_ref)).await?;
    apply_object(&services, &builders::client_service(cluster, &cluster_ref)).await?;
    let external = builders::external_services(cluster, &cluster_ref, named_pods);
    for service in &external {
        apply_object(&services, service).await?;
    }
    delete_stale_external_services(&services, &cluster_ref, &external).await?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &builders::pod_disruption_budget(&cluster_ref),
    )
    .await?;

    // Observe, plan one step.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let selector = format!("{INSTANCE_LABEL}={}", cluster_ref.name);
    let pod_list = pods.list(&ListParams::default().labels(&selector)).await?;
    let mut observation =
        membership::observe(ctx, &cluster_ref, &tls.credentials, &pod_list.items).await;
    let failed_members =
        member_failures::problem(&member_failures::failed_members(&pod_list.items));
    let input = PlannerInput {
        desired_replicas: desired,
        statefulset_replicas: current,
        pods: observation.pods.clone(),
        membership: observation.membership.clone(),
        initialized: previous.initialized,
        max_promotion_lag: MAX_PROMOTION_LAG,
    };
    let not_ready = replacement::not_ready_pods(
        &cluster_ref.name,
        &pod_list.items,
        OffsetDateTime::now_utc(),
    );
    let step = crate::replacement::plan_with_replacement(
        &input,
        replacement::policy(cluster).as_ref(),
        &not_ready,
    );
    if matches!(step, Step::Wait { .. } | Step::Steady) {
        tracing::debug!(cluster = %builders::display_name(cluster), %step, "planned");
    } else {
        tracing::info!(cluster = %builders::display_name(cluster), %step, "planned");
    }

    let target = match &step {
        Step::ScaleStatefulSet { replicas } => i32::try_from(*replicas).unwrap_or(i32::MAX),
        _ => sts_replicas,
    };
    let mut volume_problem = None;
    let mut sts = builders::stateful_set(
        cluster,
        &cluster_ref,
        target,
        &builders::config_hash(&node_config),
    );
    if let Some(existing) = &existing_sts {
        // volumeClaimTemplates are immutable: keep the existing ones and grow the PVCs instead.
        if let (Some(spec), Some(old)) = (sts.spec.as_mut(), existing.spec.as_ref()) {
            spec.volume_claim_templates = old.volume_claim_templates.clone();
        }
        volume_problem = grow_volumes(ctx, cluster, &cluster_ref, &selector).await?;
    }
    let applied_sts = apply_object(&statefulsets, &sts).await?;
    if let Step::ScaleStatefulSet { replicas } = &step {
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "Scaled",
            "ScaleStatefulSet",
            format!("StatefulSet scaled from {sts_replicas} to {replicas}"),
        )
        .await;
    }

    let mut initialized = previous.initialized;
    if step.changes_membership() || matches!(step, Step::TransferLeadership { .. }) {
        observation.execute(&step).await?;
        ctx.config
            .metrics
            .count_membership_operation(ns, &cluster_ref.name, step.kind());
        events::publish_membership(ctx, cluster, &step).await;
        initialized |= matches!(step, Step::Initialize { .. });
    }
    if let Step::ReplaceFailedMember { .. } = &step {
        let note = replacement::execute(ctx, &cluster_ref, &mut observation, &step).await?;
        ctx.config
            .metrics
            .count_membership_operation(ns, &cluster_ref.name, step.kind());
        publish(
            ctx,
            cluster,
            EventType::Normal,
            "MemberReplaced",
            "ReplaceFailedMember",
            note,
        )
        .await;
    }
    if let Step::RefuseScaleDown { reason } | Step::Stuck { reason } = &step {
        publish(
            ctx,
            cluster,
            EventType::Warning,
            if matches!(step, Step::Stuck { .. }) {
                "RaftStateLost"
            } else {
                "ScaleDownRefused"
            },
            "Membership",
            reason.clone(),
        )
        .await;
    }
    // Membership goes first: a rolling restart is safe only while every member is a caught-up
    // voter, which a membership change in progress (a learner catching up, a lost member being
    // replaced, a scale-down) means some member is not; and restoring redundancy matters more
    // than applying a new template. Pods a scale-up creates start on the new template anyway.
    let rollout = if step == Step::Steady {
        Some(
            rolling::roll(
                ctx,
                cluster,
                &cluster_ref,
                &applied_sts,
                &pod_list.items,
                &mut observation,
            )
            .await?,
        )
    } else {
        None
    };
    initialized |= observation.membership.is_some()
        || observation
            .pods
            .iter()
            .any(|p| p.node.as_ref().is_some_and(|n| n.has_raft_state));

    if let Some(problem) = &volume_problem
        && previous
            .conditions
            .iter()
            .all(|c| c.reason != problem.reason || c.status != "True")
    {
        publish(
            ctx,
            cluster,
            EventType::Warning,
            &problem.reason,
            "GrowVolumes",
            problem.message.clone(),
        )
        .await;
    }
    let input = StatusInput {
        step: Some(&step),
        problem: volume_problem,
        failed_members,
        replicas: target,
        ready: observation.ready,
        membership: observation.membership.as_ref(),
        initialized,
        ca_expiry: Some(tls.ca_expiry),
        certificate_expiry: Some(tls.node_expiry),
        operator_certificate_expiry: Some(tls.operator_expiry),
        ready_ordinals: &observation.ready_ordinals,
        ca_rotation: tls.rotation.clone(),
        trusted_cas: tls.trusted_cas.clone(),
        rollout: rollout.as_ref(),
    };
    let metrics = &ctx.config.metrics;
    for (certificate, expiry) in [
        ("ca", tls.ca_expiry),
        ("node", tls.node_expiry),
        ("operator", tls.operator_expiry),
    ] {
        metrics.set_certificate_expiry(ns, &cluster_ref.name, certificate, expiry.unix_timestamp());
    }
    status::write(
        &clusters,
        &cluster_ref.name,
        &status::compute(cluster, &input, OffsetDateTime::now_utc()),
    )
    .await?;

    let until = |at: OffsetDateTime| {
        (at - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(std::time::Duration::ZERO)
            .max(ctx.config.progress_requeue)
    };
    let rollout_action = rollout.as_ref().map(|plan| &plan.action);
    // A CA rotation in progress is paced like any other operation in progress.
    let requeue = if tls.rotation.is_some() {
        ctx.config.progress_requeue
    } else if let Some(RolloutAction::WaitForWindow { opens }) = rollout_action {
        ctx.config
            .steady_requeue
            .min(until(tls.next_renewal))
            .min(until(*opens))
    } else if step == Step::Steady && rollout_action.is_none_or(|a| *a == RolloutAction::UpToDate) {
        ctx.config.steady_requeue.min(until(tls.next_renewal))
    } else {
        ctx.config.progress_requeue
    };
    Ok(Action::requeue(requeue))
}

async fn delete_stale_external_services(
    services: &Api<Service>,
    cluster_ref: &ClusterRef,
    wanted: &[Service],
) -> Result<(), ReconcileError> {
    let wanted: BTreeSet<String> = wanted
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let selector = format!("{INSTANCE_LABEL}={}", cluster_ref.name);
    for service in services
        .list(&ListParams::default().labels(&selector))
        .await?
    {
        let name = service.name_any();
        if name.ends_with("-external") && !wanted.contains(&name) {
            services.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Ok(())
}

/// Raises the storage request of existing PVCs to `spec.storage.size` (volume expansion); the
/// schema guarantees the size never shrinks.
async fn grow_volumes(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    selector: &str,
) -> Result<Option<Problem>, ReconcileError> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &cluster_ref.namespace);
    let wanted = &cluster.spec.storage.size;
    let mut refused = Vec::new();
    for claim in claims.list(&ListParams::default().labels(selector)).await? {
        let current = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        if current.as_deref() != Some(wanted.as_str()) {
            let patch = json!({"spec": {"resources": {"requests": {"storage": wanted}}}});
            let grown = claims
                .patch(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            match grown {
                Ok(_) => {}
                // Invalid or Forbidden: this claim cannot grow (a StorageClass without
                // allowVolumeExpansion, a claim not bound yet). Say so; the rest of the
                // cluster's changes must not wait for it.
                Err(kube::Error::Api(e)) if matches!(e.code, 403 | 422) => {
                    refused.push(format!("{}: {}", claim.name_any(), e.message));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((!refused.is_empty()).then(|| Problem {
        reason: "VolumeGrowthRefused".to_owned(),
        message: format!(
            "spec.storage.size is {wanted} but the API server refused to grow: {}",
            refused.join("; ")
        ),
    }))
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
