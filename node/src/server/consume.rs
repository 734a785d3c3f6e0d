//! Responses of `Consume` and `ConsumeStream` under the memory budget.
//!
//! A record is read from the log only when it is about to be sent, and only after its bytes were
//! taken from the budget: [`read_response`] reserves the node's largest response first, reads,
//! and keeps what the response really takes (a record committed under a larger
//! `--max-record-size` than today's is paid for in full after the read).
//!
//! The response's permit then goes into the call's [`ResponseCredit`], and the chunk tonic
//! encodes from it carries it until HTTP/2 has written it (see [`super::charged_body`]).
//!
//! `ConsumeStream` is *pulled*, in runs: when tonic asks for the next response and none is
//! buffered, the stream reserves the largest response, reads the records that follow in one
//! positional read of at most [`RUN_BYTES`] ([`read_run_responses`]), gives each response a
//! permit of exactly its size and releases the rest. tonic asks when hyper asks for the next
//! chunk, which hyper does only once HTTP/2 has taken the previous one and the stream's send
//! buffer is below h2's limit (400 KiB). So a client that does not read stops the reading at
//! once, and a stalled stream holds one run and about two responses: one in HTTP/2's send buffer,
//! one encoded in hyper waiting for send capacity — all paid for. A stream waiting for budget
//! holds none of it (it waits only with an empty buffer, and the permits of what it sent belong
//! to the chunks), so waits cannot deadlock.
//!
//! Reads never wait for the disk on the worker thread (`backend::read_off_worker`): records in
//! memory are read in place, others on a blocking thread, a whole run at a time.
//!
//! Reading never waits while the node shuts down: the stream then ends with `UNAVAILABLE`
//! naming the offset to resume from on another node.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use futures::{Stream, StreamExt};
use proglog_proto::log::v1::ConsumeResponse;
use prost::Message;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status};
use tracing::Instrument;

use super::budget::{BudgetPermit, MemoryBudget, ResponseCredit};
use super::status::{backend_status, shutting_down};
use crate::backend::LogBackend;
use crate::metrics::Metrics;

/// gRPC's frame header in front of every message.
const GRPC_HEADER_BYTES: usize = 5;

/// Most stored bytes a `ConsumeStream` reads at once: about sixty 1 KiB records per positional
/// read (and per hand-off to a blocking thread when they are not in memory), and what a stalled
/// stream holds beyond the responses HTTP/2 has.
pub const RUN_BYTES: u64 = 64 * 1024;

/// Bytes a response takes on the wire (what its permit holds).
fn response_bytes(response: &ConsumeResponse) -> usize {
    response.encoded_len() + GRPC_HEADER_BYTES
}

/// Fits `permit` (reserved before the read) to a first response of `bytes`: a response larger
/// than the reservation (committed under a larger record limit than today's) is paid for in full
/// afresh — the record is read already, so the wait holds nothing (no deadlock).
async fn pay_first(budget: &MemoryBudget, mut permit: BudgetPermit, bytes: usize) -> BudgetPermit {
    if bytes > permit.bytes() && permit.bytes() < budget.total() {
        drop(permit);
        permit = budget.acquire(bytes).await;
    }
    permit
}

/// Reads the record at `offset` as a response, with its bytes taken from `budget`: `reserve`
/// (the node's largest response) before the read, then exactly the response's encoded size.
pub async fn read_response(
    backend: &dyn LogBackend,
    budget: &MemoryBudget,
    reserve: usize,
    offset: u64,
) -> Result<(ConsumeResponse, BudgetPermit), Status> {
    let permit = budget.acquire(reserve).await;
    let record = backend.read(offset).await.map_err(|e| backend_status(&e))?;
    let response = ConsumeResponse {
        record: Some(record),
    };
    let bytes = response_bytes(&response);
    let mut permit = pay_first(budget, permit, bytes).await;
    permit.shrink_to(bytes);
    Ok((response, permit))
}

/// Reads the records from `from` on in one run of at most [`RUN_BYTES`] as responses, each with
/// a permit of exactly its encoded size: `reserve` is taken before the read, and what the
/// responses do not need is released. Records the reservation does not cover (many tiny
/// records add up to more than their stored bytes) are dropped unsent and read again by the
/// next run. Empty when `from` is the committed end.
pub async fn read_run_responses(
    backend: &dyn LogBackend,
    budget: &MemoryBudget,
    reserve: usize,
    from: u64,
) -> Result<VecDeque<(ConsumeResponse, BudgetPermit)>, Status> {
    let permit = budget.acquire(reserve).await;
    let max_bytes = RUN_BYTES.min(reserve as u64);
    let records = backend
        .read_run(from, max_bytes)
        .await
        .map_err(|e| backend_status(&e))?;
    let mut responses = VecDeque::with_capacity(records.len());
    let mut records = records.into_iter().map(|record| ConsumeResponse {
        record: Some(record),
    });
    let Some(first) = records.next() else {
        return Ok(responses);
    };
    let bytes = response_bytes(&first);
    let mut permit = pay_first(budget, permit, bytes).await;
    responses.push_back((first, permit.split(bytes)));
    for response in records {
        let bytes = response_bytes(&response);
        if bytes > permit.bytes() {
            break;
        }
        responses.push_back((response, permit.split(bytes)));
    }
    Ok(responses)
}

/// What a `ConsumeStream` needs.
pub struct ConsumeFollower {
    pub backend: Arc<dyn LogBackend>,
    pub budget: MemoryBudget,
    /// Bytes reserved before each read (the largest response).
    pub reserve: usize,
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    pub span: tracing::Span,
    /// Where each response's permit goes (absent if the service is not wrapped in the budget:
    /// then a response is paid for until tonic has it).
    pub credit: Option<ResponseCredit>,
}

type Item = (Result<ConsumeResponse, Status>, BudgetPermit);

/// The state of one stream; its end (or the client leaving, which drops it) is counted once.
struct Follow {
    follower: ConsumeFollower,
    committed: watch::Receiver<u64>,
    /// The offset the next run starts at (after what is buffered).
    offset: u64,
    /// Responses read and paid for, not yet handed to tonic.
    buffered: VecDeque<(ConsumeResponse, BudgetPermit)>,
    /// How the stream ended, once it did.
    end: Option<Code>,
}

impl Drop for Follow {
    fn drop(&mut self) {
        let f = &self.follower;
        let code = self.end.unwrap_or(Code::Cancelled);
        f.metrics
            .observe_rpc("ConsumeStream", code, f.started.elapsed().as_secs_f64());
    }
}

impl ConsumeFollower {
    /// The response stream from `offset`: records up to the end of the log, then new ones as
    /// they are committed.
    pub fn stream(
        self,
        offset: u64,
    ) -> impl Stream<Item = Result<ConsumeResponse, Status>> + Send + 'static {
        let committed = self.backend.subscribe();
        let credit = self.credit.clone();
        let state = Follow {
            follower: self,
            committed,
            offset,
            buffered: VecDeque::new(),
            end: None,
        };
        let items = futures::stream::unfold(state, |mut state| {
            let span = state.follower.span.clone();
            async move {
                let item = state.next_item().await?;
                Some((item, state))
            }
            .instrument(span)
        });
        items.map(move |(item, permit)| {
            if let Some(ResponseCredit(credit)) = &credit {
                credit.add(permit);
            }
            item
        })
    }
}

impl Follow {
    async fn next_item(&mut self) -> Option<Item> {
        if self.end.is_some() {
            return None;
        }
        loop {
            if self.follower.shutdown.is_cancelled() {
                return Some(self.end_shutting_down());
            }
            if let Some((response, permit)) = self.buffered.pop_front() {
                return Some((Ok(response), permit));
            }
            let next = *self.committed.borrow_and_update();
            if self.offset < next {
                let f = &self.follower;
                let read =
                    read_run_responses(f.backend.as_ref(), &f.budget, f.reserve, self.offset);
                let read = tokio::select! {
                    read = read => Some(read),
                    _ = f.shutdown.cancelled() => None,
                };
                match read {
                    Some(Ok(run)) => {
                        self.offset += run.len() as u64;
                        self.buffered = run;
                        if !self.buffered.is_empty() {
                            continue;
                        }
                    }
                    Some(Err(status)) => return Some(self.end_with(status)),
                    None => return Some(self.end_shutting_down()),
                }
            }
            // Caught up: wait for the log to grow or shutdown (the client leaving drops us).
            tokio::select! {
                changed = self.committed.changed() => {
                    if changed.is_err() {
                        return Some(self.end_with(shutting_down()));
                    }
                }
                _ = self.follower.shutdown.cancelled() => return Some(self.end_shutting_down()),
            }
        }
    }

    fn end_with(&mut self, status: Status) -> Item {
        self.end = Some(status.code());
        (Err(status), BudgetPermit::empty())
    }

    /// Ends the stream with `UNAVAILABLE` naming the offset to resume from on another node.
    fn end_shutting_down(&mut self) -> Item {
        // The first record not handed out; what was read after it is dropped unsent.
        let next = self.offset - self.buffered.len() as u64;
        self.buffered.clear();
        self.end_with(Status::unavailable(format!(
            "node is shutting down; resume from offset {next} on another node"
        )))
    }
}

#[cfg(test)]
mod tests {
    use proglog_proto::log::v1::Record;

    use super::*;
    use crate::backend::LocalBackend;

    fn records(sizes: impl IntoIterator<Item = usize>) -> Vec<Record> {
        sizes
            .into_iter()
            .map(|n| Record {
                value: vec![1u8; n].into(),
                ..Default::default()
            })
            .collect()
    }

    #[tokio::test]
    async fn a_run_gives_each_response_a_permit_of_its_size_and_releases_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open_default(dir.path());
        backend.append(records([1000; 200])).await.unwrap();
        let budget = MemoryBudget::new(1 << 20);

        let run = read_run_responses(&backend, &budget, 128 * 1024, 0)
            .await
            .unwrap();
        // One read of at most RUN_BYTES of frames: about sixty 1 KiB records.
        let offsets: Vec<u64> = run
            .iter()
            .map(|(r, _)| r.record.as_ref().unwrap().offset)
            .collect();
        assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
        assert!((50..=64).contains(&run.len()), "{} records", run.len());
        let held: usize = run.iter().map(|(_, p)| p.bytes()).sum();
        for (response, permit) in &run {
            assert_eq!(permit.bytes(), response.encoded_len() + GRPC_HEADER_BYTES);
        }
        assert_eq!(
            budget.available(),
            (1 << 20) - held,
            "the rest was released"
        );
        drop(run);
        assert_eq!(budget.available(), 1 << 20);
        // At the end: nothing, and nothing held.
        let run = read_run_responses(&backend, &budget, 128 * 1024, 200)
            .await
            .unwrap();
        assert!(run.is_empty());
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_run_stops_where_its_reservation_does_and_pays_a_large_first_record_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open_default(dir.path());
        // Empty records: 8 stored bytes each, about 10 on the wire.
        backend.append(records([0; 100])).await.unwrap();
        backend.append(records([4096])).await.unwrap();
        let budget = MemoryBudget::new(1 << 20);
        // A reservation of 500 bytes reads up to 500 stored bytes (62 records), but pays for
        // fewer responses: the rest is left for the next run.
        let run = read_run_responses(&backend, &budget, 500, 0).await.unwrap();
        let paid: usize = run.iter().map(|(_, p)| p.bytes()).sum();
        assert!(
            paid <= 500 && run.len() < 62,
            "{} records, {paid} bytes",
            run.len()
        );
        let next = run.len() as u64;
        let again = read_run_responses(&backend, &budget, 500, next)
            .await
            .unwrap();
        assert_eq!(again[0].0.record.as_ref().unwrap().offset, next);
        drop((run, again));
        // Larger than the reservation (committed under a larger record limit): paid in full.
        let run = read_run_responses(&backend, &budget, 500, 100)
            .await
            .unwrap();
        assert_eq!(run.len(), 1);
        assert!(run[0].1.bytes() > 4096);
        assert_eq!(run[0].1.bytes(), run[0].0.encoded_len() + GRPC_HEADER_BYTES);
        drop(run);
        assert_eq!(budget.available(), 1 << 20);
    }

    #[tokio::test]
    async fn a_response_is_paid_for_by_its_encoded_size() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open_default(dir.path());
        let record = |n: usize| Record {
            value: vec![1u8; n].into(),
            ..Default::default()
        };
        backend
            .append(vec![record(100), record(4096)])
            .await
            .unwrap();
        let budget = MemoryBudget::new(1 << 20);
        let reserve = 1024;

        let (small, permit) = read_response(&backend, &budget, reserve, 0).await.unwrap();
        assert_eq!(permit.bytes(), small.encoded_len() + GRPC_HEADER_BYTES);
        assert_eq!(budget.available(), (1 << 20) - permit.bytes());
        drop(permit);
        // Larger than the reservation (committed under a larger limit): paid for in full.
        let (large, permit) = read_response(&backend, &budget, reserve, 1).await.unwrap();
        assert_eq!(permit.bytes(), large.encoded_len() + GRPC_HEADER_BYTES);
        assert!(permit.bytes() > 4096);
        drop(permit);
        let status = read_response(&backend, &budget, reserve, 2)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(
            budget.available(),
            1 << 20,
            "nothing held after a failed read"
        );
    }
}
