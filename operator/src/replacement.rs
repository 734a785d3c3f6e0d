//! Replacement of a failed member that stays down (`spec.replacement`): a pure decision on top of
//! the membership planner. When a member's pod has been not Ready for longer than
//! `spec.replacement.after`, and the planner has nothing else to do than wait for it, the next
//! step is [`Step::ReplaceFailedMember`]: with `deleteVolume` the member is removed from the Raft
//! voters and its claim and pod are deleted, so the pod comes back empty under a new node id and
//! the planner adds it as a learner and promotes it; without, only the pod is deleted (it comes
//! back with its old volume and identity, still a member). Never when the healthy voters other
//! than the failed one would not be a quorum of the current voters; a failed leader hands
//! leadership away first.

use std::{cmp::Reverse, time::Duration};

use crate::planner::{ObservedMember, PlannerInput, Step, ordinal_of, plan};

/// `spec.replacement`, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplacementPolicy {
    /// A pod not Ready for at least this long is replaced.
    pub after: Duration,
    /// Delete the member's PersistentVolumeClaim (and remove it from Raft) too.
    pub delete_volume: bool,
}

/// A pod of the StatefulSet whose Ready condition is not True.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotReadyPod {
    /// StatefulSet ordinal.
    pub ordinal: u32,
    /// Since when it is not Ready (its Ready condition's lastTransitionTime, or its creation
    /// when it never had one), measured to now.
    pub down_for: Duration,
}

/// Parses a duration such as `90s`, `10m` or `1h30m` (the `spec.replacement.after` syntax).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            number = Some(
                number
                    .unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(digit.into())?,
            );
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        total = total.checked_add(number.take()?.checked_mul(unit)?)?;
    }
    if number.is_some() || text.is_empty() {
        return None; // a number without a unit
    }
    Some(Duration::from_secs(total))
}

/// A duration as people write it: `12m30s`, `1h5m`, `45s`.
pub fn display_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// The planner's step, or the replacement of a failed member when the planner would only wait
/// (or has nothing to do) and `policy` is set.
pub fn plan_with_replacement(
    input: &PlannerInput,
    policy: Option<&ReplacementPolicy>,
    not_ready: &[NotReadyPod],
) -> Step {
    let step = plan(input);
    match policy {
        Some(policy) if matches!(step, Step::Wait { .. } | Step::Steady) => {
            replacement(input, policy, not_ready).unwrap_or(step)
        }
        _ => step,
    }
}

/// Smallest number of voters that is a majority of `voters`.
fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

fn replacement(
    input: &PlannerInput,
    policy: &ReplacementPolicy,
    not_ready: &[NotReadyPod],
) -> Option<Step> {
    let membership = input.membership.as_ref()?;
    if !membership.committed {
        return None;
    }
    let leader = membership.leader_id?;
    // Pods above the desired size are the scale-down's; the longest-down pod goes first.
    let mut due: Vec<&NotReadyPod> = not_ready
        .iter()
        .filter(|pod| pod.down_for >= policy.after)
        .filter(|pod| pod.ordinal < input.desired_replicas.min(input.statefulset_replicas))
        .collect();
    due.sort_by_key(|pod| (Reverse(pod.down_for), pod.ordinal));
    let pod = due.first()?;

    let is_not_ready = |ordinal: u32| not_ready.iter().any(|p| p.ordinal == ordinal);
    let answers_as = |member: &ObservedMember| {
        input
            .pods
            .iter()
            .find(|p| p.ordinal == ordinal_of(member.node_id))
            .and_then(|p| p.node.as_ref())
            .is_some_and(|node| node.node_id == member.node_id)
    };
    // Stricter than the planner's health: a voter counts only if its pod answers with the
    // member's id and is Ready (the leader, which just answered as leader, always counts).
    let healthy = |member: &ObservedMember| {
        member.node_id == leader
            || (answers_as(member) && !is_not_ready(ordinal_of(member.node_id)))
    };
    let member = membership
        .members
        .iter()
        .find(|m| ordinal_of(m.node_id) == pod.ordinal);
    let replace = |remove_node_id: Option<u64>| Step::ReplaceFailedMember {
        ordinal: pod.ordinal,
        remove_node_id,
        delete_volume: policy.delete_volume,
        down_for_secs: pod.down_for.as_secs(),
    };
    let Some(member) = member else {
        // Not a member (removed by an earlier pass whose deletes failed, or a new pod that never
        // joined): nothing in Raft depends on its pod or volume.
        return Some(replace(None));
    };
    if !member.voter {
        return Some(replace(policy.delete_volume.then_some(member.node_id)));
    }
    let voters: Vec<&ObservedMember> = membership.members.iter().filter(|m| m.voter).collect();
    let healthy_others: Vec<&&ObservedMember> = voters
        .iter()
        .filter(|v| v.node_id != member.node_id && healthy(v))
        .collect();
    if healthy_others.len() < quorum(voters.len()) {
        return Some(Step::Wait {
            reason: format!(
                "not replacing pod {} (not Ready for {}): {} other healthy voter(s) of {} are \
                 below a quorum of {}",
                pod.ordinal,
                display_duration(pod.down_for),
                healthy_others.len(),
                voters.len(),
                quorum(voters.len())
            ),
        });
    }
    if member.node_id == leader {
        let to = healthy_others
            .iter()
            .min_by_key(|v| (v.lag, ordinal_of(v.node_id)))?;
        return Some(Step::TransferLeadership {
            from: leader,
            to: to.node_id,
        });
    }
    Some(replace(policy.delete_volume.then_some(member.node_id)))
}

#[cfg(test)]
#[path = "replacement_tests.rs"]
mod tests;
