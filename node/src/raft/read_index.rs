//! Linearizable reads on a Raft node: openraft's read-index (leadership confirmed by a quorum),
//! a second confirmation of the leadership with calls made after the read began (openraft's can
//! be fooled by delayed replies; see `leadership.rs`), then a wait until this leader's whole log
//! is applied; answered here when this node leads and forwarded to the leader otherwise. The
//! wait exists for a leader restarted in its own term (see
//! [`RaftNode::linearizable_bounds_local`] and ARCHITECTURE, "Linearizable reads").

use openraft::ReadPolicy;
use openraft::async_runtime::WatchReceiver;
use openraft::error::RaftError;
use openraft::errors::LinearizableReadError;

use super::forwarding::{forward_linearizable_bounds, linearizable_error, no_leader_error};
use super::node::RaftNode;
use super::types::TypeConfig;
use crate::backend::{BackendError, LogBounds};

impl RaftNode {
    /// This node's bounds after a read-index, from any node: run here when this node leads,
    /// forwarded to the leader (which answers its own bounds) otherwise.
    pub async fn linearizable_bounds(&self) -> Result<LogBounds, BackendError> {
        self.ensure_core_running()?;
        if let Some(addr) = self.leader_elsewhere() {
            return forward_linearizable_bounds(self.pool(), &addr, self.propose_timeout()).await;
        }
        match self.openraft_read_index().await {
            Ok(()) => self.bounds_after_read_index().await,
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
        self.openraft_read_index()
            .await
            .map_err(linearizable_error)?;
        self.bounds_after_read_index().await
    }

    /// openraft's read-index: this node leads, as confirmed by a quorum (by openraft's count).
    async fn openraft_read_index(
        &self,
    ) -> Result<(), RaftError<TypeConfig, LinearizableReadError<TypeConfig>>> {
        #[cfg(feature = "failpoints")]
        if super::failpoint::read_index_passes(self.node_id()) {
            return Ok(());
        }
        self.raft()
            .ensure_linearizable(ReadPolicy::ReadIndex)
            .await
            .map(drop)
    }

    /// The rest of a read once openraft's read-index passed: the second confirmation, the wait
    /// for the whole log to be applied, then this node's bounds.
    async fn bounds_after_read_index(&self) -> Result<LogBounds, BackendError> {
        self.confirm_leadership().await?;
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
                    "linearizable read: this leader's log was not applied up to index {last} within {:?} ({e}); retry",
                    self.propose_timeout()
                ))
            })
    }
}
