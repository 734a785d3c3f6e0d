//! Unit tests of the rolling-restart planner: one test per rule of the module documentation, and
//! a whole 3-pod roll driven step by step.

use time::{Date, Month, OffsetDateTime};

use super::*;
use crate::planner::ObservedMember;

const OLD: &str = "demo-5d8f";
const NEW: &str = "demo-7c2a";

fn id(ordinal: u32) -> u64 {
    10_000 + u64::from(ordinal)
}

fn pod(ordinal: u32, revision: &str) -> RolloutPod {
    RolloutPod {
        ordinal,
        revision: Some(revision.to_owned()),
        ready: true,
        terminating: false,
        node_id: Some(id(ordinal)),
    }
}

fn membership(leader: u32, voters: &[u32]) -> ObservedMembership {
    ObservedMembership {
        leader_id: Some(id(leader)),
        members: voters
            .iter()
            .map(|o| ObservedMember {
                node_id: id(*o),
                address: format!("demo-{o}:8400"),
                voter: true,
                lag: 0,
                matched_index: 500,
            })
            .collect(),
        committed: true,
    }
}

fn input<'a>(pods: &'a [RolloutPod], membership: &'a ObservedMembership) -> RolloutInput<'a> {
    RolloutInput {
        cluster: "demo",
        replicas: u32::try_from(pods.len()).unwrap(),
        update_revision: Some(NEW),
        revision_observed: true,
        pods,
        membership: Some(membership),
        reported_by_leader: true,
        max_lag: 1_000,
        window: WindowState::Always,
    }
}

fn restart(ordinal: u32) -> impl Fn(&RolloutAction) -> bool {
    move |action| matches!(action, RolloutAction::RestartPod { ordinal: o, .. } if *o == ordinal)
}

fn waits_for(plan: &RolloutPlan, words: &str) -> bool {
    matches!(&plan.action, RolloutAction::Wait { reason } if reason.contains(words))
}

#[test]
fn nothing_to_do_when_every_pod_runs_the_update_revision() {
    let pods = [pod(0, NEW), pod(1, NEW), pod(2, NEW)];
    let m = membership(0, &[0, 1, 2]);
    let plan = plan_rollout(&input(&pods, &m));
    assert_eq!(plan.action, RolloutAction::UpToDate);
    assert_eq!((plan.updated, plan.total), (3, 3));
    assert!(!plan.in_progress());
    // No revision reported yet (a StatefulSet the controller has not seen): nothing to compare.
    let mut no_revision = input(&pods, &m);
    no_revision.update_revision = None;
    assert_eq!(plan_rollout(&no_revision).action, RolloutAction::UpToDate);
}

#[test]
fn a_stale_update_revision_waits_for_the_statefulset_controller() {
    let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    let m = membership(0, &[0, 1, 2]);
    let mut stale = input(&pods, &m);
    stale.revision_observed = false;
    let plan = plan_rollout(&stale);
    assert!(waits_for(&plan, "StatefulSet controller"), "{plan:?}");
}

/// The whole roll of a 3-pod cluster whose leader is pod 0: pods 2 and 1, a transfer, pod 0.
#[test]
fn followers_roll_in_descending_ordinal_and_the_leader_last_after_a_transfer() {
    let m = membership(0, &[0, 1, 2]);
    let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    let plan = plan_rollout(&input(&pods, &m));
    assert!(restart(2)(&plan.action), "{plan:?}");
    assert_eq!(
        plan.describe("demo"),
        "rolling restart: 0/3 pods updated, restarting demo-2 (follower)"
    );

    let pods = [pod(0, OLD), pod(1, OLD), pod(2, NEW)];
    let plan = plan_rollout(&input(&pods, &m));
    assert!(restart(1)(&plan.action), "{plan:?}");
    assert_eq!(plan.updated, 1);

    // Only the leader is left: hand over to the caught-up follower with the least lag.
    let mut lagging = membership(0, &[0, 1, 2]);
    lagging.members[1].lag = 40;
    let pods = [pod(0, OLD), pod(1, NEW), pod(2, NEW)];
    let plan = plan_rollout(&input(&pods, &lagging));
    assert_eq!(
        plan.action,
        RolloutAction::TransferLeadership {
            from: id(0),
            to: id(2),
            ordinal: 0
        }
    );
    assert!(
        plan.describe("demo")
            .contains("transferring leadership from 10000 to 10002 before restarting demo-0")
    );

    // After the transfer the old leader is a follower like any other.
    let after = membership(2, &[0, 1, 2]);
    let plan = plan_rollout(&input(&pods, &after));
    assert!(restart(0)(&plan.action), "{plan:?}");
    assert_eq!(plan.updated, 2);
}

#[test]
fn the_leader_is_skipped_whatever_its_ordinal() {
    let m = membership(2, &[0, 1, 2]);
    let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    assert!(restart(1)(&plan_rollout(&input(&pods, &m)).action));
    let pods = [pod(0, OLD), pod(1, NEW), pod(2, OLD)];
    assert!(restart(0)(&plan_rollout(&input(&pods, &m)).action));
    let pods = [pod(0, NEW), pod(1, NEW), pod(2, OLD)];
    assert!(matches!(
        plan_rollout(&input(&pods, &m)).action,
        RolloutAction::TransferLeadership { from, to, ordinal: 2 } if from == id(2) && to == id(0)
    ));
}

#[test]
fn a_terminating_or_missing_pod_means_one_is_already_down() {
    let m = membership(0, &[0, 1, 2]);
    let mut pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    pods[2].terminating = true;
    let plan = plan_rollout(&input(&pods, &m));
    assert!(waits_for(&plan, "demo-2 to terminate"), "{plan:?}");

    let pods = [pod(0, OLD), pod(1, OLD)];
    let mut missing = input(&pods, &m);
    missing.replicas = 3;
    let plan = plan_rollout(&missing);
    assert!(waits_for(&plan, "demo-2 to be created"), "{plan:?}");
}

#[test]
fn a_lagging_follower_blocks_every_restart() {
    let mut m = membership(0, &[0, 1, 2]);
    m.members[1].lag = 1_001;
    let pods = [pod(0, OLD), pod(1, NEW), pod(2, OLD)];
    let plan = plan_rollout(&input(&pods, &m));
    assert!(
        waits_for(
            &plan,
            "demo-1 (node 10001) to catch up: 1001 entries behind"
        ),
        "{plan:?}"
    );
    // At the bound it is caught up.
    m.members[1].lag = 1_000;
    assert!(restart(2)(&plan_rollout(&input(&pods, &m)).action));
}

#[test]
fn a_down_member_blocks_every_restart() {
    let m = membership(0, &[0, 1, 2]);
    // Pod 1 was just restarted onto the new revision and is not Ready yet.
    let mut pods = [pod(0, OLD), pod(1, NEW), pod(2, OLD)];
    pods[1].ready = false;
    pods[1].node_id = None;
    let plan = plan_rollout(&input(&pods, &m));
    assert!(waits_for(&plan, "pod demo-1 to be Ready"), "{plan:?}");
    // Ready but its admin API does not answer yet.
    pods[1].ready = true;
    let plan = plan_rollout(&input(&pods, &m));
    assert!(waits_for(&plan, "demo-1 to answer"), "{plan:?}");
}

#[test]
fn a_member_that_is_not_a_voter_again_blocks() {
    let mut m = membership(0, &[0, 1, 2]);
    m.members[1].voter = false;
    let pods = [pod(0, OLD), pod(1, NEW), pod(2, OLD)];
    let plan = plan_rollout(&input(&pods, &m));
    assert!(
        waits_for(&plan, "demo-1 (node 10001) to be a voter"),
        "{plan:?}"
    );
}

#[test]
fn progress_from_a_follower_is_not_trusted() {
    let m = membership(0, &[0, 1, 2]);
    let pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    let mut from_follower = input(&pods, &m);
    from_follower.reported_by_leader = false;
    let plan = plan_rollout(&from_follower);
    assert!(waits_for(&plan, "replication progress"), "{plan:?}");
    let mut uncommitted = m.clone();
    uncommitted.committed = false;
    assert!(waits_for(
        &plan_rollout(&input(&pods, &uncommitted)),
        "commit"
    ));
    let mut leaderless = m.clone();
    leaderless.leader_id = None;
    assert!(waits_for(
        &plan_rollout(&input(&pods, &leaderless)),
        "elect a leader"
    ));
}

#[test]
fn a_single_outdated_pod_that_is_down_is_restarted_first() {
    let m = membership(0, &[0, 1, 2]);
    // Pod 1 crash-loops on the old (bad) revision; the fix is the new revision.
    let mut pods = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    pods[1].ready = false;
    pods[1].node_id = None;
    let plan = plan_rollout(&input(&pods, &m));
    assert!(restart(1)(&plan.action), "{plan:?}");
    // Not when a second member is also unhealthy, nor when the down pod is the leader's.
    let mut two_down = pods.clone();
    two_down[2].ready = false;
    assert!(matches!(
        plan_rollout(&input(&two_down, &m)).action,
        RolloutAction::Wait { .. }
    ));
    let mut leader_down = [pod(0, OLD), pod(1, OLD), pod(2, OLD)];
    leader_down[0].ready = false;
    assert!(matches!(
        plan_rollout(&input(&leader_down, &m)).action,
        RolloutAction::Wait { .. }
    ));
    // Nor in a 2-voter cluster, where the other voter alone is no quorum.
    let two = membership(0, &[0, 1]);
    let pods = [pod(0, OLD), pods[1].clone()];
    assert!(matches!(
        plan_rollout(&input(&pods, &two)).action,
        RolloutAction::Wait { .. }
    ));
}

#[test]
fn outside_the_maintenance_window_the_roll_waits() {
    let opens = Date::from_calendar_date(2026, Month::December, 5)
        .unwrap()
        .with_hms(2, 0, 0)
        .unwrap()
        .assume_utc();
    let m = membership(0, &[0, 1, 2]);
    let pods = [pod(0, OLD), pod(1, OLD), pod(2, NEW)];
    let mut closed = input(&pods, &m);
    closed.window = WindowState::Closed { opens };
    let plan = plan_rollout(&closed);
    assert_eq!(plan.action, RolloutAction::WaitForWindow { opens });
    assert_eq!(
        plan.describe("demo"),
        "rolling restart: 1/3 pods updated, waiting for the maintenance window (next opens \
         2026-12-05T02:00:00Z)"
    );
    // Inside a window it proceeds; with nothing to roll the window does not matter.
    closed.window = WindowState::Open {
        closes: opens + time::Duration::hours(2),
    };
    assert!(restart(1)(&plan_rollout(&closed).action));
    let done = [pod(0, NEW), pod(1, NEW), pod(2, NEW)];
    let mut idle = input(&done, &m);
    idle.window = WindowState::Closed {
        opens: OffsetDateTime::UNIX_EPOCH,
    };
    assert_eq!(plan_rollout(&idle).action, RolloutAction::UpToDate);
}

#[test]
fn a_single_voter_restarts_its_only_pod() {
    let m = membership(0, &[0]);
    let pods = [pod(0, OLD)];
    let plan = plan_rollout(&input(&pods, &m));
    assert!(restart(0)(&plan.action), "{plan:?}");
}

#[test]
fn pods_above_the_replica_count_are_not_rolled() {
    // A scale-down in progress leaves pod 3 around; the roll covers pods 0-2 only.
    let m = membership(0, &[0, 1, 2]);
    let pods = [pod(0, NEW), pod(1, NEW), pod(2, NEW), pod(3, OLD)];
    let mut scaled = input(&pods, &m);
    scaled.replicas = 3;
    let plan = plan_rollout(&scaled);
    assert_eq!(plan.action, RolloutAction::UpToDate);
    assert_eq!((plan.updated, plan.total), (3, 3));
}
