//! [`Proposer`]: Raft-level group commit on the leader. Produces that arrive while earlier ones
//! are still being replicated are merged into one Raft entry.
//!
//! openraft already writes many entries with one fsync, but it pays per *entry*: a message to
//! its core task, a log id and a responder, per-entry replication bookkeeping, a wake-up per
//! apply. With 128 unary clients that bookkeeping cost the 3-node cluster about three times the
//! CPU per record of a single node. Here at most [`MAX_IN_FLIGHT`] entries are being committed
//! at once; whatever arrives meanwhile waits in the queue and becomes the next entry, so an entry
//! holds about as many produces as arrived during one commit round. A produce that finds the
//! queue empty and fewer than [`MAX_IN_FLIGHT`] entries in flight is proposed at once from its
//! own task, so latency at low load does not change.
//!
//! Records keep their order inside an entry and each caller gets the offsets of its own records.
//! Produces in flight together are ordered by the queue, which is all a client can rely on
//! (a ProduceStream keeps one append in flight, see [`super::backend`]).

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use proglog_proto::log::v1::Record;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::types::{ProduceApplied, ProduceBatch, Raft, TypeConfig};
use crate::metrics::Metrics;

/// Entries being committed at once. Two keep the disk busy (one fsyncs while the next fills)
/// without splitting the queue into many small entries.
const MAX_IN_FLIGHT: usize = 2;
/// Most record bytes merged into one entry; a larger produce still goes alone.
const MAX_ENTRY_BYTES: usize = 4 * 1024 * 1024;
/// Produces waiting for an entry; callers wait for room beyond that.
const QUEUE_LEN: usize = 8192;

/// Why a proposal failed: openraft's answer for the entry that carried it.
pub type ProposeError = RaftError<TypeConfig, ClientWriteError<TypeConfig>>;

struct Proposal {
    records: Vec<Record>,
    bytes: usize,
    reply: oneshot::Sender<Result<ProduceApplied, ProposeError>>,
}

/// Merges concurrent produces into shared Raft entries (see the module docs).
#[derive(Debug, Clone)]
pub struct Proposer {
    queue: mpsc::Sender<Proposal>,
    raft: Raft,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
}

impl Proposer {
    /// Starts the batching task for `raft`. It ends when the last `Proposer` clone is dropped.
    /// Records per entry go to `metrics` (`proglog_log_commit_batch_records`).
    pub fn start(raft: Raft, metrics: Arc<Metrics>) -> Self {
        let (queue, incoming) = mpsc::channel(QUEUE_LEN);
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        tokio::spawn(propose_loop(
            raft.clone(),
            incoming,
            in_flight.clone(),
            metrics.clone(),
        ));
        Self {
            queue,
            raft,
            in_flight,
            metrics,
        }
    }

    /// Proposes `records` as part of the next entry; resolves once that entry is applied, with
    /// where these records landed.
    pub async fn propose(&self, records: Vec<Record>) -> Result<ProduceApplied, ProposeError> {
        // Nothing waiting and room for another entry: propose from this task, which saves the
        // hand-offs to the batching task and back (a large part of an idle node's latency).
        if self.queue.capacity() == self.queue.max_capacity()
            && let Ok(_permit) = self.in_flight.clone().try_acquire_owned()
        {
            self.metrics
                .commit_batch_records
                .observe(records.len() as f64);
            return self
                .raft
                .client_write(ProduceBatch::new(records))
                .await
                .map(|response| response.data);
        }
        let bytes = records.iter().map(|r| r.value.len() + 16).sum();
        let (reply, answer) = oneshot::channel();
        let proposal = Proposal {
            records,
            bytes,
            reply,
        };
        if self.queue.send(proposal).await.is_err() {
            return Err(stopped());
        }
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> ProposeError {
    RaftError::Fatal(openraft::error::Fatal::Stopped)
}

async fn propose_loop(
    raft: Raft,
    mut incoming: mpsc::Receiver<Proposal>,
    in_flight: Arc<Semaphore>,
    metrics: Arc<Metrics>,
) {
    let mut carried: Option<Proposal> = None;
    loop {
        // Wait for room first: produces arriving meanwhile gather in the queue.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(proposal) => proposal,
            None => match incoming.recv().await {
                Some(proposal) => proposal,
                None => return,
            },
        };
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while let Ok(next) = incoming.try_recv() {
            if bytes + next.bytes > MAX_ENTRY_BYTES {
                carried = Some(next);
                break;
            }
            bytes += next.bytes;
            batch.push(next);
        }
        let raft = raft.clone();
        let records: usize = batch.iter().map(|p| p.records.len()).sum();
        metrics.commit_batch_records.observe(records as f64);
        tokio::spawn(async move {
            commit_entry(&raft, batch).await;
            drop(permit);
        });
    }
}

/// Proposes `batch` as one entry and answers each proposal with its share of the offsets.
async fn commit_entry(raft: &Raft, mut batch: Vec<Proposal>) {
    let counts: Vec<u64> = batch.iter().map(|p| p.records.len() as u64).collect();
    let records = if batch.len() == 1 {
        std::mem::take(&mut batch[0].records)
    } else {
        batch
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.records))
            .collect()
    };
    match raft.client_write(ProduceBatch::new(records)).await {
        Ok(response) => {
            let mut next = response.data.first_offset;
            for (proposal, count) in batch.into_iter().zip(counts) {
                // A caller that gave up (deadline) no longer listens; nothing to do for it.
                let _ = proposal.reply.send(Ok(ProduceApplied {
                    first_offset: next,
                    count,
                }));
                next += count;
            }
        }
        Err(error) => {
            for proposal in batch {
                let _ = proposal.reply.send(Err(error.clone()));
            }
        }
    }
}

impl std::fmt::Debug for Proposal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proposal({} records)", self.records.len())
    }
}
