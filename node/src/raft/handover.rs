//! Leaving the cluster on SIGTERM (issue 16): before the server stops, a node that is leaving
//! stops campaigning and, if it leads, hands its leadership to the most caught-up voter.
//!
//! Why here and not in `RaftNode::shutdown`: the hand-over needs the Raft RPC port still open
//! (the new leader's vote request and the leader's last appends go over it), so it runs while
//! the server still serves, and only then does the server stop accepting calls.
//!
//! Elections are disabled first so that a leaving follower that stops hearing from the leader
//! (its replication stream ends when its server stops) never times out, campaigns and raises the
//! term; the leader of a hand-over is the target's campaign, which raises the term by one.

use std::time::Duration;

use openraft::ServerState;

use super::node::RaftNode;
use super::types::NodeId;

/// Longest a leaving leader waits for another node to take over. Past it the node leaves
/// anyway; the others then elect a leader after their election timeout, as after a crash.
pub const HANDOVER_BOUND: Duration = Duration::from_millis(1500);

/// How a hand-over ended (logged, and returned for tests and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// This node was not the leader: nothing to hand over.
    NotLeader,
    /// No other voter to hand over to (a single-voter cluster).
    NoCandidate,
    /// `to` became the leader.
    Done {
        /// The new leader.
        to: NodeId,
    },
    /// The hand-over to `to` did not complete within [`HANDOVER_BOUND`] or failed.
    Failed {
        /// The voter leadership was offered to.
        to: NodeId,
        /// Why it did not take over in time.
        reason: String,
    },
}

impl RaftNode {
    /// Prepares this node to leave: no more elections, leadership handed over (bounded).
    pub async fn leave(&self) -> Handover {
        let raft = self.raft();
        // A leaving node must never campaign (see the module docs).
        raft.runtime_config().elect(false);
        let metrics = self.metrics();
        if metrics.state != ServerState::Leader {
            return Handover::NotLeader;
        }
        let me = self.node_id();
        let Some(to) = most_caught_up_voter(&metrics, me) else {
            return Handover::NoCandidate;
        };
        tracing::info!(to, "leaving: handing leadership over");
        if let Err(error) = raft.trigger().transfer_leader(to).await {
            return Handover::Failed {
                to,
                reason: error.to_string(),
            };
        }
        let waited = raft
            .wait(Some(HANDOVER_BOUND))
            .metrics(
                |m| m.current_leader.is_some() && m.current_leader != Some(me),
                "another node leads",
            )
            .await;
        match waited {
            Ok(m) => {
                let to = m.current_leader.unwrap_or(to);
                tracing::info!(to, term = m.current_term, "leadership handed over");
                Handover::Done { to }
            }
            Err(error) => {
                tracing::warn!(to, %error, "leadership hand-over did not complete; leaving anyway");
                Handover::Failed {
                    to,
                    reason: error.to_string(),
                }
            }
        }
    }
}

/// The voter other than `me` whose replicated log reaches furthest (ties: the lowest id).
fn most_caught_up_voter(metrics: &super::types::Metrics, me: NodeId) -> Option<NodeId> {
    let replication = metrics.replication.as_ref();
    metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|id| *id != me)
        .max_by_key(|id| {
            let matched = replication
                .and_then(|r| r.get(id))
                .and_then(|m| m.as_ref())
                .map(|log_id| log_id.index);
            (matched, std::cmp::Reverse(*id))
        })
}
