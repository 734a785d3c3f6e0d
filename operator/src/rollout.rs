//! The rolling-restart planner: a pure function from the StatefulSet's update revision, its pods,
//! the observed Raft membership and the maintenance window to the next single step of a rolling
//! restart. The StatefulSet is `OnDelete`, so a pod moves to a new pod template (configuration,
//! image, certificate) only when the operator deletes it; the controller executes one step per
//! reconcile and observes again.
//!
//! Rules, in order:
//! 1. nothing to do when every pod runs the update revision;
//! 2. one pod at a time: a pod that is terminating or missing means wait;
//! 3. outside the maintenance window, wait for it;
//! 4. only when every member is healthy — its pod Ready, answering with the node id of a voter,
//!    and within `max_lag` entries of the leader (from the leader's own report) — may a pod go
//!    down, so a restart never costs the quorum. The one exception: a single outdated pod that is
//!    not Ready (crash-looping on a bad revision) while every other voter is healthy is restarted
//!    first, since it is down already and the newer revision may be the fix;
//! 5. followers on an old revision first, highest ordinal first;
//! 6. the leader last, after leadership was transferred to an up-to-date, caught-up follower (a
//!    single-voter cluster restarts its only pod: there is no one to hand over to).

use crate::{
    maintenance::WindowState,
    planner::{ObservedMember, ObservedMembership, ordinal_of},
};

/// One pod of the StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutPod {
    /// StatefulSet ordinal.
    pub ordinal: u32,
    /// Its `controller-revision-hash` label: the pod template revision it was created from.
    pub revision: Option<String>,
    /// The pod is Ready.
    pub ready: bool,
    /// The pod has a deletion timestamp.
    pub terminating: bool,
    /// The Raft node id its admin API reported (`None`: it did not answer).
    pub node_id: Option<u64>,
}

/// Everything the rollout planner decides from.
#[derive(Clone, Debug)]
pub struct RolloutInput<'a> {
    /// The ProgLogCluster's name (pods are `NAME-ORDINAL`).
    pub cluster: &'a str,
    /// StatefulSet replicas (equal to the spec: the membership planner is steady).
    pub replicas: u32,
    /// The StatefulSet's `status.updateRevision`.
    pub update_revision: Option<&'a str>,
    /// The StatefulSet controller observed the latest StatefulSet generation, so
    /// `update_revision` is the revision of the current pod template.
    pub revision_observed: bool,
    /// The pods that exist.
    pub pods: &'a [RolloutPod],
    /// The Raft membership.
    pub membership: Option<&'a ObservedMembership>,
    /// The membership was reported by the leader (only the leader knows every member's lag).
    pub reported_by_leader: bool,
    /// A member more entries than this behind the leader is not caught up.
    pub max_lag: u64,
    /// The maintenance window now.
    pub window: WindowState,
}

/// What to do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RolloutAction {
    /// Every pod runs the update revision.
    UpToDate,
    /// A restart is due but not safe yet.
    Wait {
        /// What the roll waits for.
        reason: String,
    },
    /// A restart is due; the maintenance window is closed.
    WaitForWindow {
        /// When the next window opens.
        opens: time::OffsetDateTime,
    },
    /// Hand leadership to an up-to-date follower before restarting the leader's pod.
    TransferLeadership {
        /// Current leader.
        from: u64,
        /// The follower taking over.
        to: u64,
        /// The leader's pod ordinal.
        ordinal: u32,
    },
    /// Delete (evict) this pod; the StatefulSet controller re-creates it on the update revision.
    RestartPod {
        /// Pod ordinal.
        ordinal: u32,
        /// Why this pod now.
        why: String,
    },
}

/// The planner's answer with the roll's progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutPlan {
    /// Next action.
    pub action: RolloutAction,
    /// Pods on the update revision.
    pub updated: usize,
    /// Pods the roll covers (the StatefulSet's replicas).
    pub total: usize,
}

impl RolloutPlan {
    /// True while pods still run an old revision.
    pub fn in_progress(&self) -> bool {
        self.action != RolloutAction::UpToDate
    }

    /// A sentence for status.operation and events, naming pods as `cluster-ordinal`.
    pub fn describe(&self, cluster: &str) -> String {
        let progress = format!(
            "rolling restart: {}/{} pods updated",
            self.updated, self.total
        );
        match &self.action {
            RolloutAction::UpToDate => format!("all {} pods run the current revision", self.total),
            RolloutAction::Wait { reason } => format!("{progress}, waiting for {reason}"),
            RolloutAction::WaitForWindow { opens } => format!(
                "{progress}, waiting for the maintenance window (next opens {})",
                opens
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
            RolloutAction::TransferLeadership { from, to, ordinal } => format!(
                "{progress}, transferring leadership from {from} to {to} before restarting \
                 {cluster}-{ordinal}"
            ),
            RolloutAction::RestartPod { ordinal, why } => {
                format!("{progress}, restarting {cluster}-{ordinal} ({why})")
            }
        }
    }
}

/// Why a member is not healthy enough for another pod to go down, if it is not.
fn unhealthy(
    input: &RolloutInput<'_>,
    pod: &RolloutPod,
    membership: &ObservedMembership,
) -> Option<String> {
    let name = format!("{}-{}", input.cluster, pod.ordinal);
    if !pod.ready {
        return Some(format!("pod {name} to be Ready"));
    }
    let Some(node_id) = pod.node_id else {
        return Some(format!("pod {name} to answer the admin API"));
    };
    let member = membership.members.iter().find(|m| m.node_id == node_id);
    match member {
        Some(ObservedMember { voter: true, .. }) => {}
        _ => return Some(format!("pod {name} (node {node_id}) to be a voter")),
    }
    let lag = member.map_or(u64::MAX, |m| m.lag);
    if membership.leader_id != Some(node_id) && lag > input.max_lag {
        return Some(format!(
            "pod {name} (node {node_id}) to catch up: {lag} entries behind the leader, at most {} \
             allowed",
            input.max_lag
        ));
    }
    None
}

/// Decides the next step of the rolling restart. See the module documentation for the rules.
pub fn plan_rollout(input: &RolloutInput<'_>) -> RolloutPlan {
    let total = input.replicas as usize;
    let pods: Vec<&RolloutPod> = input
        .pods
        .iter()
        .filter(|pod| pod.ordinal < input.replicas)
        .collect();
    let plan = |updated: usize, action| RolloutPlan {
        action,
        updated,
        total,
    };
    let wait = |updated: usize, reason: String| plan(updated, RolloutAction::Wait { reason });
    let Some(revision) = input.update_revision else {
        // The StatefulSet controller has not reported any revision: no pod to compare.
        return plan(0, RolloutAction::UpToDate);
    };
    let is_updated = |pod: &RolloutPod| pod.revision.as_deref() == Some(revision);
    let updated = pods.iter().filter(|pod| is_updated(pod)).count();
    if !input.revision_observed {
        return wait(
            updated,
            "the StatefulSet controller to observe the new pod template".to_owned(),
        );
    }
    let mut outdated: Vec<&RolloutPod> = pods
        .iter()
        .copied()
        .filter(|pod| !is_updated(pod))
        .collect();
    if outdated.is_empty() {
        return plan(updated, RolloutAction::UpToDate);
    }
    outdated.sort_by_key(|pod| std::cmp::Reverse(pod.ordinal));

    // 2. One pod at a time.
    if let Some(pod) = pods.iter().find(|pod| pod.terminating) {
        return wait(
            updated,
            format!(
                "pod {}-{} to terminate and return",
                input.cluster, pod.ordinal
            ),
        );
    }
    if let Some(missing) = (0..input.replicas).find(|o| pods.iter().all(|p| p.ordinal != *o)) {
        return wait(
            updated,
            format!("pod {}-{missing} to be created", input.cluster),
        );
    }

    // 3. The maintenance window.
    if let WindowState::Closed { opens } = input.window {
        return plan(updated, RolloutAction::WaitForWindow { opens });
    }

    // 4. Every member healthy, from the leader's own view.
    let Some(membership) = input.membership else {
        return wait(updated, "a node to report the Raft membership".to_owned());
    };
    if !membership.committed {
        return wait(updated, "the membership change to commit".to_owned());
    }
    let Some(leader) = membership.leader_id else {
        return wait(updated, "the cluster to elect a leader".to_owned());
    };
    if !input.reported_by_leader {
        return wait(
            updated,
            format!("leader {leader} to report every member's replication progress"),
        );
    }
    let problems: Vec<(&RolloutPod, String)> = pods
        .iter()
        .filter_map(|pod| Some((*pod, unhealthy(input, pod, membership)?)))
        .collect();
    let voters = membership.members.iter().filter(|m| m.voter).count();
    let without_pod = membership
        .members
        .iter()
        .filter(|m| m.voter && pods.iter().all(|p| p.node_id != Some(m.node_id)))
        .count();
    match problems.as_slice() {
        [] => {}
        [(pod, _)]
            if !pod.ready
                && !is_updated(pod)
                && pod.node_id != Some(leader)
                && without_pod <= 1
                && voters >= 3 =>
        {
            // Down already: restarting it costs nothing, and the new revision may fix it.
            return plan(
                updated,
                RolloutAction::RestartPod {
                    ordinal: pod.ordinal,
                    why: "not Ready on an old revision".to_owned(),
                },
            );
        }
        [(_, reason), ..] => return wait(updated, reason.clone()),
    }
    if without_pod > 0 {
        return wait(updated, "every voter to answer from its pod".to_owned());
    }

    // 5. Followers, highest ordinal first.
    if let Some(follower) = outdated.iter().find(|pod| pod.node_id != Some(leader)) {
        return plan(
            updated,
            RolloutAction::RestartPod {
                ordinal: follower.ordinal,
                why: "follower".to_owned(),
            },
        );
    }

    // 6. Only the leader is left.
    let leader_ordinal = ordinal_of(leader);
    if voters <= 1 {
        return plan(
            updated,
            RolloutAction::RestartPod {
                ordinal: leader_ordinal,
                why: "the only voter".to_owned(),
            },
        );
    }
    let successor = pods
        .iter()
        .filter(|pod| is_updated(pod) && pod.node_id.is_some_and(|id| id != leader))
        .filter_map(|pod| {
            let id = pod.node_id?;
            membership.members.iter().find(|m| m.node_id == id)
        })
        .min_by_key(|m| (m.lag, ordinal_of(m.node_id)));
    match successor {
        Some(to) => plan(
            updated,
            RolloutAction::TransferLeadership {
                from: leader,
                to: to.node_id,
                ordinal: leader_ordinal,
            },
        ),
        None => wait(
            updated,
            "an up-to-date follower that can take over leadership".to_owned(),
        ),
    }
}

#[cfg(test)]
#[path = "rollout_tests.rs"]
mod tests;
