//! Unit tests of the status computation: phases, conditions and their transition times,
//! members, pause, problems, and the rolling restart as the operation.

use super::*;
use crate::builders::test_support::cluster;
use crate::planner::ObservedMember;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn find<'a>(status: &'a ProgLogClusterStatus, type_: &str) -> &'a ClusterCondition {
    status.conditions.iter().find(|c| c.type_ == type_).unwrap()
}

#[test]
fn steady_cluster_is_available_and_running() {
    let membership = ObservedMembership {
        leader_id: Some(1),
        members: vec![ObservedMember {
            node_id: 1,
            address: "demo-0:8400".to_owned(),
            voter: true,
            lag: 0,
            matched_index: 42,
        }],
        committed: true,
    };
    let input = StatusInput {
        step: Some(&Step::Steady),
        membership: Some(&membership),
        initialized: true,
        replicas: 1,
        ready: 1,
        ..StatusInput::default()
    };
    let status = compute(&cluster(), &input, now());
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(find(&status, "Available").status, "True");
    assert_eq!(find(&status, "Progressing").status, "False");
    assert_eq!(find(&status, "Degraded").status, "False");
    assert_eq!(status.leader.as_deref(), Some("demo-0:8400"));
    assert_eq!(status.voters.len(), 1);
    assert_eq!(status.observed_generation, Some(1));
    // Node 1 runs in pod 1 (node ids end in the ordinal), not Ready here: listed, not healthy.
    assert_eq!(
        status.members,
        vec![MemberStatus {
            node_id: 1,
            pod: "demo-1".to_owned(),
            role: "Leader".to_owned(),
            healthy: false,
            matched_index: 42,
            lag: 0,
        }]
    );
    assert_eq!(status.operation, None, "steady: no operation");
    let ready = compute(
        &cluster(),
        &StatusInput {
            ready_ordinals: &[1],
            step: Some(&Step::Promote { node_id: 1 }),
            membership: Some(&membership),
            initialized: true,
            ..StatusInput::default()
        },
        now(),
    );
    assert!(ready.members[0].healthy);
    assert_eq!(
        ready.operation.as_deref(),
        Some("promote learner 1 to voter")
    );
    let rotating = compute(
        &cluster(),
        &StatusInput {
            step: Some(&Step::Promote { node_id: 1 }),
            membership: Some(&membership),
            initialized: true,
            ca_rotation: Some("CA rotation: Reissue".to_owned()),
            ..StatusInput::default()
        },
        now(),
    );
    assert_eq!(rotating.operation.as_deref(), Some("CA rotation: Reissue"));
}

#[test]
fn a_rolling_restart_is_the_operation_once_membership_is_steady() {
    let plan = |action| RolloutPlan {
        action,
        updated: 1,
        total: 3,
    };
    let restarting = plan(RolloutAction::RestartPod {
        ordinal: 1,
        why: "follower".to_owned(),
    });
    let with = |step: &Step, rollout: &RolloutPlan| {
        compute(
            &cluster(),
            &StatusInput {
                step: Some(step),
                rollout: Some(rollout),
                initialized: true,
                ..StatusInput::default()
            },
            now(),
        )
    };
    let status = with(&Step::Steady, &restarting);
    assert_eq!(status.phase.as_deref(), Some("RollingRestart"));
    assert_eq!(
        status.operation.as_deref(),
        Some("rolling restart: 1/3 pods updated, restarting demo-1 (follower)")
    );
    assert_eq!(find(&status, "Progressing").reason, "RollingRestart");
    // Waiting for the window: still Running, and the status says what it waits for.
    let opens = now() + time::Duration::hours(5);
    let status = with(&Step::Steady, &plan(RolloutAction::WaitForWindow { opens }));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(find(&status, "Progressing").status, "True");
    assert_eq!(
        find(&status, "Progressing").reason,
        "WaitingForMaintenanceWindow"
    );
    assert!(
        status
            .operation
            .as_deref()
            .is_some_and(|o| o.contains("waiting for the maintenance window"))
    );
    // A membership step wins: the rollout is not what happens this pass.
    let promote = Step::Promote { node_id: 2 };
    let status = with(&promote, &restarting);
    assert_eq!(
        status.operation.as_deref(),
        Some("promote learner 2 to voter")
    );
    assert_eq!(status.phase.as_deref(), Some("Scaling"));
    // Done: no operation.
    let status = with(&Step::Steady, &plan(RolloutAction::UpToDate));
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.operation, None);
}

#[test]
fn paused_keeps_what_was_observed_and_resuming_drops_the_condition() {
    let mut demo = cluster();
    let running = compute(
        &demo,
        &StatusInput {
            step: Some(&Step::Steady),
            initialized: true,
            replicas: 3,
            ready: 3,
            ..StatusInput::default()
        },
        now(),
    );
    demo.status = Some(running.clone());
    demo.metadata.generation = Some(2);
    let paused = paused(&demo, now());
    assert_eq!(paused.phase.as_deref(), Some("Paused"));
    assert_eq!(paused.ready_replicas, 3);
    assert_eq!(paused.observed_generation, running.observed_generation);
    let condition = find(&paused, PAUSED_CONDITION);
    assert_eq!(condition.status, "True");
    assert_eq!(condition.observed_generation, Some(2));
    assert!(condition.message.contains(PAUSE_ANNOTATION));
    // Paused twice: still one condition, the same transition time.
    demo.status = Some(paused.clone());
    let again = super::paused(&demo, now() + time::Duration::hours(1));
    assert_eq!(
        again
            .conditions
            .iter()
            .filter(|c| c.type_ == PAUSED_CONDITION)
            .count(),
        1
    );
    assert_eq!(
        find(&again, PAUSED_CONDITION).last_transition_time,
        condition.last_transition_time
    );
    let resumed = compute(&demo, &StatusInput::default(), now());
    assert!(
        resumed
            .conditions
            .iter()
            .all(|c| c.type_ != PAUSED_CONDITION)
    );
}

#[test]
fn problems_make_the_cluster_degraded_with_reason() {
    let input = StatusInput {
        problem: Some(Problem {
            reason: "CASecretInvalid".to_owned(),
            message: "Secret x: not found".to_owned(),
        }),
        ..StatusInput::default()
    };
    let status = compute(&cluster(), &input, now());
    assert_eq!(status.phase.as_deref(), Some("Degraded"));
    let degraded = find(&status, "Degraded");
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "CASecretInvalid");
    let refused = Step::RefuseScaleDown {
        reason: "quorum".to_owned(),
    };
    let input = StatusInput {
        step: Some(&refused),
        initialized: true,
        ..StatusInput::default()
    };
    let status = compute(&cluster(), &input, now());
    assert_eq!(find(&status, "Degraded").reason, "ScaleDownRefused");
}

#[test]
fn a_failed_member_makes_a_running_cluster_degraded() {
    let failed = Problem {
        reason: "MemberFailed".to_owned(),
        message: "pod demo-1 failed (exited with status 74)".to_owned(),
    };
    let input = StatusInput {
        step: Some(&Step::Steady),
        failed_members: Some(failed.clone()),
        initialized: true,
        ..StatusInput::default()
    };
    let status = compute(&cluster(), &input, now());
    assert_eq!(status.phase.as_deref(), Some("Degraded"));
    let degraded = find(&status, "Degraded");
    assert_eq!(degraded.status, "True");
    assert_eq!(degraded.reason, "MemberFailed");
    assert_eq!(degraded.message, failed.message);
}

#[test]
fn transition_time_is_kept_while_status_is_unchanged() {
    let mut cluster = cluster();
    let input = StatusInput {
        step: Some(&Step::Wait {
            reason: "pod 0".to_owned(),
        }),
        ..StatusInput::default()
    };
    cluster.status = Some(compute(&cluster, &input, now()));
    let later = now() + time::Duration::hours(1);
    let status = compute(&cluster, &input, later);
    assert_eq!(
        find(&status, "Progressing").last_transition_time,
        rfc3339(now())
    );
    assert_eq!(status.phase.as_deref(), Some("Pending"));
}
