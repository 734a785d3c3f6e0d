//! Liveness and readiness of a Raft node, from its real state (what `/healthz`, `/readyz` and
//! gRPC health report, see docs/ARCHITECTURE.md "Health and readiness"): the rules
//! ([`readiness`]) and [`RaftNode`]'s health methods.
//!
//! - **Live** unless the Raft core stopped ([`super::fatal`]): then only a restart can help.
//! - **Ready** when the node can serve its log correctly now: live; a member (voter or learner)
//!   of the cluster; a leader is known and in touch (a follower heard from it within
//!   [`HealthTiming::contact_bound`]; a leader of several voters had a quorum acknowledge it
//!   within the same bound); and it applied up to the commit index it last heard, give or take
//!   [`READY_MAX_APPLY_LAG`] entries (so consumers do not read a stale log).
//!
//! A follower's "last heard from the leader" is recorded by the Raft service when AppendEntries
//! or a snapshot arrives ([`LeaderContact::heard`]); openraft's metrics do not carry it, and a
//! follower cut off from its leader may keep the leader's id (Pre-Vote keeps it from electing).

use std::time::{Duration, Instant};

use openraft::{Instant as _, ServerState};
use parking_lot::Mutex;

use super::fatal::CoreState;
use super::node::RaftNode;
use super::types::{Metrics, NodeId};
use crate::backend::BackendError;

/// Most committed entries a node may have left to apply and still be ready.
pub const READY_MAX_APPLY_LAG: u64 = 100;

/// Time bounds of readiness.
#[derive(Debug, Clone, Copy)]
pub struct HealthTiming {
    /// Longest silence from the leader (on a follower) or from a quorum (on a leader) before
    /// the node stops being ready.
    pub contact_bound: Duration,
}

impl HealthTiming {
    /// Three maximal election timeouts: by then a healthy cluster has elected a new leader.
    pub fn from_raft_config(config: &openraft::Config) -> Self {
        Self {
            contact_bound: Duration::from_millis(config.election_timeout_max.saturating_mul(3)),
        }
    }
}

/// When this node last heard from a leader.
#[derive(Debug)]
pub struct LeaderContact {
    heard: Mutex<Option<Instant>>,
    /// When this process started following: silence is counted from here before any contact.
    started: Instant,
}

impl Default for LeaderContact {
    fn default() -> Self {
        Self {
            heard: Mutex::new(None),
            started: Instant::now(),
        }
    }
}

impl LeaderContact {
    /// Records that a leader's AppendEntries or snapshot arrived now.
    pub fn heard(&self) {
        *self.heard.lock() = Some(Instant::now());
    }

    fn age(&self) -> Option<Duration> {
        self.heard.lock().map(|at| at.elapsed())
    }

    /// How long no leader has been heard from (since start when none was yet).
    fn silence(&self) -> Duration {
        self.heard.lock().unwrap_or(self.started).elapsed()
    }
}

/// Readiness of node `id` given its Raft metrics and when it last heard from a leader;
/// `Err(reason)` when not ready. Liveness (the core running) is checked by the caller.
pub fn readiness(
    id: NodeId,
    metrics: &Metrics,
    contact: &LeaderContact,
    timing: HealthTiming,
) -> Result<(), String> {
    let membership = metrics.membership_config.membership();
    if membership.get_node(&id).is_none() {
        return Err(
            "not a member of a Raft cluster (waiting to be initialized or added)".to_owned(),
        );
    }
    let Some(leader) = metrics.current_leader else {
        return Err("no leader known (an election is running or a quorum is lost)".to_owned());
    };
    if leader == id || metrics.state == ServerState::Leader {
        let voters = membership.voter_ids().count();
        if voters > 1 {
            let age = metrics.last_quorum_acked.map(|at| at.elapsed());
            match age {
                Some(age) if age <= timing.contact_bound => {}
                Some(age) => {
                    return Err(format!(
                        "leading without a quorum: last acknowledged by a quorum {age:?} ago"
                    ));
                }
                None => return Err("leading, not yet acknowledged by a quorum".to_owned()),
            }
        }
    } else {
        match contact.age() {
            Some(age) if age <= timing.contact_bound => {}
            Some(age) => {
                return Err(format!("no contact from leader {leader} for {age:?}"));
            }
            None => return Err(format!("no contact from leader {leader} yet")),
        }
    }
    let committed = metrics.cluster_committed.map_or(0, |id| id.index + 1);
    let applied = metrics.last_applied.map_or(0, |id| id.index + 1);
    let lag = committed.saturating_sub(applied);
    if lag > READY_MAX_APPLY_LAG {
        return Err(format!(
            "catching up: {lag} committed entries not applied yet (ready at {READY_MAX_APPLY_LAG})"
        ));
    }
    Ok(())
}

/// Health of a running node (the state lives in [`RaftNode`]; the rules are above).
impl RaftNode {
    /// Whether the Raft core stopped, and why.
    pub fn core(&self) -> &CoreState {
        &self.core
    }

    /// `Err(reason)` once the Raft core stopped: only a restart can help (`/healthz`).
    pub fn liveness(&self) -> Result<(), String> {
        self.core.failure().map_or(Ok(()), |f| Err(f.to_string()))
    }

    /// `Ok` when this node should receive traffic (`/readyz`, gRPC health), by the rules above.
    pub fn readiness(&self) -> Result<(), String> {
        self.liveness()?;
        readiness(
            self.node_id(),
            &self.metrics(),
            &self.leader_contact,
            self.health_timing,
        )
    }

    /// Whether the leader openraft still names (another node) has been silent past the contact
    /// bound. With Pre-Vote a follower cut off from its leader never campaigns, so openraft keeps
    /// the old leader's id; past this bound the node treats the leader as unknown, as a Raft
    /// pre-candidate does, and answers "no leader" instead of forwarding into the silence.
    pub(crate) fn leader_out_of_touch(&self, leader: NodeId) -> bool {
        leader != self.node_id() && self.leader_contact.silence() > self.health_timing.contact_bound
    }

    /// Records that a leader's replication or snapshot reached this node.
    pub(crate) fn heard_from_leader(&self) {
        self.leader_contact.heard();
    }

    /// Refuses work once the core stopped, before openraft would (and log an error per call).
    pub(crate) fn ensure_core_running(&self) -> Result<(), BackendError> {
        match self.core.failure() {
            // Checked before anything is proposed or read: nothing was executed.
            Some(failure) => Err(BackendError::NotExecuted(format!(
                "this node is stopping: {failure}; the request was not executed"
            ))),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use openraft::BasicNode;

    use super::*;
    use crate::raft::types::{LogId, StoredMembership, TypeConfig};

    const ME: NodeId = 1;
    const OTHER: NodeId = 2;
    const TIMING: HealthTiming = HealthTiming {
        contact_bound: Duration::from_secs(3),
    };

    fn log_id(index: u64) -> LogId {
        LogId::new(
            openraft::impls::leader_id_adv::LeaderId {
                term: 1,
                node_id: OTHER,
            },
            index,
        )
    }

    fn member_metrics(voters: &[NodeId], learners: &[NodeId]) -> Metrics {
        let nodes: BTreeMap<NodeId, BasicNode> = voters
            .iter()
            .chain(learners)
            .map(|id| (*id, BasicNode::new(format!("node-{id}"))))
            .collect();
        let config = vec![voters.iter().copied().collect::<BTreeSet<_>>()];
        let membership = openraft::Membership::new(config, nodes).unwrap();
        let mut metrics = Metrics::new_initial(ME);
        metrics.membership_config = Arc::new(StoredMembership::new(Some(log_id(1)), membership));
        metrics
    }

    #[test]
    fn a_node_outside_the_membership_is_not_ready() {
        let metrics = Metrics::new_initial(ME);
        let error = readiness(ME, &metrics, &LeaderContact::default(), TIMING).unwrap_err();
        assert!(error.contains("not a member"), "{error}");
    }

    #[test]
    fn a_follower_is_ready_while_it_hears_from_its_leader_and_applies() {
        let mut metrics = member_metrics(&[ME, OTHER], &[]);
        let contact = LeaderContact::default();
        assert!(
            readiness(ME, &metrics, &contact, TIMING)
                .unwrap_err()
                .contains("no leader")
        );
        metrics.current_leader = Some(OTHER);
        assert!(
            readiness(ME, &metrics, &contact, TIMING)
                .unwrap_err()
                .contains("no contact")
        );
        contact.heard();
        assert_eq!(readiness(ME, &metrics, &contact, TIMING), Ok(()));
        metrics.cluster_committed = Some(log_id(500));
        metrics.last_applied = Some(log_id(10));
        let error = readiness(ME, &metrics, &contact, TIMING).unwrap_err();
        assert!(error.contains("catching up: 490"), "{error}");
        metrics.last_applied = Some(log_id(500 - READY_MAX_APPLY_LAG));
        assert_eq!(readiness(ME, &metrics, &contact, TIMING), Ok(()));
        // Silence from the leader for longer than the bound.
        *contact.heard.lock() = Instant::now().checked_sub(Duration::from_secs(4));
        let error = readiness(ME, &metrics, &contact, TIMING).unwrap_err();
        assert!(error.contains("no contact from leader 2"), "{error}");
    }

    #[test]
    fn a_learner_is_a_member() {
        let mut metrics = member_metrics(&[OTHER], &[ME]);
        metrics.current_leader = Some(OTHER);
        let contact = LeaderContact::default();
        contact.heard();
        assert_eq!(readiness(ME, &metrics, &contact, TIMING), Ok(()));
    }

    #[test]
    fn a_leader_needs_a_quorum_unless_it_is_the_only_voter() {
        let mut alone = member_metrics(&[ME], &[]);
        alone.current_leader = Some(ME);
        alone.state = ServerState::Leader;
        let contact = LeaderContact::default();
        assert_eq!(readiness(ME, &alone, &contact, TIMING), Ok(()));

        let mut leader = member_metrics(&[ME, OTHER], &[]);
        leader.current_leader = Some(ME);
        leader.state = ServerState::Leader;
        assert!(readiness(ME, &leader, &contact, TIMING).is_err());
        let now = <openraft::alias::InstantOf<TypeConfig> as openraft::Instant>::now();
        leader.last_quorum_acked = Some(now.into());
        assert_eq!(readiness(ME, &leader, &contact, TIMING), Ok(()));
        leader.last_quorum_acked = Some((now - Duration::from_secs(4)).into());
        let error = readiness(ME, &leader, &contact, TIMING).unwrap_err();
        assert!(error.contains("without a quorum"), "{error}");
    }
}
