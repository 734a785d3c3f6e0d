//! Linearizable reads on a Raft node: openraft's read-index (leadership confirmed by a quorum)
//! plus a wait until this leader's whole log is applied, answered here when this node leads and
//! forwarded to the leader otherwise. The second half exists for a leader restarted in its own
//! term (see [`RaftNode::linearizable_bounds_local`] and ARCHITECTURE, "Linearizable reads after
//! a restart").

use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::error::RaftError;
use openraft::errors::LinearizableReadError;

use super::forwarding::{forward_linearizable_bounds, linearizable_error, no_leader_error};
use super::node::RaftNode;
use crate::backend::{BackendError, LogBounds};

impl RaftNode {
    /// This node's bounds after a read-index, from any node: run here when this node leads,
    /// forwarded to the leader (which answers its own bounds) otherwise.
    pub async fn linearizable_bounds(&self) -> Result<LogBounds, BackendError> {
        self.ensure_core_running()?;
        if let Some(addr) = self.leader_elsewhere() {
            return forward_linearizable_bounds(self.pool(), &addr, self.propose_timeout()).await;
        }
        match self.raft().ensure_linearizable(ReadPolicy::ReadIndex).await {
            Ok(_) => {
                self.await_leader_log_applied().await?;
                Ok(self.local_bounds())
            }
            // A leader was elected since we looked: ask it.
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward)))
                if forward.leader_node.is_some()
                    && forward.leader_id.is_some_and(|id| {
                        id != self.node_id() && !self.leader_out_of_touch(id)
                    }) =>
            {
                let addr = forward.leader_node.map(|n| n.addr).unwrap_or_default();
                forward_linearizable_bounds(self.pool(), &addr, self.propose_timeout()).await
            }
            // The leader openraft names has been silent past the contact bound.
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(_))) => {
                Err(no_leader_error("the read was not executed"))
            }
            Err(e) => Err(linearizable_error(e)),
        }
    }

    /// This node's bounds after a read-index, only if this node leads (forwarded reads end here).
    pub async fn linearizable_bounds_local(&self) -> Result<LogBounds, BackendError> {
        self.ensure_core_running()?;
        self.raft()
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map_err(linearizable_error)?;
        self.await_leader_log_applied().await?;
        Ok(self.local_bounds())
    }

    /// The second half of a read-index, after `ensure_linearizable` confirmed this node leads:
    /// waits until everything in this leader's log is applied. openraft's read index is
    /// `max(committed, this leader's first entry of its term)`, which is enough for a leader
    /// elected in this process, but a leader restarted without losing leadership (its vote is
    /// persisted) reuses its first entry from before the crash and its committed index as last
    /// persisted (lazily, see `log_store.rs`): appends committed and acknowledged just before
    /// the crash lie above both. Every acknowledged append is in the current leader's log
    /// (leader completeness), so waiting for the whole log covers them; entries appended after
    /// the read began may be included too, which linearizability allows. Bounded by the propose
    /// timeout (the entries may never commit if leadership is lost meanwhile).
    async fn await_leader_log_applied(&self) -> Result<(), BackendError> {
        // Only the index: cloning the whole metrics (membership, replication map) per read is
        // needless work on the read path.
        let last_log_index = self.raft().metrics().borrow_watched().last_log_index;
        let Some(last) = last_log_index else {
            return Ok(());
        };
        self.raft()
            .wait(Some(self.propose_timeout()))
            .applied_index_at_least(Some(last), "linearizable read")
            .await
            .map(drop)
            .map_err(|e| {
                BackendError::Unavailable(format!(
                    "linearizable read: this leader's log was not applied up to index {last}                      within {:?} ({e}); retry",
                    self.propose_timeout()
                ))
            })
    }
}
