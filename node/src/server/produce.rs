//! `ProduceStream`: reads requests while earlier ones are being appended and acknowledges
//! offsets in request order, within bounds:
//!
//! - per stream, at most `produce_window` records and `produce_window_bytes` bytes appended but
//!   not yet acknowledged to the client (in flight or waiting for the client to take the
//!   acknowledgement);
//! - node-wide, the memory budget: every decoded message takes its bytes from the call's
//!   [`RequestCredit`] (paid for when its header arrived, see
//!   [`super::charged_body`]) and gives them back as soon as the backend has appended it —
//!   whether or not the client reads its acknowledgements, which are kept as offset ranges;
//! - at most [`STREAM_APPENDS_IN_FLIGHT`] appends in flight, each started through
//!   [`LogBackend::append_in_order`](crate::backend::LogBackend::append_in_order) only after the
//!   previous one's place in the log was fixed, so a stream's records are never reordered.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use proglog_proto::log::v1::{ProduceRequest, ProduceResponse, Record};
use prost::Message;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::budget::{BudgetPermit, RequestCredit};
use super::service::{LogService, code_result};
use super::status::{backend_status, decode_status, missing_field};
use crate::backend::{Appended, BackendError, QueuedAppend};

/// Records of a `ProduceStream` handed to the backend together (when already received).
const STREAM_CHUNK: usize = 1024;
/// Record bytes after which a `ProduceStream` chunk ends: in Raft mode a chunk is one produce,
/// and one produce must fit one Raft entry (a record of the largest size plus this).
const STREAM_CHUNK_BYTES: usize = 4 << 20;
/// gRPC's frame header in front of every message.
const GRPC_HEADER_BYTES: usize = 5;
/// Acknowledgements queued for tonic to send (the rest wait as offset ranges).
pub const ACK_CHANNEL: usize = 256;
/// Appends one stream keeps in flight. In Raft mode each is one Raft entry: two keep the disks
/// and the replication stream busy (one is being replicated and fsynced while the next one
/// gathers). Measured: 2 streamed ~17 % more than 1 at the same latency; 4 and 8 no more than 2,
/// with records waiting longer (docs/BENCHMARKS.md, "Replication").
pub const STREAM_APPENDS_IN_FLIGHT: usize = 2;

type InFlight<'a> = BoxFuture<'a, Result<Appended, Status>>;
/// An append being started: resolves once its place in the log is fixed, with its memory-budget
/// share (released when the append completes) and the bad request that ended its chunk.
type Starting<'a> = BoxFuture<
    'a,
    (
        Result<QueuedAppend, BackendError>,
        BudgetPermit,
        Option<Status>,
    ),
>;

/// An acknowledgement not yet taken by the client.
enum Ack {
    Offsets(Range<u64>),
    Fail(Status),
}

/// Records taken from the stream for one append.
struct Chunk {
    records: Vec<Record>,
    /// Their messages' size on the wire (what the window counts).
    bytes: usize,
    /// Their share of the memory budget.
    permit: BudgetPermit,
    /// A bad request that ended the chunk, answered after the chunk's records.
    failure: Option<Status>,
}

/// One `ProduceStream` call.
pub struct ProducePipeline {
    pub service: LogService,
    pub tx: mpsc::Sender<Result<ProduceResponse, Status>>,
    /// The payments for the call's messages (absent if the service is not wrapped in the budget).
    pub credit: Option<RequestCredit>,
}

impl ProducePipeline {
    pub async fn run(self, inbound: Streaming<ProduceRequest>, started: Instant) {
        let code = self.pump(inbound).await;
        self.service
            .observe("ProduceStream", started, &code_result(code));
    }

    async fn pump(&self, mut inbound: Streaming<ProduceRequest>) -> tonic::Code {
        let backend = Arc::clone(&self.service.backend);
        let limits = &self.service.limits;
        let (window, window_bytes) = (limits.produce_window.max(1), limits.produce_window_bytes);
        let mut in_flight: FuturesOrdered<InFlight<'_>> = FuturesOrdered::new();
        // (records, bytes) of each in-flight append, in order.
        let mut sizes: VecDeque<(usize, usize)> = VecDeque::new();
        let (mut in_flight_records, mut in_flight_bytes) = (0usize, 0usize);
        let mut acks: VecDeque<Ack> = VecDeque::new();
        let mut unacked = 0usize;
        let mut inbound_open = true;
        // At most one append being started; the next waits until its place is fixed.
        let mut starting: Option<Starting<'_>> = None;
        loop {
            if !inbound_open && starting.is_none() && in_flight.is_empty() && acks.is_empty() {
                return tonic::Code::Ok;
            }
            let may_read = inbound_open
                && starting.is_none()
                && in_flight.len() < STREAM_APPENDS_IN_FLIGHT
                && in_flight_records + unacked < window
                && in_flight_bytes < window_bytes.max(1);
            tokio::select! {
                // Acknowledge first: it frees window space.
                biased;
                slot = self.tx.reserve(), if !acks.is_empty() => {
                    let Ok(slot) = slot else { return tonic::Code::Cancelled };
                    if let Some(code) = self.send_acks(slot, &mut acks, &mut unacked) {
                        return code;
                    }
                }
                done = in_flight.next(), if !in_flight.is_empty() => {
                    let (records, bytes) = sizes.pop_front().unwrap_or_default();
                    in_flight_records -= records;
                    in_flight_bytes -= bytes;
                    match done {
                        Some(Ok(appended)) => {
                            let first = appended.first_offset;
                            acks.push_back(Ack::Offsets(first..first + appended.count));
                            unacked += appended.count as usize;
                        }
                        Some(Err(status)) => {
                            // Acknowledge what came before, then fail, in order. Appends started
                            // after this one may still commit: then the failure cannot promise
                            // that the records after the last acknowledgement were not stored.
                            let later_started = !in_flight.is_empty() || starting.is_some();
                            let status = if later_started { outcome_unknown(status) } else { status };
                            acks.push_back(Ack::Fail(status));
                            in_flight = FuturesOrdered::new();
                            starting = None;
                            sizes.clear();
                            (in_flight_records, in_flight_bytes) = (0, 0);
                            inbound_open = false;
                        }
                        None => {}
                    }
                }
                started = async { starting.as_mut().expect("guarded").await },
                    if starting.is_some() =>
                {
                    starting = None;
                    let (queued, permit, failure) = started;
                    let outcome: InFlight<'_> = match queued {
                        Ok(append) => Box::pin(async move {
                            let appended = append.await;
                            // Appended: the records have left this call.
                            drop(permit);
                            appended.map_err(|e| backend_status(&e))
                        }),
                        Err(error) => {
                            // Read nothing more: the failure ends the stream once the appends
                            // before it are acknowledged.
                            inbound_open = false;
                            let status = backend_status(&error);
                            Box::pin(async move { Err(status) })
                        }
                    };
                    in_flight.push_back(outcome);
                    if let Some(status) = failure {
                        in_flight.push_back(Box::pin(async move { Err(status) }));
                    }
                }
                message = inbound.message(), if may_read => {
                    match message {
                        Ok(Some(first)) => {
                            let chunk = self.take_ready(first, &mut inbound);
                            let Chunk { records, bytes, permit, failure } = chunk;
                            if failure.is_some() {
                                inbound_open = false;
                            }
                            if records.is_empty() {
                                if let Some(status) = failure {
                                    sizes.push_back((0, 0));
                                    in_flight.push_back(Box::pin(async move { Err(status) }));
                                }
                            } else {
                                in_flight_records += records.len();
                                in_flight_bytes += bytes;
                                sizes.push_back((records.len(), bytes));
                                if failure.is_some() {
                                    // Answered after the chunk's records, once they started.
                                    sizes.push_back((0, 0));
                                }
                                let backend = &backend;
                                starting = Some(Box::pin(async move {
                                    (backend.append_in_order(records).await, permit, failure)
                                }));
                            }
                        }
                        Ok(None) => inbound_open = false,
                        Err(status) => {
                            let status = decode_status(status);
                            sizes.push_back((0, 0));
                            in_flight.push_back(Box::pin(async move { Err(status) }));
                            inbound_open = false;
                        }
                    }
                }
                _ = self.tx.closed() => return tonic::Code::Cancelled,
            }
        }
    }

    /// Sends queued acknowledgements while the channel has room (the first into `slot`);
    /// returns the stream's final code once a failure was sent.
    fn send_acks(
        &self,
        slot: mpsc::Permit<'_, Result<ProduceResponse, Status>>,
        acks: &mut VecDeque<Ack>,
        unacked: &mut usize,
    ) -> Option<tonic::Code> {
        let mut slot = Some(slot);
        while let Some(ack) = acks.front_mut() {
            // No room: the rest waits for the next `reserve`.
            let permit = slot.take().or_else(|| self.tx.try_reserve().ok())?;
            match ack {
                Ack::Offsets(range) => {
                    permit.send(Ok(ProduceResponse {
                        offset: range.start,
                    }));
                    range.start += 1;
                    *unacked -= 1;
                    if range.is_empty() {
                        acks.pop_front();
                    }
                }
                Ack::Fail(status) => {
                    let code = status.code();
                    permit.send(Err(std::mem::replace(status, Status::ok(""))));
                    return Some(code);
                }
            }
        }
        None
    }

    /// The record of `first` plus those of requests already received (without waiting), up
    /// to a chunk, so one backend append carries many records. A bad request ends the chunk
    /// and is returned as the failure that follows it.
    fn take_ready(&self, first: ProduceRequest, inbound: &mut Streaming<ProduceRequest>) -> Chunk {
        let mut chunk = Chunk {
            records: Vec::with_capacity(16),
            bytes: 0,
            permit: BudgetPermit::empty(),
            failure: None,
        };
        let mut value_bytes = 0;
        let mut request = first;
        loop {
            let wire = request.encoded_len() + GRPC_HEADER_BYTES;
            chunk.bytes += wire;
            if let Some(credit) = &self.credit {
                chunk.permit.merge(credit.take_message());
            }
            let Some(record) = request.record else {
                chunk.failure = Some(missing_field("ProduceRequest.record"));
                return chunk;
            };
            if let Err(status) = self.service.check_record(&record) {
                chunk.failure = Some(status);
                return chunk;
            }
            value_bytes += record.value.len();
            chunk.records.push(record);
            if chunk.records.len() >= STREAM_CHUNK || value_bytes >= STREAM_CHUNK_BYTES {
                return chunk;
            }
            match inbound.message().now_or_never() {
                Some(Ok(Some(next))) => request = next,
                Some(Err(status)) => {
                    chunk.failure = Some(decode_status(status));
                    return chunk;
                }
                Some(Ok(None)) | None => return chunk,
            }
        }
    }
}

/// `status` without the not-executed mark, saying why: appends started after the failed one may
/// still be committed, so a client must not resend the unacknowledged records as if none were
/// stored.
fn outcome_unknown(status: Status) -> Status {
    Status::new(
        status.code(),
        format!(
            "{}; appends of this stream that followed it were already under way and may or may \
             not have been committed",
            status.message()
        ),
    )
}
