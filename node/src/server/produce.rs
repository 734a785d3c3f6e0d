//! `ProduceStream`: reads requests while earlier ones are being appended and acknowledges
//! offsets in request order, within bounds:
//!
//! - per stream, at most `produce_window` records and `produce_window_bytes` bytes appended but
//!   not yet acknowledged to the client (in flight or waiting for the client to take the
//!   acknowledgement);
//! - node-wide, the memory budget: every decoded message takes its bytes from the call's
//!   [`RequestCredit`] (paid for when its header arrived, see
//!   [`super::charged_body`]) and gives them back as soon as the backend has appended it —
//!   whether or not the client reads its acknowledgements, which are kept as offset ranges.

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
use crate::backend::Appended;

/// Records of a `ProduceStream` handed to the backend together (when already received).
const STREAM_CHUNK: usize = 1024;
/// Record bytes after which a `ProduceStream` chunk ends: in Raft mode a chunk is one produce,
/// and one produce must fit one Raft entry (a record of the largest size plus this).
const STREAM_CHUNK_BYTES: usize = 4 << 20;
/// gRPC's frame header in front of every message.
const GRPC_HEADER_BYTES: usize = 5;
/// Acknowledgements queued for tonic to send (the rest wait as offset ranges).
pub const ACK_CHANNEL: usize = 256;

type InFlight<'a> = BoxFuture<'a, Result<Appended, Status>>;

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
        loop {
            if !inbound_open && in_flight.is_empty() && acks.is_empty() {
                return tonic::Code::Ok;
            }
            let may_read = inbound_open
                && in_flight_records + unacked < window
                && in_flight_bytes < window_bytes.max(1)
                && (in_flight.is_empty() || backend.pipelined_appends_keep_order());
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
                            // Acknowledge what came before, then fail, in order.
                            acks.push_back(Ack::Fail(status));
                            in_flight = FuturesOrdered::new();
                            sizes.clear();
                            (in_flight_records, in_flight_bytes) = (0, 0);
                            inbound_open = false;
                        }
                        None => {}
                    }
                }
                message = inbound.message(), if may_read => {
                    match message {
                        Ok(Some(first)) => {
                            let chunk = self.take_ready(first, &mut inbound);
                            let Chunk { records, bytes, permit, failure } = chunk;
                            if !records.is_empty() {
                                in_flight_records += records.len();
                                in_flight_bytes += bytes;
                                sizes.push_back((records.len(), bytes));
                                let backend = &backend;
                                in_flight.push_back(Box::pin(async move {
                                    let appended = backend.append(records).await;
                                    // Appended: the records have left this call.
                                    drop(permit);
                                    appended.map_err(|e| backend_status(&e))
                                }));
                            }
                            if let Some(status) = failure {
                                sizes.push_back((0, 0));
                                in_flight.push_back(Box::pin(async move { Err(status) }));
                                inbound_open = false;
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
