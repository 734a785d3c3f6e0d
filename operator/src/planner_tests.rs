//! Unit tests of the membership planner, including the dangerous cases, and a simulation that
//! drives a model cluster through scale-up, volume loss and scale-down one step at a time.

use super::*;

const INCARNATION: u64 = 7;

fn id(ordinal: u32) -> u64 {
    INCARNATION * ORDINAL_MODULUS + u64::from(ordinal)
}

fn addr(ordinal: u32) -> String {
    format!("demo-{ordinal}.demo-headless.logs.svc.cluster.local:8400")
}

fn pod(ordinal: u32, node_id: u64, has_raft_state: bool) -> ObservedPod {
    ObservedPod {
        ordinal,
        node: Some(NodeIdentity {
            node_id,
            address: addr(ordinal),
            has_raft_state,
        }),
    }
}

fn silent_pod(ordinal: u32) -> ObservedPod {
    ObservedPod {
        ordinal,
        node: None,
    }
}

fn voter(node_id: u64) -> ObservedMember {
    ObservedMember {
        node_id,
        address: addr(ordinal_of(node_id)),
        voter: true,
        lag: 0,
        matched_index: 0,
    }
}

fn learner(node_id: u64, lag: u64) -> ObservedMember {
    ObservedMember {
        voter: false,
        lag,
        ..voter(node_id)
    }
}

fn membership(leader: u64, members: Vec<ObservedMember>) -> Option<ObservedMembership> {
    Some(ObservedMembership {
        leader_id: Some(leader),
        members,
        committed: true,
    })
}

fn input(desired: u32, sts: u32, pods: Vec<ObservedPod>) -> PlannerInput {
    PlannerInput {
        desired_replicas: desired,
        statefulset_replicas: sts,
        pods,
        membership: None,
        initialized: false,
        max_promotion_lag: 100,
    }
}

/// A healthy cluster of `n` voters, pods 0..n all answering, leader 0.
fn healthy(n: u32, desired: u32) -> PlannerInput {
    PlannerInput {
        membership: membership(id(0), (0..n).map(|o| voter(id(o))).collect()),
        initialized: true,
        ..input(desired, n, (0..n).map(|o| pod(o, id(o), true)).collect())
    }
}

#[test]
fn new_cluster_starts_one_pod_then_initializes_pod_zero() {
    assert_eq!(
        plan(&input(3, 0, vec![])),
        Step::ScaleStatefulSet { replicas: 1 }
    );
    assert!(matches!(
        plan(&input(3, 1, vec![silent_pod(0)])),
        Step::Wait { .. }
    ));
    assert_eq!(
        plan(&input(3, 1, vec![pod(0, id(0), false)])),
        Step::Initialize { node_id: id(0) }
    );
}

#[test]
fn restarted_pod_zero_with_data_is_never_initialized_again() {
    // The status was lost (or never written) but pod 0 has Raft state.
    let step = plan(&input(3, 1, vec![pod(0, id(0), true)]));
    assert!(!matches!(step, Step::Initialize { .. }), "{step}");
    assert!(matches!(step, Step::Wait { .. }), "{step}");
}

#[test]
fn initialized_cluster_without_any_raft_state_is_stuck_not_reinitialized() {
    let mut state = input(
        3,
        3,
        (0..3).map(|o| pod(o, id(o) + 10_000, false)).collect(),
    );
    state.initialized = true;
    let step = plan(&state);
    assert!(matches!(step, Step::Stuck { .. }), "{step}");
    // While some pods do not answer yet, the operator just waits.
    state.pods[2] = silent_pod(2);
    assert!(matches!(plan(&state), Step::Wait { .. }));
}

#[test]
fn scale_up_grows_the_statefulset_then_adds_one_learner_at_a_time() {
    let mut state = healthy(1, 3);
    assert_eq!(plan(&state), Step::ScaleStatefulSet { replicas: 3 });
    state.statefulset_replicas = 3;
    state.pods.push(pod(1, id(1), false));
    state.pods.push(pod(2, id(2), false));
    assert_eq!(
        plan(&state),
        Step::AddLearner {
            ordinal: 1,
            node_id: id(1),
            address: addr(1)
        }
    );
}

#[test]
fn learner_is_promoted_only_when_caught_up() {
    let mut state = healthy(1, 2);
    state.statefulset_replicas = 2;
    state.pods.push(pod(1, id(1), true));
    state.membership = membership(id(0), vec![voter(id(0)), learner(id(1), 5_000)]);
    assert!(matches!(plan(&state), Step::Wait { .. }));
    state.membership = membership(id(0), vec![voter(id(0)), learner(id(1), 3)]);
    assert_eq!(plan(&state), Step::Promote { node_id: id(1) });
}

#[test]
fn nothing_happens_while_a_membership_change_is_in_flight() {
    let mut state = healthy(3, 1);
    state.membership.as_mut().unwrap().committed = false;
    assert!(matches!(plan(&state), Step::Wait { .. }));
    state.membership.as_mut().unwrap().committed = true;
    state.membership.as_mut().unwrap().leader_id = None;
    assert!(matches!(plan(&state), Step::Wait { .. }));
}

#[test]
fn steady_when_everything_matches() {
    assert_eq!(plan(&healthy(3, 3)), Step::Steady);
    assert_eq!(plan(&healthy(1, 1)), Step::Steady);
}

#[test]
fn scale_down_removes_highest_voter_before_shrinking_statefulset() {
    let state = healthy(5, 3);
    assert_eq!(plan(&state), Step::RemoveVoter { node_id: id(4) });
    // After 4 is gone, 3 goes; the StatefulSet is still 5.
    let mut state = healthy(5, 3);
    state.membership = membership(id(0), (0..4).map(|o| voter(id(o))).collect());
    assert_eq!(plan(&state), Step::RemoveVoter { node_id: id(3) });
    // Only when no member is above the desired size does the StatefulSet shrink.
    state.membership = membership(id(0), (0..3).map(|o| voter(id(o))).collect());
    assert_eq!(plan(&state), Step::ScaleStatefulSet { replicas: 3 });
}

#[test]
fn scale_down_removes_learners_first() {
    let mut state = healthy(3, 2);
    state.membership = membership(
        id(0),
        vec![voter(id(0)), voter(id(1)), voter(id(2)), learner(id(3), 0)],
    );
    state.pods.push(pod(3, id(3), true));
    assert_eq!(plan(&state), Step::RemoveLearner { node_id: id(3) });
}

#[test]
fn scale_down_that_would_lose_quorum_is_refused() {
    // Voters 0,1,2; pod 1 is down. Removing 2 would leave {0,1} with only 0 healthy.
    let mut state = healthy(3, 2);
    state.pods[1] = silent_pod(1);
    let step = plan(&state);
    assert!(matches!(step, Step::RefuseScaleDown { .. }), "{step}");
    assert!(step.to_string().contains("quorum"), "{step}");
}

#[test]
fn removing_the_leader_transfers_leadership_first() {
    let mut state = healthy(3, 2);
    state.membership.as_mut().unwrap().leader_id = Some(id(2));
    assert_eq!(
        plan(&state),
        Step::TransferLeadership {
            from: id(2),
            to: id(0)
        }
    );
}

#[test]
fn lost_volume_pod_replaces_its_member_then_rejoins_as_learner() {
    let new_id = id(2) + 5 * ORDINAL_MODULUS;
    let mut state = healthy(3, 3);
    state.pods[2] = pod(2, new_id, false);
    assert_eq!(
        plan(&state),
        Step::ReplaceMember {
            ordinal: 2,
            old_node_id: id(2),
            new_node_id: new_id
        }
    );
    state.membership = membership(id(0), vec![voter(id(0)), voter(id(1))]);
    assert_eq!(
        plan(&state),
        Step::AddLearner {
            ordinal: 2,
            node_id: new_id,
            address: addr(2)
        }
    );
}

#[test]
fn only_voter_losing_its_volume_is_stuck() {
    let mut state = healthy(1, 1);
    state.pods[0] = pod(0, id(0) + ORDINAL_MODULUS, false);
    // A reporter still shows the old membership (e.g. a stale learner elsewhere).
    state.membership = membership(id(1), vec![voter(id(0)), learner(id(1), 0)]);
    let step = plan(&state);
    assert!(matches!(step, Step::Stuck { .. }), "{step}");
}

#[test]
fn pods_not_answering_are_waited_for_not_added() {
    let mut state = healthy(1, 3);
    state.statefulset_replicas = 3;
    state.pods.push(silent_pod(1));
    state.pods.push(pod(2, id(2), false));
    assert!(matches!(plan(&state), Step::Wait { .. }));
}

#[test]
fn statefulset_scaled_to_zero_by_hand_is_restored() {
    let mut state = input(3, 0, vec![]);
    state.initialized = true;
    assert_eq!(plan(&state), Step::ScaleStatefulSet { replicas: 3 });
}

/// A model of a cluster that applies the planner's steps, checking the invariants after each.
#[derive(Debug)]
struct Model {
    sts: u32,
    /// Node id per pod ordinal (pods 0..sts exist).
    ids: Vec<u64>,
    raft_state: Vec<bool>,
    voters: Vec<u64>,
    learners: Vec<u64>,
    leader: Option<u64>,
    initialized: bool,
    initializations: u32,
}

impl Model {
    fn new() -> Self {
        Self {
            sts: 0,
            ids: (0..10).map(id).collect(),
            raft_state: vec![false; 10],
            voters: vec![],
            learners: vec![],
            leader: None,
            initialized: false,
            initializations: 0,
        }
    }

    fn observe(&self, desired: u32) -> PlannerInput {
        let pods = (0..self.sts)
            .map(|o| pod(o, self.ids[o as usize], self.raft_state[o as usize]))
            .collect();
        let mut members: Vec<ObservedMember> = self.voters.iter().map(|&v| voter(v)).collect();
        members.extend(self.learners.iter().map(|&l| learner(l, 0)));
        PlannerInput {
            desired_replicas: desired,
            statefulset_replicas: self.sts,
            pods,
            membership: self.leader.map(|leader| ObservedMembership {
                leader_id: Some(leader),
                members,
                committed: true,
            }),
            initialized: self.initialized,
            max_promotion_lag: 0,
        }
    }

    fn apply(&mut self, step: &Step) {
        match step {
            Step::Initialize { node_id } => {
                self.initializations += 1;
                self.initialized = true;
                self.raft_state[0] = true;
                self.voters = vec![*node_id];
                self.leader = Some(*node_id);
            }
            Step::AddLearner {
                ordinal, node_id, ..
            } => {
                self.raft_state[*ordinal as usize] = true;
                self.learners.push(*node_id);
            }
            Step::Promote { node_id } => {
                self.learners.retain(|l| l != node_id);
                self.voters.push(*node_id);
            }
            Step::RemoveVoter { node_id } => {
                assert_ne!(Some(*node_id), self.leader, "removed the leader");
                self.voters.retain(|v| v != node_id);
            }
            Step::RemoveLearner { node_id } => self.learners.retain(|l| l != node_id),
            Step::ReplaceMember { old_node_id, .. } => {
                self.voters.retain(|v| v != old_node_id);
                self.learners.retain(|l| l != old_node_id);
            }
            Step::TransferLeadership { to, .. } => self.leader = Some(*to),
            Step::ScaleStatefulSet { replicas } => {
                // Invariant: never shrink below a pod that is still a Raft member.
                for member in self.voters.iter().chain(&self.learners) {
                    assert!(
                        ordinal_of(*member) < *replicas,
                        "StatefulSet shrunk to {replicas} while {member} is a member"
                    );
                }
                self.sts = *replicas;
            }
            other => panic!("unexpected step {other} in {self:?}"),
        }
    }

    /// Runs the planner until it reports Steady; returns the steps taken.
    fn converge(&mut self, desired: u32) -> Vec<Step> {
        let mut steps = Vec::new();
        loop {
            let step = plan(&self.observe(desired));
            if step == Step::Steady {
                return steps;
            }
            self.apply(&step);
            steps.push(step);
            assert!(steps.len() < 100, "no convergence: {steps:?}");
        }
    }
}

#[test]
fn simulation_scale_up_lose_volume_scale_down() {
    let mut model = Model::new();
    let steps = model.converge(3);
    assert_eq!(model.initializations, 1);
    assert_eq!(model.voters, vec![id(0), id(1), id(2)]);
    assert_eq!(steps.iter().filter(|s| s.changes_membership()).count(), 5);

    // Grow to 5.
    model.converge(5);
    assert_eq!(model.voters.len(), 5);

    // Pod 3 loses its volume: new incarnation, no Raft state.
    model.ids[3] = id(3) + 3 * ORDINAL_MODULUS;
    model.raft_state[3] = false;
    let steps = model.converge(5);
    assert!(matches!(steps[0], Step::ReplaceMember { .. }), "{steps:?}");
    assert!(model.voters.contains(&model.ids[3]));
    assert!(!model.voters.contains(&id(3)));

    // Shrink to 1 while the leader is the highest ordinal.
    model.leader = Some(id(4));
    model.converge(1);
    assert_eq!(model.voters, vec![model.leader.unwrap()]);
    assert_eq!(model.sts, 1);
    assert_eq!(model.initializations, 1, "never initialized twice");
}
