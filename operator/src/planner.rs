//! The membership planner: a pure function from what the operator observed (pods, each pod's
//! Raft node id, the Raft membership reported by the cluster) and the desired replica count to
//! the next single step. The controller executes one step per reconcile and observes again, so
//! two membership changes never overlap.
//!
//! Node ids are `incarnation * 10000 + ordinal` (docs/ARCHITECTURE.md): the ordinal of a member
//! is its id modulo 10000, and a pod whose id differs from the member at its ordinal came back
//! with an empty volume and must replace that member.

use std::fmt;

/// Node ids encode the StatefulSet ordinal in their last four decimal digits.
pub const ORDINAL_MODULUS: u64 = 10_000;

/// The StatefulSet ordinal a Raft node id belongs to.
pub fn ordinal_of(node_id: u64) -> u32 {
    // The modulus keeps the value below 10000, so it always fits.
    u32::try_from(node_id % ORDINAL_MODULUS).unwrap_or(u32::MAX)
}

/// What a pod's admin API said about the node in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeIdentity {
    /// Raft node id of the node's data directory.
    pub node_id: u64,
    /// Advertised address (pod DNS name and port).
    pub address: String,
    /// Whether the node has any Raft state (was initialized or joined).
    pub has_raft_state: bool,
}

/// One pod of the StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedPod {
    /// StatefulSet ordinal.
    pub ordinal: u32,
    /// Set when the pod's admin API answered `NodeInfo`; `None` when it is not running or
    /// not reachable.
    pub node: Option<NodeIdentity>,
}

/// A Raft member as reported by the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedMember {
    /// Raft node id.
    pub node_id: u64,
    /// Advertised address.
    pub address: String,
    /// Voter (true) or learner (false).
    pub voter: bool,
    /// Entries behind the leader (0 if unknown).
    pub lag: u64,
    /// Index of the last entry the leader knows this member has (0 if unknown).
    pub matched_index: u64,
}

/// The Raft membership as reported by a node of the cluster (preferably the leader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedMembership {
    /// Current leader, if one is known.
    pub leader_id: Option<u64>,
    /// Voters and learners.
    pub members: Vec<ObservedMember>,
    /// False while a membership change is still in flight (not committed).
    pub committed: bool,
}

/// Everything the planner decides from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannerInput {
    /// `spec.replicas`.
    pub desired_replicas: u32,
    /// Current `spec.replicas` of the StatefulSet (0 if it does not exist yet).
    pub statefulset_replicas: u32,
    /// Pods that exist, any order.
    pub pods: Vec<ObservedPod>,
    /// Membership reported by the cluster; `None` when no node with Raft state answered.
    pub membership: Option<ObservedMembership>,
    /// The status records that the cluster was initialized once.
    pub initialized: bool,
    /// A learner at most this many entries behind the leader may be promoted.
    pub max_promotion_lag: u64,
}

/// The next single action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Make pod 0 the single voter of a new cluster (`Admin.Initialize`).
    Initialize {
        /// Node id pod 0 reported.
        node_id: u64,
    },
    /// Add a pod's node as a learner (`Admin.AddLearner`).
    AddLearner {
        /// Pod ordinal.
        ordinal: u32,
        /// Node id the pod reported.
        node_id: u64,
        /// Its advertised address.
        address: String,
    },
    /// Promote a caught-up learner to voter (`Admin.PromoteVoter`).
    Promote {
        /// The learner.
        node_id: u64,
    },
    /// Remove a voter above the desired size (`Admin.RemoveNode`), before shrinking the StatefulSet.
    RemoveVoter {
        /// The voter.
        node_id: u64,
    },
    /// Remove a learner above the desired size (`Admin.RemoveNode`).
    RemoveLearner {
        /// The learner.
        node_id: u64,
    },
    /// Remove the member whose pod came back with a new node id (lost volume); the new id is
    /// added as a learner by a later step (`Admin.RemoveNode` of `old_node_id`).
    ReplaceMember {
        /// Pod ordinal.
        ordinal: u32,
        /// The member's id, whose data is gone.
        old_node_id: u64,
        /// The id the pod now reports.
        new_node_id: u64,
    },
    /// Replace the member of a pod that has been not Ready longer than `spec.replacement.after`
    /// (see `crate::replacement`): remove it from Raft (`Admin.RemoveNode`) when
    /// `remove_node_id` is set, delete its PersistentVolumeClaim when `delete_volume`, then
    /// delete the pod so the StatefulSet re-creates it.
    ReplaceFailedMember {
        /// Pod ordinal.
        ordinal: u32,
        /// The member removed from Raft first (None: it stays a member, or is none).
        remove_node_id: Option<u64>,
        /// Delete the pod's PersistentVolumeClaim.
        delete_volume: bool,
        /// How long the pod has been not Ready, in seconds.
        down_for_secs: u64,
    },
    /// Hand leadership away from a voter that is about to be removed.
    TransferLeadership {
        /// Current leader.
        from: u64,
        /// Healthy voter that stays.
        to: u64,
    },
    /// Set the StatefulSet's replicas.
    ScaleStatefulSet {
        /// New replica count.
        replicas: u32,
    },
    /// Nothing safe to do yet; observe again soon.
    Wait {
        /// What the operator waits for.
        reason: String,
    },
    /// A scale-down that would lose quorum while in flight; refused until more voters are healthy.
    RefuseScaleDown {
        /// Why.
        reason: String,
    },
    /// Raft state is gone in a way the operator must not repair on its own.
    Stuck {
        /// What is wrong and what a human should do.
        reason: String,
    },
    /// Membership, StatefulSet and spec agree.
    Steady,
}

impl Step {
    /// The step's kind, as a metric label: `initialize`, `add_learner`, `promote`,
    /// `remove_voter`, `remove_learner`, `replace_member`, `replace_failed_member`,
    /// `transfer_leadership`, `scale`, `wait`,
    /// `refuse_scale_down`, `stuck` or `steady`.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Initialize { .. } => "initialize",
            Step::AddLearner { .. } => "add_learner",
            Step::Promote { .. } => "promote",
            Step::RemoveVoter { .. } => "remove_voter",
            Step::RemoveLearner { .. } => "remove_learner",
            Step::ReplaceMember { .. } => "replace_member",
            Step::ReplaceFailedMember { .. } => "replace_failed_member",
            Step::TransferLeadership { .. } => "transfer_leadership",
            Step::ScaleStatefulSet { .. } => "scale",
            Step::Wait { .. } => "wait",
            Step::RefuseScaleDown { .. } => "refuse_scale_down",
            Step::Stuck { .. } => "stuck",
            Step::Steady => "steady",
        }
    }

    /// The `action` of this step's event: its kind and the node it acts on. kube's event
    /// Recorder folds events with the same type, reason, action and objects into one series that
    /// keeps the first note, so with one action for every membership change, adding node 5 hid
    /// that node 6 was added next (or that pod 1 came back as a new node).
    pub fn event_action(&self) -> String {
        let node = match self {
            Step::Initialize { node_id }
            | Step::AddLearner { node_id, .. }
            | Step::Promote { node_id }
            | Step::RemoveVoter { node_id }
            | Step::RemoveLearner { node_id } => Some(*node_id),
            Step::ReplaceMember { new_node_id, .. } => Some(*new_node_id),
            Step::ReplaceFailedMember { remove_node_id, .. } => *remove_node_id,
            Step::TransferLeadership { to, .. } => Some(*to),
            _ => None,
        };
        match node {
            Some(id) => format!("{} node {id}", self.kind()),
            None => self.kind().to_owned(),
        }
    }

    /// True for steps that change the Raft membership and nothing else
    /// (`ReplaceFailedMember` also deletes Kubernetes objects, and is executed on its own).
    pub fn changes_membership(&self) -> bool {
        matches!(
            self,
            Step::Initialize { .. }
                | Step::AddLearner { .. }
                | Step::Promote { .. }
                | Step::RemoveVoter { .. }
                | Step::RemoveLearner { .. }
                | Step::ReplaceMember { .. }
        )
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Initialize { node_id } => write!(f, "initialize the cluster on node {node_id}"),
            Step::AddLearner {
                ordinal, node_id, ..
            } => write!(f, "add pod {ordinal} (node {node_id}) as a learner"),
            Step::Promote { node_id } => write!(f, "promote learner {node_id} to voter"),
            Step::RemoveVoter { node_id } => write!(f, "remove voter {node_id}"),
            Step::RemoveLearner { node_id } => write!(f, "remove learner {node_id}"),
            Step::ReplaceMember {
                ordinal,
                old_node_id,
                new_node_id,
            } => write!(
                f,
                "replace member {old_node_id} of pod {ordinal} (volume lost; now node {new_node_id})"
            ),
            Step::ReplaceFailedMember {
                ordinal,
                remove_node_id,
                delete_volume,
                down_for_secs,
            } => {
                let down = crate::replacement::display_duration(std::time::Duration::from_secs(
                    *down_for_secs,
                ));
                write!(f, "replace failed pod {ordinal} (not Ready for {down}): ")?;
                if let Some(id) = remove_node_id {
                    write!(f, "remove node {id} from Raft, ")?;
                }
                if *delete_volume {
                    write!(
                        f,
                        "delete its volume and pod (it rejoins empty as a learner)"
                    )
                } else {
                    write!(f, "delete its pod (it restarts with its volume)")
                }
            }
            Step::TransferLeadership { from, to } => {
                write!(f, "transfer leadership from {from} to {to}")
            }
            Step::ScaleStatefulSet { replicas } => {
                write!(f, "scale the StatefulSet to {replicas}")
            }
            Step::Wait { reason } => write!(f, "wait: {reason}"),
            Step::RefuseScaleDown { reason } => write!(f, "scale-down refused: {reason}"),
            Step::Stuck { reason } => write!(f, "stuck: {reason}"),
            Step::Steady => write!(f, "steady"),
        }
    }
}

fn wait(reason: impl Into<String>) -> Step {
    Step::Wait {
        reason: reason.into(),
    }
}

/// Smallest number of voters that is a majority of `voters`.
fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

/// Decides the next step. See the module documentation for the rules.
pub fn plan(input: &PlannerInput) -> Step {
    let pod_node = |ordinal: u32| {
        input
            .pods
            .iter()
            .find(|pod| pod.ordinal == ordinal)
            .and_then(|pod| pod.node.as_ref())
    };
    let any_raft_state = input
        .pods
        .iter()
        .any(|pod| pod.node.as_ref().is_some_and(|node| node.has_raft_state));
    let initialized = input.initialized || any_raft_state || input.membership.is_some();

    if !initialized {
        if input.statefulset_replicas == 0 {
            return Step::ScaleStatefulSet { replicas: 1 };
        }
        return match pod_node(0) {
            Some(node) => Step::Initialize {
                node_id: node.node_id,
            },
            None => wait("pod 0 to answer the admin API before initializing the cluster"),
        };
    }

    let Some(membership) = input.membership.as_ref() else {
        return plan_without_membership(input, any_raft_state);
    };
    if !membership.committed {
        return wait("the previous membership change to commit");
    }
    let Some(leader) = membership.leader_id else {
        return wait("the cluster to elect a leader");
    };

    // A voter is healthy when its pod answers with the member's own node id.
    let healthy = |member: &ObservedMember| {
        member.node_id == leader
            || pod_node(ordinal_of(member.node_id)).is_some_and(|n| n.node_id == member.node_id)
    };
    let voters: Vec<&ObservedMember> = membership.members.iter().filter(|m| m.voter).collect();
    let desired = input.desired_replicas;

    // 1. Members whose pod came back under a new id (lost volume) are replaced first.
    for member in &membership.members {
        let ordinal = ordinal_of(member.node_id);
        if ordinal >= desired {
            continue; // handled as a scale-down below
        }
        let Some(node) = pod_node(ordinal) else {
            continue;
        };
        if node.node_id == member.node_id {
            continue;
        }
        if member.node_id == leader {
            return wait(format!(
                "leader {leader} is reported by pod {ordinal} as node {}; waiting for a new leader",
                node.node_id
            ));
        }
        if member.voter && voters.len() == 1 {
            return Step::Stuck {
                reason: format!(
                    "the only voter {} lost its data; restore the volume or recreate the cluster",
                    member.node_id
                ),
            };
        }
        return Step::ReplaceMember {
            ordinal,
            old_node_id: member.node_id,
            new_node_id: node.node_id,
        };
    }

    // 2. Scale-down: learners above the desired size, then voters from the highest ordinal.
    let mut above: Vec<&ObservedMember> = membership
        .members
        .iter()
        .filter(|m| ordinal_of(m.node_id) >= desired)
        .collect();
    above.sort_by_key(|m| (m.voter, std::cmp::Reverse(ordinal_of(m.node_id))));
    if let Some(member) = above.first() {
        if !member.voter {
            return Step::RemoveLearner {
                node_id: member.node_id,
            };
        }
        let remaining: Vec<&&ObservedMember> = voters
            .iter()
            .filter(|v| v.node_id != member.node_id)
            .collect();
        if member.node_id == leader {
            let successor = remaining
                .iter()
                .filter(|v| healthy(v) && ordinal_of(v.node_id) < desired)
                .min_by_key(|v| (v.lag, ordinal_of(v.node_id)));
            return match successor {
                Some(to) => Step::TransferLeadership {
                    from: leader,
                    to: to.node_id,
                },
                None => Step::RefuseScaleDown {
                    reason: format!(
                        "leader {leader} must be removed but no healthy voter can take over"
                    ),
                },
            };
        }
        let healthy_remaining = remaining.iter().filter(|v| healthy(v)).count();
        if remaining.is_empty() || healthy_remaining < quorum(remaining.len()) {
            return Step::RefuseScaleDown {
                reason: format!(
                    "removing voter {} would leave {healthy_remaining} healthy of {} voters, \
                     below a quorum of {}; fix the unhealthy pods first",
                    member.node_id,
                    remaining.len(),
                    quorum(remaining.len())
                ),
            };
        }
        return Step::RemoveVoter {
            node_id: member.node_id,
        };
    }

    // 3. Only now that Raft no longer counts on them may the StatefulSet shrink; it grows
    //    before new members can be added.
    if input.statefulset_replicas != desired {
        return Step::ScaleStatefulSet { replicas: desired };
    }

    // 4. Promote caught-up learners, lowest ordinal first.
    let mut learners: Vec<&ObservedMember> =
        membership.members.iter().filter(|m| !m.voter).collect();
    learners.sort_by_key(|m| ordinal_of(m.node_id));
    if let Some(learner) = learners.first() {
        if healthy(learner) && learner.lag <= input.max_promotion_lag {
            return Step::Promote {
                node_id: learner.node_id,
            };
        }
        return wait(format!(
            "learner {} to catch up (lag {})",
            learner.node_id, learner.lag
        ));
    }

    // 5. Add pods that are not members, lowest ordinal first.
    for ordinal in 0..desired {
        let is_member = |node_id: u64| membership.members.iter().any(|m| m.node_id == node_id);
        match pod_node(ordinal) {
            Some(node) if is_member(node.node_id) => continue,
            Some(node) => {
                return Step::AddLearner {
                    ordinal,
                    node_id: node.node_id,
                    address: node.address.clone(),
                };
            }
            None => return wait(format!("pod {ordinal} to answer the admin API")),
        }
    }
    Step::Steady
}

/// Initialized, but no node reported a membership.
fn plan_without_membership(input: &PlannerInput, any_raft_state: bool) -> Step {
    if input.statefulset_replicas == 0 {
        // Someone scaled the StatefulSet to zero: bring the pods (and their volumes) back.
        return Step::ScaleStatefulSet {
            replicas: input.desired_replicas.max(1),
        };
    }
    let expected = input.statefulset_replicas as usize;
    let answering = input.pods.iter().filter(|pod| pod.node.is_some()).count();
    if !any_raft_state && answering >= expected {
        return Step::Stuck {
            reason: "the cluster was initialized but every pod answers without Raft state: all \
                     volumes were lost. Restore them from backup, or delete and recreate the \
                     ProgLogCluster to start an empty log"
                .to_owned(),
        };
    }
    wait("a node with Raft state to report the membership")
}

#[cfg(test)]
#[path = "planner_tests.rs"]
mod tests;
