//! The second confirmation of a leader's read-index: before a linearizable read is answered,
//! the leader asks every voter, after the read began, for its current vote
//! (`proglog.raft.v1.Raft/ConfirmLeader`), and answers only once a quorum of every voter
//! configuration still holds the leader's own vote.
//!
//! Why a second confirmation: openraft's read-index counts a follower's acknowledgement by the
//! sending time of the request it answered, and its replication stream credits one reply with
//! the sending time of a later request that carried no entries (`drain_acked` in openraft's
//! `InflightAppendQueue`). Replies delayed across a partition could so confirm, after the heal,
//! a read that began when the peers had already elected a newer leader: the fault suite caught
//! an isolated old leader answering `next` below an offset the new leader had acknowledged
//! (docs/RELIABILITY.md, "A stale linearizable read").
//!
//! Why it is sufficient: votes only grow. Each answer here comes from a unary call made after
//! the read began, so a voter that answers "still your vote" had not granted a newer one when
//! the read began. A newer leader needs the votes of a quorum, and every quorum shares a voter
//! with the quorum that answered, so no newer leader existed when the read began; every produce
//! acknowledged before it is in this leader's log, which the read then waits to see applied.
//! A voter that holds a newer vote fails the read at once (this node is deposed); one that does
//! not answer in time counts for nothing.

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use proglog_proto::proglog::raft::v1 as pb;
use tonic::metadata::MetadataValue;

use super::forwarding::no_leader_error;
use super::network::TARGET_NODE_HEADER;
use super::node::RaftNode;
use super::types::{NodeId, TypeConfig};
use crate::backend::BackendError;

/// A Raft vote: the term, the node voted for, and whether that node won.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;

/// What one voter answered.
enum Answer {
    /// It still holds the leader's vote.
    Confirms,
    /// It granted a newer vote: the leader is deposed.
    Deposed(Vote),
    /// An older vote (it has not heard of this leader yet), or no answer in time.
    Unconfirmed(String),
}

impl RaftNode {
    /// Confirms, with calls made now, that a quorum of every voter configuration still holds
    /// this leader's vote (see the module doc). `Err` means the read must not be answered:
    /// not executed, so the client may retry (at the new leader, when one is named).
    pub(super) async fn confirm_leadership(&self) -> Result<(), BackendError> {
        let (vote, configs, addrs) = self
            .raft()
            .with_raft_state(|state| {
                let membership = state.membership_state.effective().membership();
                let addrs: BTreeMap<NodeId, String> = membership
                    .nodes()
                    .map(|(id, node)| (*id, node.addr.clone()))
                    .collect();
                (
                    *state.vote_ref(),
                    membership.get_joint_config().clone(),
                    addrs,
                )
            })
            .await
            .map_err(|e| BackendError::Unavailable(format!("raft stopped on this node: {e}")))?;
        let me = self.node_id();
        if vote.leader_id().node_id != me || !vote.is_committed() {
            return Err(no_leader_error("the read was not executed"));
        }
        let mut confirmed = BTreeSet::from([me]);
        if quorum_in_every(&configs, &confirmed) {
            return Ok(());
        }
        let voters: BTreeSet<NodeId> = configs.iter().flatten().copied().collect();
        let mut calls: FuturesUnordered<_> = voters
            .into_iter()
            .filter(|&id| id != me)
            .map(|id| {
                let addr = addrs.get(&id).cloned().unwrap_or_default();
                let vote = &vote;
                async move { (id, self.ask_vote(id, &addr, vote).await) }
            })
            .collect();
        let mut unconfirmed = Vec::new();
        while let Some((id, answer)) = calls.next().await {
            match answer {
                Answer::Confirms => {
                    confirmed.insert(id);
                    if quorum_in_every(&configs, &confirmed) {
                        return Ok(());
                    }
                }
                Answer::Deposed(newer) => {
                    return Err(BackendError::NotExecuted(format!(
                        "this node is no longer the leader: node {id} holds the newer vote \
                         {newer} (this node's is {vote}); the read was not executed; retry"
                    )));
                }
                Answer::Unconfirmed(why) => unconfirmed.push(format!("node {id}: {why}")),
            }
        }
        Err(BackendError::NotExecuted(format!(
            "could not confirm leadership with a quorum of the voters ({}); the read was not \
             executed; retry shortly",
            unconfirmed.join("; ")
        )))
    }

    /// One voter's current vote, compared with this leader's `vote`.
    async fn ask_vote(&self, id: NodeId, addr: &str, vote: &Vote) -> Answer {
        let mut client = match self.pool().raft_client(addr) {
            Ok(client) => client,
            Err(e) => return Answer::Unconfirmed(format!("address {addr}: {e}")),
        };
        let mut request = tonic::Request::new(pb::ConfirmLeaderRequest {});
        request.set_timeout(self.propose_timeout());
        request
            .metadata_mut()
            .insert(TARGET_NODE_HEADER, MetadataValue::from(id));
        let reply = match client.confirm_leader(request).await {
            Ok(reply) => reply.into_inner(),
            Err(status) => return Answer::Unconfirmed(status.message().to_owned()),
        };
        let theirs: Vote = match serde_json::from_slice(&reply.vote) {
            Ok(theirs) => theirs,
            Err(e) => return Answer::Unconfirmed(format!("unreadable vote: {e}")),
        };
        compare(vote, theirs)
    }
}

/// How a voter's vote `theirs` bears on the leadership of the holder of `ours`.
fn compare(ours: &Vote, theirs: Vote) -> Answer {
    if theirs.leader_id() == ours.leader_id() {
        Answer::Confirms
    } else if theirs > *ours {
        Answer::Deposed(theirs)
    } else {
        Answer::Unconfirmed(format!("it holds the vote {theirs}"))
    }
}

/// Whether `confirmed` holds a majority of every configuration (two during a joint change).
fn quorum_in_every(configs: &[BTreeSet<NodeId>], confirmed: &BTreeSet<NodeId>) -> bool {
    configs
        .iter()
        .all(|voters| voters.intersection(confirmed).count() * 2 > voters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(term: u64, node_id: NodeId, committed: bool) -> Vote {
        if committed {
            Vote::new_committed(term, node_id)
        } else {
            Vote::new(term, node_id)
        }
    }

    #[test]
    fn a_majority_of_every_configuration_is_needed() {
        let old: BTreeSet<NodeId> = [1, 2, 3].into();
        let new: BTreeSet<NodeId> = [3, 4, 5].into();
        assert!(!quorum_in_every(std::slice::from_ref(&old), &[1].into()));
        assert!(quorum_in_every(std::slice::from_ref(&old), &[1, 3].into()));
        // Joint: a majority of the old voters is not enough without one of the new.
        let joint = [old, new];
        assert!(!quorum_in_every(&joint, &[1, 2].into()));
        assert!(!quorum_in_every(&joint, &[1, 3].into()));
        assert!(quorum_in_every(&joint, &[1, 3, 4].into()));
    }

    #[test]
    fn only_the_leaders_own_vote_confirms_and_a_newer_one_deposes() {
        let ours = vote(7, 1, true);
        assert!(matches!(compare(&ours, vote(7, 1, true)), Answer::Confirms));
        // Granted but not yet told the leader won: still no newer vote.
        assert!(matches!(
            compare(&ours, vote(7, 1, false)),
            Answer::Confirms
        ));
        assert!(matches!(
            compare(&ours, vote(8, 2, true)),
            Answer::Deposed(_)
        ));
        assert!(matches!(
            compare(&ours, vote(8, 3, false)),
            Answer::Deposed(_)
        ));
        // A voter that has not heard of this term yet neither confirms nor deposes.
        assert!(matches!(
            compare(&ours, vote(6, 2, true)),
            Answer::Unconfirmed(_)
        ));
    }
}
