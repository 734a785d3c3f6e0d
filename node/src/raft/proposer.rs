//! [`Proposer`]: the leader's [`Batcher`] — concurrent produces become one Raft entry, so
//! openraft's per-entry cost is paid per batch (see [`super::batcher`] for the policy) — and
//! [`write_in_order`], the leader's ordered path for a `ProduceStream`'s appends.

use std::future::Future;
use std::sync::Arc;

use openraft::error::{ClientWriteError, Fatal, RaftError};
use openraft::impls::ProgressResponder;
use proglog_proto::log::v1::Record;

use super::batcher::{Batcher, InFlight, Submit};
use super::types::{ProduceApplied, ProduceBatch, Raft, TypeConfig};
use crate::metrics::Metrics;

/// Entries being committed at once: two keep the disk busy (one fsyncs while the next fills)
/// for entries of at least `OVERLAP_BYTES`; a smaller one waits for the running one and takes
/// in what arrives meanwhile, since per-entry costs dominate small entries (a second small entry
/// beside the first cost 16 unary clients a third more CPU per record; BENCHMARKS, "Small
/// entries wait for the running one").
const IN_FLIGHT: InFlight = InFlight {
    max: 2,
    overlap_bytes: 256 * 1024,
};

/// Why a proposal failed: openraft's answer for the entry that carried it.
pub type ProposeError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

/// Merges concurrent produces on the leader into shared Raft entries.
pub type Proposer = Batcher<RaftEntries>;

/// Starts the leader's proposer for `raft`; records per entry go to `metrics`
/// (`proglog_log_commit_batch_records`).
pub fn start_proposer(raft: Raft, metrics: Arc<Metrics>) -> Proposer {
    Batcher::start(RaftEntries { raft, metrics }, IN_FLIGHT)
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

/// Hands `records` to the Raft core as one entry, bypassing the batcher, and returns once the
/// core has it: the core takes writes from one channel in the order they were sent and gives
/// them log indexes in that order, so an entry handed over after this returns gets a later
/// index. The returned future resolves when the entry is committed and applied (or refused:
/// `ForwardToLeader` when this node was no longer the leader as the core took it). A caller
/// that awaits one call before making the next keeps several entries in flight, in order.
pub async fn write_in_order(
    raft: &Raft,
    metrics: &Metrics,
    records: Vec<Record>,
) -> Result<impl Future<Output = Result<ProduceApplied, ProposeError>> + Send + 'static, ProposeError>
{
    metrics.commit_batch_records.observe(records.len() as f64);
    let (responder, answer) = ProgressResponder::complete_only();
    raft.client_write_ff(ProduceBatch::new(records), Some(responder))
        .await
        .map_err(RaftError::Fatal)?;
    Ok(async move {
        match answer.await {
            Ok(Ok(response)) => Ok(response.data),
            Ok(Err(refused)) => Err(RaftError::APIError(refused)),
            // The core dropped the responder: it stopped (the outcome is unknown).
            Err(_) => Err(RaftError::Fatal(Fatal::Stopped)),
        }
    })
}
