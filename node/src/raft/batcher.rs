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
    pub fn start(submitter: S, max_in_flight: usize) -> Self {
        let (queue, incoming) = mpsc::channel(QUEUE_LEN);
        let in_flight = Arc::new(Semaphore::new(max_in_flight));
        tokio::spawn(batch_loop(submitter.clone(), incoming, in_flight.clone()));
        Self {
            queue,
            submitter,
            in_flight,
        }
    }

    /// Commits `records` as part of the next submission; resolves once it is committed, with
    /// where these records landed.
    pub async fn propose(&self, records: Vec<Record>) -> Result<ProduceApplied, S::Error> {
        // Nothing waiting and a free slot: submit from this task, which saves the hand-offs to
        // the batching task and back (a large part of an idle node's latency).
        if self.queue.capacity() == self.queue.max_capacity()
            && let Ok(_permit) = self.in_flight.clone().try_acquire_owned()
        {
            return self.submitter.submit(records).await;
        }
        let bytes = records.iter().map(|r| r.value.len() + 16).sum();
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

async fn batch_loop<S: Submit>(
    submitter: S,
    mut incoming: mpsc::Receiver<Pending<S::Error>>,
    in_flight: Arc<Semaphore>,
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
        let mut bytes = first.bytes;
        let mut batch = vec![first];
        while let Ok(next) = incoming.try_recv() {
            if bytes + next.bytes > MAX_BATCH_BYTES {
                carried = Some(next);
                break;
            }
            bytes += next.bytes;
            batch.push(next);
        }
        let submitter = submitter.clone();
        tokio::spawn(async move {
            submit_batch(&submitter, batch).await;
            drop(permit);
        });
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
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

    use bytes::Bytes;
    use tokio::sync::Notify;

    use super::*;

    /// Hands out offsets like a log; fails batches holding a record "fail"; holds the first
    /// submission until `gate` opens, so the produces behind it queue up.
    #[derive(Clone, Default)]
    struct FakeLog {
        next: Arc<AtomicU64>,
        batches: Arc<Mutex<Vec<Vec<Bytes>>>>,
        running: Arc<AtomicUsize>,
        most_running: Arc<AtomicUsize>,
        gate: Arc<Notify>,
        gated: bool,
    }

    impl Submit for FakeLog {
        type Error = String;

        async fn submit(&self, records: Vec<Record>) -> Result<ProduceApplied, String> {
            let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_running.fetch_max(running, Ordering::SeqCst);
            let first_batch = {
                let mut batches = self.batches.lock().unwrap();
                batches.push(records.iter().map(|r| r.value.clone()).collect());
                batches.len() == 1
            };
            if self.gated && first_batch {
                self.gate.notified().await;
            } else {
                tokio::task::yield_now().await;
            }
            self.running.fetch_sub(1, Ordering::SeqCst);
            if records.iter().any(|r| r.value == "fail") {
                return Err("batch failed".into());
            }
            let count = records.len() as u64;
            let first_offset = self.next.fetch_add(count, Ordering::SeqCst);
            Ok(ProduceApplied {
                first_offset,
                count,
            })
        }

        fn stopped(&self) -> String {
            "stopped".into()
        }
    }

    fn records(values: &[&str]) -> Vec<Record> {
        values
            .iter()
            .map(|v| Record {
                value: Bytes::copy_from_slice(v.as_bytes()),
                ..Default::default()
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_produces_share_a_submission_and_get_their_own_offsets() {
        let log = FakeLog {
            gated: true,
            ..FakeLog::default()
        };
        let batcher = Batcher::start(log.clone(), 1);
        let mut tasks = Vec::new();
        for i in 0..50 {
            let batcher = batcher.clone();
            let values = vec![format!("p{i}-a"), format!("p{i}-b")];
            tasks.push(tokio::spawn(async move {
                let refs: Vec<&str> = values.iter().map(String::as_str).collect();
                let applied = batcher.propose(records(&refs)).await.unwrap();
                (values, applied)
            }));
        }
        // Let every produce reach the held first submission or the queue behind it, then release
        // it. The first submission may already hold several produces (the batch loop drains what
        // was queued when it woke), so count both: waiting for 49 queued could wait forever.
        loop {
            let held = log
                .batches
                .lock()
                .unwrap()
                .first()
                .map_or(0, |b| b.len() / 2);
            let queued = batcher.queue.max_capacity() - batcher.queue.capacity();
            if held + queued == 50 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        log.gate.notify_one();
        let mut by_offset = std::collections::BTreeMap::new();
        for task in tasks {
            let (values, applied) = task.await.unwrap();
            assert_eq!(applied.count, 2);
            by_offset.insert(applied.first_offset, values[0].clone());
            by_offset.insert(applied.first_offset + 1, values[1].clone());
        }
        assert_eq!(by_offset.len(), 100, "offsets were given twice");
        // Each produce's offsets point at its own records in what was submitted.
        let submitted: Vec<Bytes> = log.batches.lock().unwrap().concat();
        for (offset, value) in &by_offset {
            assert_eq!(submitted[*offset as usize], value.as_bytes());
        }
        let batches = log.batches.lock().unwrap().len();
        assert!(
            (1..=2).contains(&batches),
            "{batches} submissions: want the held one, then (if any were left) one for the rest"
        );
        assert_eq!(log.most_running.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn submissions_in_flight_never_exceed_the_limit() {
        let log = FakeLog::default();
        let batcher = Batcher::start(log.clone(), 2);
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.propose(records(&[&format!("{i}")])).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert!(log.most_running.load(Ordering::SeqCst) <= 2);
        assert_eq!(log.next.load(Ordering::SeqCst), 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_submission_fails_every_produce_in_it_and_no_other() {
        let log = FakeLog {
            gated: true,
            ..FakeLog::default()
        };
        let batcher = Batcher::start(log.clone(), 1);
        let first = tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.propose(records(&["alone"])).await }
        });
        while log.batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // Both queue behind the held submission, so they share the next one, which fails.
        let queued: Vec<_> = ["ok", "fail"]
            .into_iter()
            .map(|v| {
                let batcher = batcher.clone();
                tokio::spawn(async move { batcher.propose(records(&[v])).await })
            })
            .collect();
        while batcher.queue.max_capacity() - batcher.queue.capacity() < 2 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        log.gate.notify_one();
        assert!(first.await.unwrap().is_ok());
        for task in queued {
            assert_eq!(task.await.unwrap(), Err("batch failed".to_string()));
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_stay_under_the_byte_cap_but_a_large_produce_goes_alone() {
        let log = FakeLog {
            gated: true,
            ..FakeLog::default()
        };
        let batcher = Batcher::start(log.clone(), 1);
        let big = "x".repeat(MAX_BATCH_BYTES / 2);
        let huge = "y".repeat(MAX_BATCH_BYTES + 1);
        let mut tasks = vec![tokio::spawn({
            let batcher = batcher.clone();
            async move { batcher.propose(records(&["held"])).await }
        })];
        while log.batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        for value in [big.clone(), big.clone(), big, huge] {
            let batcher = batcher.clone();
            tasks.push(tokio::spawn(async move {
                batcher.propose(records(&[&value])).await
            }));
        }
        while batcher.queue.max_capacity() - batcher.queue.capacity() < 4 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        log.gate.notify_one();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for batch in log.batches.lock().unwrap().iter() {
            let bytes: usize = batch.iter().map(Bytes::len).sum();
            assert!(
                bytes <= MAX_BATCH_BYTES || batch.len() == 1,
                "a batch of {} produces holds {bytes} bytes",
                batch.len()
            );
        }
        assert!(log.batches.lock().unwrap().len() >= 4);
    }
}
