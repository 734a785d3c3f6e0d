//! [`RaftBackend`]: the `log.v1` service's [`LogBackend`] over a Raft node. Produces go through
//! Raft (forwarded to the leader from a follower), reads come from the local committed user log.

use std::sync::Arc;

use futures::future::BoxFuture;
use proglog_proto::log::v1::{Record, Server};
use tokio::sync::watch;

use super::codec::check_proposal_size;
use super::node::RaftNode;
use super::state_machine::decode_record;
use crate::backend::{
    Appended, BackendError, BackendFuture, Consistency, LogBackend, LogBounds, QueuedAppend,
    read_off_worker,
};

/// [`LogBackend`] over a Raft node: produces go through Raft, reads come from the local
/// committed user log.
#[derive(Debug, Clone)]
pub struct RaftBackend {
    node: Arc<RaftNode>,
}

impl RaftBackend {
    /// The backend the gRPC services use when the node runs Raft.
    pub fn new(node: Arc<RaftNode>) -> Self {
        Self { node }
    }
}

impl LogBackend for RaftBackend {
    fn append(&self, records: Vec<Record>) -> BackendFuture<'_, Appended> {
        Box::pin(async move {
            check_proposal(&records)?;
            self.node.propose(records).await
        })
    }

    fn append_in_order(&self, records: Vec<Record>) -> BackendFuture<'_, QueuedAppend> {
        Box::pin(async move {
            check_proposal(&records)?;
            self.node.propose_in_order(records).await
        })
    }

    fn read(&self, offset: u64) -> BackendFuture<'_, Record> {
        let user = Arc::clone(self.node.user_log());
        Box::pin(async move {
            let bytes = read_off_worker(move |wait| user.read_applied(offset, wait)).await?;
            decode_record(&bytes).map_err(|e| BackendError::Storage(e.to_string()))
        })
    }

    fn read_run(&self, from: u64, max_bytes: u64) -> BackendFuture<'_, Vec<Record>> {
        let user = Arc::clone(self.node.user_log());
        Box::pin(async move {
            let run =
                read_off_worker(move |wait| user.read_applied_run(from, max_bytes, wait)).await?;
            run.iter()
                .map(|(_, bytes)| {
                    decode_record(bytes).map_err(|e| BackendError::Storage(e.to_string()))
                })
                .collect()
        })
    }

    fn bounds(&self, consistency: Consistency) -> BackendFuture<'_, LogBounds> {
        Box::pin(async move {
            if consistency == Consistency::Linearizable {
                return self.node.linearizable_bounds().await;
            }
            Ok(self.node.local_bounds())
        })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.node.subscribe_user_log()
    }

    fn servers(&self) -> BackendFuture<'_, Vec<Server>> {
        Box::pin(async move { Ok(self.node.servers_now()) })
    }

    fn liveness(&self) -> Result<(), String> {
        self.node.liveness()
    }

    fn readiness(&self) -> Result<(), String> {
        self.node.readiness()
    }

    fn liveness_lost(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.node.core().failed().await;
        })
    }

    fn shutdown(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move { self.node.shutdown().await })
    }
}

/// Refuses what no proposal may carry: no records, or more than one Raft entry holds. Sizes are
/// checked when records are proposed, never when they are applied.
fn check_proposal(records: &[Record]) -> Result<(), BackendError> {
    if records.is_empty() {
        return Err(BackendError::InvalidArgument("no records to append".into()));
    }
    check_proposal_size(records)?;
    Ok(())
}
