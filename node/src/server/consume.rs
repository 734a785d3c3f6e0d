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
//! `ConsumeStream` is *pulled*: no task reads ahead into a channel; the response stream reads the
//! next record when tonic asks for it, which tonic does when hyper asks for the next chunk, which
//! hyper does only once HTTP/2 has taken the previous one and the stream's send buffer is below
//! h2's limit (400 KiB). So a client that does not read stops the reading at once, and a stalled
//! stream holds about two responses: one in HTTP/2's send buffer, one encoded in hyper waiting
//! for send capacity — all paid for. A stream waiting for budget holds none of it (the permits
//! belong to the chunks), so waits cannot deadlock.
//!
//! Reading never waits while the node shuts down: the stream then ends with `UNAVAILABLE`
//! naming the offset to resume from on another node.

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

/// Reads the record at `offset` as a response, with its bytes taken from `budget`: `reserve`
/// (the node's largest response) before the read, then exactly the response's encoded size.
pub async fn read_response(
    backend: &dyn LogBackend,
    budget: &MemoryBudget,
    reserve: usize,
    offset: u64,
) -> Result<(ConsumeResponse, BudgetPermit), Status> {
    let mut permit = budget.acquire(reserve).await;
    let response = read_at(backend, offset)?;
    let bytes = response.encoded_len() + GRPC_HEADER_BYTES;
    if bytes > permit.bytes() && permit.bytes() < budget.total() {
        // Committed under a larger record limit than today's. The record is read already; pay
        // for all of it afresh rather than wait while holding the reservation (no deadlock).
        drop(permit);
        permit = budget.acquire(bytes).await;
    }
    permit.shrink_to(bytes);
    Ok((response, permit))
}

fn read_at(backend: &dyn LogBackend, offset: u64) -> Result<ConsumeResponse, Status> {
    let record = backend.read(offset).map_err(|e| backend_status(&e))?;
    Ok(ConsumeResponse {
        record: Some(record),
    })
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
    offset: u64,
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
            let next = *self.committed.borrow_and_update();
            if self.offset < next {
                let f = &self.follower;
                let read = read_response(f.backend.as_ref(), &f.budget, f.reserve, self.offset);
                let read = tokio::select! {
                    read = read => Some(read),
                    _ = f.shutdown.cancelled() => None,
                };
                return Some(match read {
                    Some(Ok((response, permit))) => {
                        self.offset += 1;
                        (Ok(response), permit)
                    }
                    Some(Err(status)) => self.end_with(status),
                    None => self.end_shutting_down(),
                });
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
        let next = self.offset;
        self.end_with(Status::unavailable(format!(
            "node is shutting down; resume from offset {next} on another node"
        )))
    }
}

#[cfg(test)]
mod tests {
    use proglog_proto::log::v1::Record;

    use super::*;
    use crate::backend::{GroupCommitConfig, LocalBackend};

    #[tokio::test]
    async fn a_response_is_paid_for_by_its_encoded_size() {
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open(
            dir.path(),
            proglog_log::LogConfig::default(),
            GroupCommitConfig::default(),
            Arc::new(Metrics::new()),
            "proglog-0".to_owned(),
            "127.0.0.1:0".to_owned(),
        )
        .unwrap();
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
