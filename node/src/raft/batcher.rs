//! [`Batcher`]: group commit for produces at the Raft level. Produces that arrive while earlier
//! ones are still being committed are merged and submitted together — as one Raft entry on the
//! leader ([`super::proposer`]), as one `ForwardProduce` RPC on a follower
//! ([`super::node`]'s forwarder).
//!
//! openraft already writes many entries with one fsync, but it pays per *entry*: a message to
//! its core task, a log id and a responder, per-entry replication bookkeeping, a wake-up per
//! apply; a forward pays a gRPC call per produce. With 128 unary clients that cost the 3-node
//! cluster about three times the CPU per record of a single node. Here at most `max_in_flight`
//! submissions run at once; whatever arrives meanwhile waits in the queue and becomes the next
//! one, so a submission holds about as many produces as arrived during one commit round. A
//! produce that finds the queue empty and a free slot is submitted at once from its own task,
//! so latency at low load does not change.
//!
//! A second submission starts beside a running one only when it is large ([`InFlight`]'s
//! `overlap_bytes`): a small one waits for the running one to finish and gathers what arrives
//! meanwhile. Per-submission costs (a Raft entry's message, fsync and AppendEntries on three
//! nodes) dominate small batches, so merging saves more than overlapping gains; large ones are
//! bound by bytes (disk, copies), where keeping the disk busy with the next batch pays.
//!
//! Records keep their order inside a submission and each caller gets the offsets of its own
//! records. Produces in flight together have no order between them, which is all a client can
//! rely on. (A ProduceStream orders its own appends: on the leader they bypass the batcher
//! through [`super::proposer::write_in_order`]; elsewhere it keeps one in flight.)

use std::future::Future;
use std::sync::Arc;

use proglog_proto::log::v1::Record;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::types::ProduceApplied;

/// Most record bytes merged into one submission; a larger produce still goes alone.
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Produces waiting; callers wait for room beyond that.
const QUEUE_LEN: usize = 8192;

/// Where a batch goes: how to commit records, and the error for a batcher that stopped.
pub trait Submit: Clone + Send + Sync + 'static {
    /// Why a submission failed; every produce in it gets a copy.
    type Error: Clone + Send + 'static;

    /// Commits `records` in order; resolves with where they landed.
    fn submit(
        &self,
        records: Vec<Record>,
    ) -> impl Future<Output = Result<ProduceApplied, Self::Error>> + Send;

    /// The answer when the batcher has stopped (the node is shutting down) before it took the
    /// produce: nothing was submitted.
    fn stopped(&self) -> Self::Error;

    /// The answer when the submission's task was dropped before it answered (the runtime is
    /// shutting down): the records may have been submitted, so this answer must not say they
    /// were not. Defaults to [`Submit::stopped`]; override it when that answer says so.
    fn abandoned(&self) -> Self::Error {
        self.stopped()
    }
}

/// How many submissions run at once, and when more than one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// Most submissions running at once.
    pub max: usize,
    /// A submission of fewer bytes waits until no other runs (0: never waits).
    pub overlap_bytes: usize,
}

impl InFlight {
    /// Up to `max` submissions at once, whatever their size.
    pub fn always(max: usize) -> Self {
        Self {
            max,
            overlap_bytes: 0,
        }
    }
}

struct Pending<E> {
    records: Vec<Record>,
    bytes: usize,
    reply: oneshot::Sender<Result<ProduceApplied, E>>,
}

/// Merges concurrent produces into shared submissions (see the module docs).
#[derive(Clone)]
pub struct Batcher<S: Submit> {
    queue: mpsc::Sender<Pending<S::Error>>,
    submitter: S,
    in_flight: Arc<Semaphore>,
    policy: InFlight,
}

impl<S: Submit> std::fmt::Debug for Batcher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("free_slots", &self.in_flight.available_permits())
            .finish_non_exhaustive()
    }
}

impl<S: Submit> Batcher<S> {
    /// Starts the batching task. It ends when the last `Batcher` clone is dropped.
    pub fn start(submitter: S, policy: InFlight) -> Self {
        let (queue, incoming) = mpsc::channel(QUEUE_LEN);
        let in_flight = Arc::new(Semaphore::new(policy.max));
        tokio::spawn(batch_loop(
            submitter.clone(),
            incoming,
            in_flight.clone(),
            policy,
        ));
        Self {
            queue,
            submitter,
            in_flight,
            policy,
        }
    }

    /// Commits `records` as part of the next submission; resolves once it is committed, with
    /// where these records landed.
    pub async fn propose(&self, records: Vec<Record>) -> Result<ProduceApplied, S::Error> {
        let bytes = records.iter().map(|r| r.value.len() + 16).sum();
        // Nothing waiting and a free slot (for a small produce: nothing running): submit from
        // this task, which saves the hand-offs to the batching task and back (a large part of
        // an idle node's latency).
        if self.queue.capacity() == self.queue.max_capacity()
            && (bytes >= self.policy.overlap_bytes
                || self.in_flight.available_permits() == self.policy.max)
            && let Ok(_permit) = self.in_flight.clone().try_acquire_owned()
        {
            return self.submitter.submit(records).await;
        }
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            records,
            bytes,
            reply,
        };
        if self.queue.send(pending).await.is_err() {
            return Err(self.submitter.stopped());
        }
        answer
            .await
            .unwrap_or_else(|_| Err(self.submitter.abandoned()))
    }
}

/// Produces gathered for one submission.
struct Gathered<E> {
    pending: Vec<Pending<E>>,
    bytes: usize,
}

impl<E> Gathered<E> {
    /// Adds `next`, or leaves it in `carried` for the next submission when it would pass the
    /// byte cap; false then.
    fn add(&mut self, next: Pending<E>, carried: &mut Option<Pending<E>>) -> bool {
        if self.bytes + next.bytes > MAX_BATCH_BYTES {
            *carried = Some(next);
            return false;
        }
        self.bytes += next.bytes;
        self.pending.push(next);
        true
    }
}

async fn batch_loop<S: Submit>(
    submitter: S,
    mut incoming: mpsc::Receiver<Pending<S::Error>>,
    in_flight: Arc<Semaphore>,
    policy: InFlight,
) {
    let mut carried: Option<Pending<S::Error>> = None;
    loop {
        // Wait for a free slot first: produces arriving meanwhile gather in the queue.
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(pending) => pending,
            None => match incoming.recv().await {
                Some(pending) => pending,
                None => return,
            },
        };
        let mut batch = Gathered {
            bytes: first.bytes,
            pending: vec![first],
        };
        while let Ok(next) = incoming.try_recv() {
            if !batch.add(next, &mut carried) {
                break;
            }
        }
        if batch.bytes < policy.overlap_bytes && carried.is_none() {
            gather_while_others_run(&mut batch, &mut incoming, &mut carried, &in_flight, policy)
                .await;
        }
        let submitter = submitter.clone();
        tokio::spawn(async move {
            submit_batch(&submitter, batch.pending).await;
            drop(permit);
        });
    }
}

/// Holds a small batch back while other submissions run, adding what arrives meanwhile; returns
/// once none runs, the batch reached `overlap_bytes` or the byte cap, or the queue closed. The
/// caller holds one slot, so "none runs" is holding all the others.
async fn gather_while_others_run<E>(
    batch: &mut Gathered<E>,
    incoming: &mut mpsc::Receiver<Pending<E>>,
    carried: &mut Option<Pending<E>>,
    in_flight: &Semaphore,
    policy: InFlight,
) {
    let others = u32::try_from(policy.max.saturating_sub(1)).unwrap_or(u32::MAX);
    let idle = in_flight.acquire_many(others);
    tokio::pin!(idle);
    while batch.bytes < policy.overlap_bytes {
        tokio::select! {
            biased;
            _ = &mut idle => return,
            next = incoming.recv() => match next {
                Some(next) => {
                    if !batch.add(next, carried) {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

/// Submits `batch` at once and answers each produce with its share of the offsets.
async fn submit_batch<S: Submit>(submitter: &S, mut batch: Vec<Pending<S::Error>>) {
    let counts: Vec<u64> = batch.iter().map(|p| p.records.len() as u64).collect();
    let records = if batch.len() == 1 {
        std::mem::take(&mut batch[0].records)
    } else {
        batch
            .iter_mut()
            .flat_map(|p| std::mem::take(&mut p.records))
            .collect()
    };
    match submitter.submit(records).await {
        Ok(applied) => {
            let mut next = applied.first_offset;
            for (pending, count) in batch.into_iter().zip(counts) {
                // A caller that gave up (deadline) no longer listens; nothing to do for it.
                let _ = pending.reply.send(Ok(ProduceApplied {
                    first_offset: next,
                    count,
                }));
                next += count;
            }
        }
        Err(error) => {
            for pending in batch {
                let _ = pending.reply.send(Err(error.clone()));
            }
        }
    }
}

#[cfg(test)]
#[path = "batcher_tests.rs"]
mod tests;
