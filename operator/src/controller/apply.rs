//! One pass toward a ProgLogCluster's spec (the finalizer's Apply), in the order the phases
//! depend on each other: stop early when paused or when the spec is invalid; then certificates
//! (every later call to a node needs them), the objects the pods read (ConfigMap, Services,
//! PodDisruptionBudget), observe and plan one step, the StatefulSet, the step itself — a
//! membership change, a replacement or, once membership is steady, one rolling-restart step —
//! and the status, with when to look again.

use std::time::Duration;

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, ResourceExt,
    api::ListParams,
    runtime::{controller::Action, events::EventType},
};
use time::OffsetDateTime;

use super::{
    Context, ReconcileError, ca_rotation,
    certificates::TlsState,
    events::{self, publish},
    member_failures,
    membership::{self, Observation},
    owned::apply_owned_objects,
    reconcile::{apply_object, is_paused},
    replacement, rolling,
    status::{self, Problem, StatusInput},
    validation::validate_spec,
    volumes::grow_volumes,
};
use crate::{
    builders::{self, ClusterRef, INSTANCE_LABEL},
    crd::{PAUSE_ANNOTATION, ProgLogCluster, ProgLogClusterStatus},
    planner::{PlannerInput, Step},
    rollout::{RolloutAction, RolloutPlan},
};

/// A learner at most this many Raft entries behind the leader is promoted.
const MAX_PROMOTION_LAG: u64 = 100;

/// One pass; see the module documentation for the order.
pub(super) async fn apply(
    cluster: &ProgLogCluster,
    ctx: &Context,
) -> Result<Action, ReconcileError> {
    let cluster_ref = ClusterRef::of(cluster)?;
    let ns = cluster_ref.namespace.as_str();
    let client = &ctx.client;
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), ns);
    let previous = cluster.status.clone().unwrap_or_default();

    if is_paused(cluster) {
        return paused(cluster, ctx, &clusters, &previous).await;
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
        return invalid_spec(cluster, ctx, &clusters, &previous, problems.join("; ")).await;
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

    let tls = certificates(ctx, cluster, &cluster_ref, named_pods).await?;
    let node_config = builders::node_config(cluster)?;
    apply_owned_objects(ctx, cluster, &cluster_ref, named_pods).await?;

    let selector = format!("{INSTANCE_LABEL}={}", cluster_ref.name);
    let Planned {
        pods,
        mut observation,
        failed_members,
        step,
    } = observe_and_plan(
        ctx,
        cluster,
        &cluster_ref,
        &tls,
        &selector,
        &previous,
        desired,
        current,
    )
    .await?;

    let target = match &step {
        Step::ScaleStatefulSet { replicas } => i32::try_from(*replicas).unwrap_or(i32::MAX),
        _ => sts_replicas,
    };
    let sts = builders::stateful_set(
        cluster,
        &cluster_ref,
        target,
        &builders::config_hash(&node_config),
    );
    let (applied_sts, volume_problem) = apply_stateful_set(
        ctx,
        cluster,
        &cluster_ref,
        sts,
        existing_sts.as_ref(),
        &selector,
    )
    .await?;
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
    initialized |= execute_step(ctx, cluster, &cluster_ref, &step, &mut observation).await?;
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
                &pods,
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
    Ok(Action::requeue(requeue_after(
        ctx,
        &tls,
        &step,
        rollout.as_ref(),
    )))
}

/// What a pass observed and the one step it plans.
struct Planned {
    /// The cluster's pods.
    pods: Vec<Pod>,
    /// Nodes and membership as their admin API reported them.
    observation: Observation,
    /// Members whose node keeps failing (a Degraded condition).
    failed_members: Option<Problem>,
    /// The step.
    step: Step,
}

/// Observes the pods and their nodes and plans one step (a replacement when a member stays
/// down longer than `spec.replacement.after`).
#[allow(clippy::too_many_arguments)] // the planner's inputs, each from a different source
async fn observe_and_plan(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    tls: &TlsState,
    selector: &str,
    previous: &ProgLogClusterStatus,
    desired: u32,
    current: u32,
) -> Result<Planned, ReconcileError> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &cluster_ref.namespace);
    let pods = pods
        .list(&ListParams::default().labels(selector))
        .await?
        .items;
    let observation = membership::observe(ctx, cluster_ref, &tls.credentials, &pods).await;
    let failed_members = member_failures::problem(&member_failures::failed_members(&pods));
    let input = PlannerInput {
        desired_replicas: desired,
        statefulset_replicas: current,
        pods: observation.pods.clone(),
        membership: observation.membership.clone(),
        initialized: previous.initialized,
        max_promotion_lag: MAX_PROMOTION_LAG,
    };
    let not_ready =
        replacement::not_ready_pods(&cluster_ref.name, &pods, OffsetDateTime::now_utc());
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
    Ok(Planned {
        pods,
        observation,
        failed_members,
        step,
    })
}

/// Applies the StatefulSet `sts`; an existing one keeps its volumeClaimTemplates (immutable),
/// and its claims are grown to the spec's size instead (a problem when the API refuses).
async fn apply_stateful_set(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    mut sts: StatefulSet,
    existing: Option<&StatefulSet>,
    selector: &str,
) -> Result<(StatefulSet, Option<Problem>), ReconcileError> {
    let statefulsets: Api<StatefulSet> =
        Api::namespaced(ctx.client.clone(), &cluster_ref.namespace);
    let mut volume_problem = None;
    if let Some(existing) = existing {
        if let (Some(spec), Some(old)) = (sts.spec.as_mut(), existing.spec.as_ref()) {
            spec.volume_claim_templates = old.volume_claim_templates.clone();
        }
        volume_problem = grow_volumes(ctx, cluster, cluster_ref, selector).await?;
    }
    Ok((apply_object(&statefulsets, &sts).await?, volume_problem))
}

/// The pass of a paused cluster: the status says so (an event the first time), nothing else.
async fn paused(
    cluster: &ProgLogCluster,
    ctx: &Context,
    clusters: &Api<ProgLogCluster>,
    previous: &ProgLogClusterStatus,
) -> Result<Action, ReconcileError> {
    let already = previous.phase.as_deref() == Some("Paused");
    let now = OffsetDateTime::now_utc();
    status::write(clusters, &cluster.name_any(), &status::paused(cluster, now)).await?;
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
    Ok(Action::requeue(ctx.config.steady_requeue))
}

/// The pass of a spec the API server accepted but the operator cannot use: a Degraded
/// condition and a Warning event naming the problems; nothing is changed.
async fn invalid_spec(
    cluster: &ProgLogCluster,
    ctx: &Context,
    clusters: &Api<ProgLogCluster>,
    previous: &ProgLogClusterStatus,
    message: String,
) -> Result<Action, ReconcileError> {
    let input = StatusInput {
        problem: Some(Problem {
            reason: "InvalidSpec".to_owned(),
            message: message.clone(),
        }),
        initialized: previous.initialized,
        ..StatusInput::default()
    };
    status::write(
        clusters,
        &cluster.name_any(),
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
    Ok(Action::requeue(ctx.config.steady_requeue))
}

/// Issues, renews and rotates the cluster's certificates for `named_pods` pods, with an event
/// per certificate issued and per CA-rotation phase entered.
async fn certificates(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    named_pods: u32,
) -> Result<TlsState, ReconcileError> {
    let tls = ca_rotation::ensure_certificates(
        &ctx.client,
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
        ctx.config.metrics.count_ca_rotation_phase(
            &cluster_ref.namespace,
            &cluster_ref.name,
            &phase,
        );
    }
    Ok(tls)
}

/// Carries out a membership change, a leadership transfer or a replacement, or reports a
/// refused or stuck one; true when the step initialized the cluster.
async fn execute_step(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    step: &Step,
    observation: &mut Observation,
) -> Result<bool, ReconcileError> {
    let (ns, name) = (cluster_ref.namespace.as_str(), cluster_ref.name.as_str());
    let metrics = &ctx.config.metrics;
    if step.changes_membership() || matches!(step, Step::TransferLeadership { .. }) {
        observation.execute(step).await?;
        metrics.count_membership_operation(ns, name, step.kind());
        events::publish_membership(ctx, cluster, step).await;
        return Ok(matches!(step, Step::Initialize { .. }));
    }
    match step {
        Step::ReplaceFailedMember { .. } => {
            let note = replacement::execute(ctx, cluster_ref, observation, step).await?;
            metrics.count_membership_operation(ns, name, step.kind());
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
        Step::RefuseScaleDown { reason } | Step::Stuck { reason } => {
            let refused = if matches!(step, Step::Stuck { .. }) {
                "RaftStateLost"
            } else {
                "ScaleDownRefused"
            };
            publish(
                ctx,
                cluster,
                EventType::Warning,
                refused,
                "Membership",
                reason.clone(),
            )
            .await;
        }
        _ => {}
    }
    Ok(false)
}

/// When to look again: soon while something is in progress (a step, a roll, a CA rotation),
/// else at the steady interval, but never after a certificate is due for renewal or after a
/// maintenance window a roll waits for opens.
fn requeue_after(
    ctx: &Context,
    tls: &TlsState,
    step: &Step,
    rollout: Option<&RolloutPlan>,
) -> Duration {
    let until = |at: OffsetDateTime| {
        (at - OffsetDateTime::now_utc())
            .try_into()
            .unwrap_or(Duration::ZERO)
            .max(ctx.config.progress_requeue)
    };
    let rollout_action = rollout.map(|plan| &plan.action);
    // A CA rotation in progress is paced like any other operation in progress.
    if tls.rotation.is_some() {
        ctx.config.progress_requeue
    } else if let Some(RolloutAction::WaitForWindow { opens }) = rollout_action {
        ctx.config
            .steady_requeue
            .min(until(tls.next_renewal))
            .min(until(*opens))
    } else if *step == Step::Steady && rollout_action.is_none_or(|a| *a == RolloutAction::UpToDate)
    {
        ctx.config.steady_requeue.min(until(tls.next_renewal))
    } else {
        ctx.config.progress_requeue
    }
}
