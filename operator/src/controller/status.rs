//! The ProgLogCluster status: phase, the Available/Progressing/Degraded conditions (keeping
//! their transition times when unchanged), replica counts, observed membership and
//! certificate expiry, and the rolling restart in progress, written to the status subresource.

use kube::{
    Api,
    api::{Patch, PatchParams},
};
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::{
    crd::{
        ClusterCondition, MemberStatus, MemberSummary, PAUSE_ANNOTATION, ProgLogCluster,
        ProgLogClusterStatus, TrustedCa,
    },
    planner::{ObservedMembership, Step},
    rollout::{RolloutAction, RolloutPlan},
};

/// Why the cluster is degraded, if it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Condition reason (PascalCase).
    pub reason: String,
    /// Explanation for humans.
    pub message: String,
}

/// Everything the status is computed from.
#[derive(Debug, Default)]
pub(crate) struct StatusInput<'a> {
    /// The step planned this pass (None when the pass failed before planning).
    pub step: Option<&'a Step>,
    /// The problem, if any.
    pub problem: Option<Problem>,
    /// Member pods that keep failing (see `member_failures`); Degraded unless a problem or a
    /// refused step already explains it.
    pub failed_members: Option<Problem>,
    /// StatefulSet replicas.
    pub replicas: i32,
    /// Ready pods.
    pub ready: i32,
    /// Observed membership.
    pub membership: Option<&'a ObservedMembership>,
    /// Whether the cluster is known to be initialized.
    pub initialized: bool,
    /// CA expiry.
    pub ca_expiry: Option<OffsetDateTime>,
    /// Node certificate expiry.
    pub certificate_expiry: Option<OffsetDateTime>,
    /// The operator's client certificate expiry.
    pub operator_certificate_expiry: Option<OffsetDateTime>,
    /// Ordinals of the Ready pods.
    pub ready_ordinals: &'a [u32],
    /// "CA rotation: PHASE …" while a CA rotation runs (the operation shown before the step's).
    pub ca_rotation: Option<String>,
    /// The CAs trusted now (empty: keep the previous status' list).
    pub trusted_cas: Vec<TrustedCa>,
    /// The rolling restart planned this pass (None: not planned, e.g. membership was changing).
    pub rollout: Option<&'a RolloutPlan>,
}

/// A member further behind the leader than this is not healthy: it is catching up, not
/// keeping up (a healthy follower is a batch or two behind at most).
pub(crate) const HEALTHY_MAX_LAG: u64 = 5_000;

/// Each observed member with its pod, role, readiness and progress.
fn member_statuses(cluster: &ProgLogCluster, input: &StatusInput<'_>) -> Vec<MemberStatus> {
    let Some(membership) = input.membership else {
        return Vec::new();
    };
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    membership
        .members
        .iter()
        .map(|member| {
            let ordinal = crate::planner::ordinal_of(member.node_id);
            let role = if membership.leader_id == Some(member.node_id) {
                "Leader"
            } else if member.voter {
                "Voter"
            } else {
                "Learner"
            };
            MemberStatus {
                node_id: member.node_id,
                pod: format!("{name}-{ordinal}"),
                role: role.to_owned(),
                healthy: input.ready_ordinals.contains(&ordinal) && member.lag <= HEALTHY_MAX_LAG,
                matched_index: member.matched_index,
                lag: member.lag,
            }
        })
        .collect()
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn step_reason(step: &Step) -> &'static str {
    match step {
        Step::Initialize { .. } => "Initializing",
        Step::AddLearner { .. } => "AddingLearner",
        Step::Promote { .. } => "PromotingLearner",
        Step::RemoveVoter { .. } => "RemovingVoter",
        Step::RemoveLearner { .. } => "RemovingLearner",
        Step::ReplaceMember { .. } => "ReplacingMember",
        Step::ReplaceFailedMember { .. } => "ReplacingFailedMember",
        Step::TransferLeadership { .. } => "TransferringLeadership",
        Step::ScaleStatefulSet { .. } => "ScalingStatefulSet",
        Step::Wait { .. } => "Waiting",
        Step::RefuseScaleDown { .. } => "ScaleDownRefused",
        Step::Stuck { .. } => "RaftStateLost",
        Step::Steady => "Reconciled",
    }
}

fn rollout_reason(action: &RolloutAction) -> &'static str {
    match action {
        RolloutAction::UpToDate => "Reconciled",
        RolloutAction::Wait { .. } => "RollingRestartWaiting",
        RolloutAction::WaitForWindow { .. } => "WaitingForMaintenanceWindow",
        RolloutAction::TransferLeadership { .. } => "TransferringLeadership",
        RolloutAction::RestartPod { .. } => "RollingRestart",
    }
}

/// Computes the new status from the previous one (for transition times) and this pass.
pub(crate) fn compute(
    cluster: &ProgLogCluster,
    input: &StatusInput<'_>,
    now: OffsetDateTime,
) -> ProgLogClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let generation = cluster.metadata.generation;
    let problem = input
        .problem
        .clone()
        .or_else(|| match input.step {
            Some(step @ (Step::RefuseScaleDown { reason } | Step::Stuck { reason })) => {
                Some(Problem {
                    reason: step_reason(step).to_owned(),
                    message: reason.clone(),
                })
            }
            _ => None,
        })
        .or_else(|| input.failed_members.clone());
    let leader = input
        .membership
        .and_then(|m| {
            let id = m.leader_id?;
            m.members.iter().find(|member| member.node_id == id)
        })
        .map(|member| member.address.clone());
    let summaries = |voter: bool| -> Vec<MemberSummary> {
        input
            .membership
            .map(|m| {
                m.members
                    .iter()
                    .filter(|member| member.voter == voter)
                    .map(|member| MemberSummary {
                        node_id: member.node_id,
                        address: member.address.clone(),
                        lag: member.lag,
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let voters = summaries(true);
    let available = leader.is_some();
    // A rolling restart is planned only once membership is steady.
    let rollout = input
        .rollout
        .filter(|plan| input.step == Some(&Step::Steady) && plan.in_progress());
    let name = cluster.metadata.name.as_deref().unwrap_or_default();
    let progressing = rollout.is_some()
        || input.step.is_some_and(|step| {
            !matches!(
                step,
                Step::Steady | Step::RefuseScaleDown { .. } | Step::Stuck { .. }
            )
        });

    let (available_reason, available_message) = if available {
        (
            "LeaderElected",
            format!("{} voter(s) with an elected leader", voters.len()),
        )
    } else if !input.initialized {
        (
            "NotInitialized",
            "the Raft cluster has not been initialized yet".to_owned(),
        )
    } else {
        ("NoLeader", "no node reported a Raft leader".to_owned())
    };
    let (progress_reason, progress_message) = match (rollout, input.step) {
        (Some(plan), _) => (rollout_reason(&plan.action), plan.describe(name)),
        (None, Some(step)) => (step_reason(step), step.to_string()),
        (None, None) => (
            "ReconcileFailed",
            "reconciliation failed; see Degraded".to_owned(),
        ),
    };
    let conditions = vec![
        condition(
            &previous,
            generation,
            now,
            "Available",
            available,
            available_reason,
            available_message,
        ),
        condition(
            &previous,
            generation,
            now,
            "Progressing",
            progressing,
            progress_reason,
            progress_message,
        ),
        match &problem {
            Some(p) => condition(
                &previous,
                generation,
                now,
                "Degraded",
                true,
                &p.reason,
                p.message.clone(),
            ),
            None => condition(
                &previous,
                generation,
                now,
                "Degraded",
                false,
                "AsExpected",
                "no problem detected".to_owned(),
            ),
        },
    ];
    let phase = if problem.is_some() {
        "Degraded"
    } else if !input.initialized {
        if input
            .step
            .is_some_and(|s| matches!(s, Step::Initialize { .. }))
        {
            "Initializing"
        } else {
            "Pending"
        }
    } else if let Some(plan) = rollout {
        match plan.action {
            // A change waiting for its window leaves a running cluster running.
            RolloutAction::WaitForWindow { .. } => "Running",
            _ => "RollingRestart",
        }
    } else if progressing {
        "Scaling"
    } else {
        "Running"
    };
    ProgLogClusterStatus {
        observed_generation: generation,
        phase: Some(phase.to_owned()),
        conditions,
        replicas: input.replicas,
        ready_replicas: input.ready,
        initialized: input.initialized || previous.initialized,
        leader,
        voters,
        learners: summaries(false),
        members: member_statuses(cluster, input),
        operation: input.ca_rotation.clone().or_else(|| match rollout {
            Some(plan) => Some(plan.describe(name)),
            None => input
                .step
                .filter(|_| progressing)
                .map(|step| step.to_string()),
        }),
        trusted_cas: if input.trusted_cas.is_empty() {
            previous.trusted_cas.clone()
        } else {
            input.trusted_cas.clone()
        },
        operator_certificate_expiry: input
            .operator_certificate_expiry
            .map(rfc3339)
            .or(previous.operator_certificate_expiry),
        ca_expiry: input.ca_expiry.map(rfc3339).or(previous.ca_expiry),
        certificate_expiry: input
            .certificate_expiry
            .map(rfc3339)
            .or(previous.certificate_expiry),
    }
}

#[allow(clippy::too_many_arguments)]
fn condition(
    previous: &ProgLogClusterStatus,
    generation: Option<i64>,
    now: OffsetDateTime,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> ClusterCondition {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = previous
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| rfc3339(now));
    ClusterCondition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time,
        observed_generation: generation,
    }
}

/// The status of a paused cluster: what was observed before the pause, phase `Paused`, and a
/// `ReconciliationPaused` condition at the current generation (so a client can tell that the
/// operator saw the latest spec and left it alone). Unpausing drops the condition: [`compute`]
/// builds the conditions afresh.
pub(crate) fn paused(cluster: &ProgLogCluster, now: OffsetDateTime) -> ProgLogClusterStatus {
    let previous = cluster.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    status.phase = Some("Paused".to_owned());
    status.conditions.retain(|c| c.type_ != PAUSED_CONDITION);
    status.conditions.push(condition(
        &previous,
        cluster.metadata.generation,
        now,
        PAUSED_CONDITION,
        true,
        "AnnotationSet",
        format!(
            "{PAUSE_ANNOTATION} is \"true\": the operator changes nothing (objects, \
             certificates, membership) until it is removed"
        ),
    ));
    status
}

/// The condition type of a paused cluster.
pub(crate) const PAUSED_CONDITION: &str = "ReconciliationPaused";

/// Writes the status subresource (merge patch: only the status, never the spec).
pub(crate) async fn write(
    api: &Api<ProgLogCluster>,
    name: &str,
    status: &ProgLogClusterStatus,
) -> Result<(), kube::Error> {
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({ "status": status })),
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[path = "status_tests.rs"]
mod tests;
