//! Unit tests of the failed-member replacement decision: when it happens, when it must not
//! (disabled, too early, quorum at risk), the leader case, the volume policy, and the whole
//! replacement followed by the planner's rejoin of the empty pod.

use super::*;
use crate::planner::{NodeIdentity, ORDINAL_MODULUS, ObservedMembership, ObservedPod};

const TEN_MINUTES: Duration = Duration::from_secs(600);

fn id(ordinal: u32) -> u64 {
    7 * ORDINAL_MODULUS + u64::from(ordinal)
}

fn addr(ordinal: u32) -> String {
    format!("demo-{ordinal}.demo-headless.logs.svc.cluster.local:8400")
}

fn answering(ordinal: u32, node_id: u64) -> ObservedPod {
    ObservedPod {
        ordinal,
        node: Some(NodeIdentity {
            node_id,
            address: addr(ordinal),
            has_raft_state: true,
        }),
    }
}

fn member(node_id: u64, voter: bool) -> ObservedMember {
    ObservedMember {
        node_id,
        address: addr(ordinal_of(node_id)),
        voter,
        lag: 0,
        matched_index: 0,
    }
}

/// `n` voters led by `leader`; the pods in `silent` do not answer the admin API.
fn cluster(n: u32, leader: u32, silent: &[u32]) -> PlannerInput {
    PlannerInput {
        desired_replicas: n,
        statefulset_replicas: n,
        pods: (0..n)
            .map(|o| {
                if silent.contains(&o) {
                    ObservedPod {
                        ordinal: o,
                        node: None,
                    }
                } else {
                    answering(o, id(o))
                }
            })
            .collect(),
        membership: Some(ObservedMembership {
            leader_id: Some(id(leader)),
            members: (0..n).map(|o| member(id(o), true)).collect(),
            committed: true,
        }),
        initialized: true,
        max_promotion_lag: 100,
    }
}

fn policy(delete_volume: bool) -> ReplacementPolicy {
    ReplacementPolicy {
        after: TEN_MINUTES,
        delete_volume,
    }
}

fn down(ordinal: u32, secs: u64) -> NotReadyPod {
    NotReadyPod {
        ordinal,
        down_for: Duration::from_secs(secs),
    }
}

#[test]
fn durations_parse_like_the_schema_pattern() {
    assert_eq!(parse_duration("10m"), Some(TEN_MINUTES));
    assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
    assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
    for bad in ["", "10", "m", "10x", "-1m", "1.5h"] {
        assert_eq!(parse_duration(bad), None, "{bad:?}");
    }
    assert_eq!(display_duration(Duration::from_secs(750)), "12m30s");
    assert_eq!(display_duration(Duration::from_secs(3600)), "1h");
    assert_eq!(display_duration(Duration::ZERO), "0s");
}

#[test]
fn a_member_down_longer_than_after_is_replaced_with_its_volume() {
    let input = cluster(3, 0, &[1]);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 601)]);
    assert_eq!(
        step,
        Step::ReplaceFailedMember {
            ordinal: 1,
            remove_node_id: Some(id(1)),
            delete_volume: true,
            down_for_secs: 601,
        }
    );
    assert!(step.to_string().contains("not Ready for 10m1s"), "{step}");
}

#[test]
fn with_the_volume_kept_only_the_pod_is_deleted_and_the_member_stays() {
    let input = cluster(3, 0, &[2]);
    let step = plan_with_replacement(&input, Some(&policy(false)), &[down(2, 3600)]);
    assert_eq!(
        step,
        Step::ReplaceFailedMember {
            ordinal: 2,
            remove_node_id: None,
            delete_volume: false,
            down_for_secs: 3600,
        }
    );
}

#[test]
fn not_before_the_time_and_not_when_disabled() {
    let input = cluster(3, 0, &[1]);
    let waiting = plan(&input);
    assert!(matches!(waiting, Step::Wait { .. }), "{waiting}");
    assert_eq!(
        plan_with_replacement(&input, Some(&policy(true)), &[down(1, 599)]),
        waiting
    );
    assert_eq!(
        plan_with_replacement(&input, None, &[down(1, 86_400)]),
        waiting
    );
}

#[test]
fn never_when_the_other_healthy_voters_are_not_a_quorum() {
    // 3 voters, 2 down: the leader alone is not a quorum of 3.
    let input = cluster(3, 0, &[1, 2]);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 7200), down(2, 7200)]);
    let Step::Wait { reason } = &step else {
        panic!("expected a refusal, got {step}");
    };
    assert!(reason.contains("below a quorum of 2"), "{reason}");

    // 2 voters, one down: removing it needs the other alone to be a quorum of 2.
    let input = cluster(2, 0, &[1]);
    let step = plan_with_replacement(&input, Some(&policy(false)), &[down(1, 7200)]);
    assert!(matches!(step, Step::Wait { .. }), "{step}");

    // A voter that answers but is not Ready does not count as healthy either.
    let input = cluster(3, 0, &[1]);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 7200), down(2, 5)]);
    assert!(matches!(step, Step::Wait { .. }), "{step}");
}

#[test]
fn five_voters_with_two_down_replace_the_longest_down_first() {
    let input = cluster(5, 0, &[3, 4]);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(3, 700), down(4, 900)]);
    assert!(
        matches!(
            step,
            Step::ReplaceFailedMember {
                ordinal: 4,
                remove_node_id: Some(_),
                ..
            }
        ),
        "{step}"
    );
}

#[test]
fn a_not_ready_leader_hands_leadership_away_first() {
    // The leader's pod fails its readiness but the node still leads (it answered as leader).
    let input = cluster(3, 1, &[]);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 900)]);
    assert_eq!(
        step,
        Step::TransferLeadership {
            from: id(1),
            to: id(0),
        }
    );
}

#[test]
fn other_planner_work_and_uncertain_membership_come_first() {
    // A scale-up in progress (StatefulSet smaller than desired) is not overridden.
    let mut input = cluster(3, 0, &[1]);
    input.desired_replicas = 4;
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 7200)]);
    assert_eq!(step, Step::ScaleStatefulSet { replicas: 4 });

    // An uncommitted membership change or no leader: wait, replace nothing.
    let mut input = cluster(3, 0, &[1]);
    input.membership.as_mut().unwrap().committed = false;
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 7200)]);
    assert!(matches!(step, Step::Wait { .. }), "{step}");
    let mut input = cluster(3, 0, &[1]);
    input.membership.as_mut().unwrap().leader_id = None;
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 7200)]);
    assert!(matches!(step, Step::Wait { .. }), "{step}");

    // Pods above the desired size belong to the scale-down.
    let mut input = cluster(3, 0, &[2]);
    input.desired_replicas = 2;
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(2, 7200)]);
    assert!(!matches!(step, Step::ReplaceFailedMember { .. }), "{step}");
}

#[test]
fn a_learner_or_a_pod_that_is_no_member_needs_no_quorum() {
    // A learner that never caught up, with the only other voter down too.
    let mut input = cluster(2, 0, &[1]);
    input.membership.as_mut().unwrap().members[1].voter = false;
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 700)]);
    assert!(
        matches!(
            step,
            Step::ReplaceFailedMember {
                remove_node_id: Some(n),
                ..
            } if n == id(1)
        ),
        "{step}"
    );
    // Already removed from Raft by an earlier pass: only the Kubernetes objects are left.
    let mut input = cluster(3, 0, &[2]);
    input.membership.as_mut().unwrap().members.truncate(2);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(2, 700)]);
    assert!(
        matches!(
            step,
            Step::ReplaceFailedMember {
                ordinal: 2,
                remove_node_id: None,
                delete_volume: true,
                ..
            }
        ),
        "{step}"
    );
}

/// The whole replacement: removal, then the pod comes back empty under a new id and the planner
/// adds it as a learner and promotes it; the cluster ends with three voters again.
#[test]
fn a_replaced_member_rejoins_empty_as_a_learner_and_is_promoted() {
    let mut input = cluster(3, 0, &[1]);
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 601)]);
    let Step::ReplaceFailedMember {
        remove_node_id: Some(removed),
        ..
    } = step
    else {
        panic!("expected a replacement, got {step}");
    };
    let membership = input.membership.as_mut().unwrap();
    membership.members.retain(|m| m.node_id != removed);
    // The StatefulSet re-creates pod 1 with an empty volume: a new incarnation, no Raft state.
    let new_id = id(1) + 5 * ORDINAL_MODULUS;
    input.pods[1] = ObservedPod {
        ordinal: 1,
        node: Some(NodeIdentity {
            node_id: new_id,
            address: addr(1),
            has_raft_state: false,
        }),
    };
    // The new pod is not Ready yet, but only for seconds: no second replacement.
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 3)]);
    assert!(
        matches!(step, Step::AddLearner { ordinal: 1, node_id, .. } if node_id == new_id),
        "{step}"
    );
    let membership = input.membership.as_mut().unwrap();
    membership.members.push(member(new_id, false));
    let step = plan_with_replacement(&input, Some(&policy(true)), &[down(1, 8)]);
    assert_eq!(step, Step::Promote { node_id: new_id });
    input.membership.as_mut().unwrap().members[2].voter = true;
    assert_eq!(
        plan_with_replacement(&input, Some(&policy(true)), &[]),
        Step::Steady
    );
}
