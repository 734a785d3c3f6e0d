//! [`Proposer`]: the leader's [`Batcher`] — concurrent produces become one Raft entry, so
//! openraft's per-entry cost is paid per batch (see [`super::batcher`] for the policy).

use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use proglog_proto::log::v1::Record;

use super::batcher::{Batcher, Submit};
use super::types::{ProduceApplied, ProduceBatch, Raft, TypeConfig};
use crate::metrics::Metrics;

/// Entries being committed at once. Two keep the disk busy (one fsyncs while the next fills)
/// without splitting the queue into many small entries.
const MAX_IN_FLIGHT: usize = 2;

/// Why a proposal failed: openraft's answer for the entry that carried it.
pub type ProposeError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

/// Merges concurrent produces on the leader into shared Raft entries.
pub type Proposer = Batcher<RaftEntries>;

/// Starts the leader's proposer for `raft`; records per entry go to `metrics`
/// (`proglog_log_commit_batch_records`).
pub fn start_proposer(raft: Raft, metrics: Arc<Metrics>) -> Proposer {
    Batcher::start(RaftEntries { raft, metrics }, MAX_IN_FLIGHT)
}

/// Submits a batch as one Raft entry through `client_write`.
#[derive(Debug, Clone)]
pub struct RaftEntries {
    raft: Raft,
    metrics: Arc<Metrics>,
}

impl Submit for RaftEntries {
    type Error = ProposeError;

    async fn submit(&self, records: Vec<Record>) -> Result<ProduceApplied, ProposeError> {
        self.metrics
            .commit_batch_records
            .observe(records.len() as f64);
        self.raft
            .client_write(ProduceBatch::new(records))
            .await
            .map(|response| response.data)
    }

    fn stopped(&self) -> ProposeError {
        RaftError::Fatal(Fatal::Stopped)
    }
}
