//! The `log.v1.Log` service: the book's five RPCs plus `ProduceBatch` and `GetLogBounds`, over
//! any [`LogBackend`]. Every call is authorized, traced (a span per RPC with method, peer
//! identity and offset) and counted in the metrics.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use futures::{FutureExt, Stream, StreamExt};
use proglog_proto::log::v1::log_server::Log;
use proglog_proto::log::v1::{
    ConsumeRequest, ConsumeResponse, GetLogBoundsRequest, GetLogBoundsResponse, GetServersRequest,
    GetServersResponse, ProduceBatchRequest, ProduceBatchResponse, ProduceRequest, ProduceResponse,
    Record,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use super::auth::Authorizer;
use super::status::{
    backend_status, decode_status, missing_field, record_too_large, shutting_down,
};
use crate::acl::Action;
use crate::backend::{Appended, Consistency, LogBackend};
use crate::metrics::Metrics;

/// Per-call limits of the log service.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// Largest record value accepted, in bytes.
    pub max_record_bytes: u64,
    /// Records a `ProduceStream` may have in flight (appended but not yet acknowledged).
    pub produce_window: usize,
    /// Responses a `ConsumeStream` buffers before waiting for the client (back-pressure).
    pub consume_buffer: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            produce_window: 8 * 1024,
            consume_buffer: 256,
        }
    }
}

/// Records of a `ProduceStream` handed to the backend together (when already received).
const STREAM_CHUNK: usize = 1024;
/// Record bytes after which a `ProduceStream` chunk ends: in Raft mode a chunk is one produce,
/// and one produce must fit one Raft entry (a record of the largest size plus this).
const STREAM_CHUNK_BYTES: usize = 4 << 20;

/// The `log.v1.Log` implementation.
#[derive(Debug, Clone)]
pub struct LogService {
    backend: Arc<dyn LogBackend>,
    authorizer: Authorizer,
    metrics: Arc<Metrics>,
    limits: ServiceLimits,
    shutdown: CancellationToken,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl LogService {
    /// A service over `backend`; streams end when `shutdown` fires.
    pub fn new(
        backend: Arc<dyn LogBackend>,
        authorizer: Authorizer,
        metrics: Arc<Metrics>,
        limits: ServiceLimits,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            backend,
            authorizer,
            metrics,
            limits,
            shutdown,
        }
    }

    fn check_record(&self, record: &Record) -> Result<(), Status> {
        if record.value.len() as u64 > self.limits.max_record_bytes {
            return Err(record_too_large(
                record.value.len(),
                self.limits.max_record_bytes,
            ));
        }
        Ok(())
    }

    fn observe<T>(&self, method: &str, started: Instant, result: &Result<T, Status>) {
        let code = match result {
            Ok(_) => tonic::Code::Ok,
            Err(status) => status.code(),
        };
        self.metrics
            .observe_rpc(method, code, started.elapsed().as_secs_f64());
    }
}

fn rpc_span(method: &'static str) -> tracing::Span {
    // `otel.name` names the exported OTLP span after the method (the tracing span stays "rpc").
    tracing::info_span!(
        "rpc",
        otel.name = method,
        method,
        peer = tracing::field::Empty,
        offset = tracing::field::Empty
    )
}

#[tonic::async_trait]
impl Log for LogService {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        let started = Instant::now();
        let span = rpc_span("Produce");
        let result = async {
            let peer = self.authorizer.authorize(&request, Action::Produce)?;
            tracing::Span::current().record("peer", peer.as_str());
            let record = request
                .into_inner()
                .record
                .ok_or_else(|| missing_field("ProduceRequest.record"))?;
            self.check_record(&record)?;
            let appended = self
                .backend
                .append(vec![record])
                .await
                .map_err(|e| backend_status(&e))?;
            tracing::Span::current().record("offset", appended.first_offset);
            Ok(Response::new(ProduceResponse {
                offset: appended.first_offset,
            }))
        }
        .instrument(span)
        .await;
        self.observe("Produce", started, &result);
        result
    }

    async fn consume(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<ConsumeResponse>, Status> {
        let started = Instant::now();
        let span = rpc_span("Consume");
        let result = async {
            let peer = self.authorizer.authorize(&request, Action::Consume)?;
            let offset = request.get_ref().offset;
            let current = tracing::Span::current();
            current.record("peer", peer.as_str());
            current.record("offset", offset);
            let record = self.backend.read(offset).map_err(|e| backend_status(&e))?;
            Ok(Response::new(ConsumeResponse {
                record: Some(record),
            }))
        }
        .instrument(span)
        .await;
        self.observe("Consume", started, &result);
        result
    }

    type ConsumeStreamStream = ResponseStream<ConsumeResponse>;

    async fn consume_stream(
        &self,
        request: Request<ConsumeRequest>,
    ) -> Result<Response<Self::ConsumeStreamStream>, Status> {
        let started = Instant::now();
        let authorized = self.authorizer.authorize(&request, Action::Consume);
        let peer = match authorized {
            Ok(peer) => peer,
            Err(status) => {
                let result = Err(status);
                self.observe("ConsumeStream", started, &result);
                return result;
            }
        };
        let offset = request.get_ref().offset;
        let span = rpc_span("ConsumeStream");
        span.record("peer", peer.as_str());
        span.record("offset", offset);
        let (tx, rx) = mpsc::channel(self.limits.consume_buffer.max(1));
        let follower = ConsumeFollower {
            backend: Arc::clone(&self.backend),
            tx,
            shutdown: self.shutdown.clone(),
            metrics: Arc::clone(&self.metrics),
            started,
        };
        tokio::spawn(follower.run(offset).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ProduceStreamStream = ResponseStream<ProduceResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let started = Instant::now();
        let peer = match self.authorizer.authorize(&request, Action::Produce) {
            Ok(peer) => peer,
            Err(status) => {
                let result = Err(status);
                self.observe("ProduceStream", started, &result);
                return result;
            }
        };
        let span = rpc_span("ProduceStream");
        span.record("peer", peer.as_str());
        let (tx, rx) = mpsc::channel(self.limits.produce_window.max(1));
        let pipeline = ProducePipeline {
            service: self.clone(),
            tx,
        };
        tokio::spawn(pipeline.run(request.into_inner(), started).instrument(span));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn get_servers(
        &self,
        request: Request<GetServersRequest>,
    ) -> Result<Response<GetServersResponse>, Status> {
        let started = Instant::now();
        let result = async {
            self.authorizer.authorize(&request, Action::Consume)?;
            let servers = self
                .backend
                .servers()
                .await
                .map_err(|e| backend_status(&e))?;
            Ok(Response::new(GetServersResponse { servers }))
        }
        .instrument(rpc_span("GetServers"))
        .await;
        self.observe("GetServers", started, &result);
        result
    }

    async fn produce_batch(
        &self,
        request: Request<ProduceBatchRequest>,
    ) -> Result<Response<ProduceBatchResponse>, Status> {
        let started = Instant::now();
        let result = async {
            let peer = self.authorizer.authorize(&request, Action::Produce)?;
            tracing::Span::current().record("peer", peer.as_str());
            let records = request.into_inner().records;
            if records.is_empty() {
                return Err(Status::invalid_argument(
                    "ProduceBatchRequest.records must hold at least one record",
                ));
            }
            let count = u32::try_from(records.len()).map_err(|_| {
                Status::invalid_argument("a batch holds at most 4294967295 records")
            })?;
            for record in &records {
                self.check_record(record)?;
            }
            let appended = self
                .backend
                .append(records)
                .await
                .map_err(|e| backend_status(&e))?;
            tracing::Span::current().record("offset", appended.first_offset);
            Ok(Response::new(ProduceBatchResponse {
                first_offset: appended.first_offset,
                count,
            }))
        }
        .instrument(rpc_span("ProduceBatch"))
        .await;
        self.observe("ProduceBatch", started, &result);
        result
    }

    async fn get_log_bounds(
        &self,
        request: Request<GetLogBoundsRequest>,
    ) -> Result<Response<GetLogBoundsResponse>, Status> {
        let started = Instant::now();
        let result = async {
            self.authorizer.authorize(&request, Action::Consume)?;
            let consistency = match request.get_ref().consistency() {
                proglog_proto::log::v1::Consistency::Local => Consistency::Local,
                proglog_proto::log::v1::Consistency::Linearizable => Consistency::Linearizable,
            };
            let bounds = self
                .backend
                .bounds(consistency)
                .await
                .map_err(|e| backend_status(&e))?;
            Ok(Response::new(GetLogBoundsResponse {
                lowest_offset: bounds.lowest,
                next_offset: bounds.next,
            }))
        }
        .instrument(rpc_span("GetLogBounds"))
        .await;
        self.observe("GetLogBounds", started, &result);
        result
    }
}

/// Longest a stopping node waits to queue a stream's final status behind a slow client.
const END_STATUS_BOUND: Duration = Duration::from_millis(200);

/// Streams records from an offset to a client, then follows the end of the log.
struct ConsumeFollower {
    backend: Arc<dyn LogBackend>,
    tx: mpsc::Sender<Result<ConsumeResponse, Status>>,
    shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl ConsumeFollower {
    async fn run(self, from: u64) {
        let code = self.follow(from).await;
        self.metrics
            .observe_rpc("ConsumeStream", code, self.started.elapsed().as_secs_f64());
    }

    /// Returns the code the stream ended with (`Cancelled` when the client went away).
    async fn follow(&self, mut offset: u64) -> tonic::Code {
        let mut committed = self.backend.subscribe();
        loop {
            let next = *committed.borrow_and_update();
            while offset < next {
                let item = match self.backend.read(offset) {
                    Ok(record) => Ok(ConsumeResponse {
                        record: Some(record),
                    }),
                    Err(error) => Err(backend_status(&error)),
                };
                let failed = item.as_ref().err().map(Status::code);
                if !self.send(item).await {
                    if self.shutdown.is_cancelled() {
                        return self.end_shutting_down(offset).await;
                    }
                    return tonic::Code::Cancelled;
                }
                if let Some(code) = failed {
                    return code;
                }
                offset += 1;
            }
            // Caught up: wait for the log to grow, the client to leave, or shutdown.
            tokio::select! {
                changed = committed.changed() => {
                    if changed.is_err() {
                        let _ = self.tx.send(Err(shutting_down())).await;
                        return tonic::Code::Unavailable;
                    }
                }
                _ = self.tx.closed() => return tonic::Code::Cancelled,
                _ = self.shutdown.cancelled() => return self.end_shutting_down(offset).await,
            }
        }
    }

    /// Ends the stream with `UNAVAILABLE` naming the offset to resume from on another node. A
    /// client too slow to take it within a moment gets the stream's end without it.
    async fn end_shutting_down(&self, next: u64) -> tonic::Code {
        let status = Status::unavailable(format!(
            "node is shutting down; resume from offset {next} on another node"
        ));
        let _ = tokio::time::timeout(END_STATUS_BOUND, self.tx.send(Err(status))).await;
        tonic::Code::Unavailable
    }

    /// Sends one item, waiting while the client is slow (back-pressure); false once the client
    /// is gone or the node shuts down.
    async fn send(&self, item: Result<ConsumeResponse, Status>) -> bool {
        tokio::select! {
            sent = self.tx.send(item) => sent.is_ok(),
            _ = self.shutdown.cancelled() => false,
        }
    }
}

type InFlight<'a> = BoxFuture<'a, Result<Appended, Status>>;

/// Pipelines a `ProduceStream`: reads requests while earlier ones are being committed and
/// acknowledges offsets in request order.
struct ProducePipeline {
    service: LogService,
    tx: mpsc::Sender<Result<ProduceResponse, Status>>,
}

impl ProducePipeline {
    async fn run(self, inbound: Streaming<ProduceRequest>, started: Instant) {
        let code = self.pump(inbound).await;
        self.service
            .observe("ProduceStream", started, &code_result(code));
    }

    async fn pump(&self, mut inbound: Streaming<ProduceRequest>) -> tonic::Code {
        let backend = Arc::clone(&self.service.backend);
        let window = self.service.limits.produce_window.max(1);
        let mut in_flight: FuturesOrdered<InFlight<'_>> = FuturesOrdered::new();
        let mut in_flight_records = 0usize;
        let mut inbound_open = true;
        loop {
            if !inbound_open && in_flight.is_empty() {
                return tonic::Code::Ok;
            }
            tokio::select! {
                // Acknowledge first: it frees window space.
                biased;
                done = in_flight.next(), if !in_flight.is_empty() => {
                    match done {
                        Some(Ok(appended)) => {
                            in_flight_records -= appended.count as usize;
                            for offset in appended.first_offset..appended.first_offset + appended.count {
                                if self.tx.send(Ok(ProduceResponse { offset })).await.is_err() {
                                    return tonic::Code::Cancelled;
                                }
                            }
                        }
                        Some(Err(status)) => {
                            let code = status.code();
                            let _ = self.tx.send(Err(status)).await;
                            return code;
                        }
                        None => {}
                    }
                }
                message = inbound.message(), if inbound_open
                    && in_flight_records < window
                    && (in_flight.is_empty() || backend.pipelined_appends_keep_order()) => {
                    match message {
                        Ok(Some(first)) => {
                            let (records, failure) = self.take_ready(first, &mut inbound);
                            if !records.is_empty() {
                                in_flight_records += records.len();
                                let backend = &backend;
                                in_flight.push_back(Box::pin(async move {
                                    backend.append(records).await.map_err(|e| backend_status(&e))
                                }));
                            }
                            if let Some(status) = failure {
                                // Acknowledge what came before, then fail, in order.
                                in_flight.push_back(Box::pin(async move { Err(status) }));
                                inbound_open = false;
                            }
                        }
                        Ok(None) => inbound_open = false,
                        Err(status) => {
                            in_flight.push_back(Box::pin(async move { Err(decode_status(status)) }));
                            inbound_open = false;
                        }
                    }
                }
                _ = self.tx.closed() => return tonic::Code::Cancelled,
            }
        }
    }

    /// The record of `first` plus those of requests already received (without waiting), up
    /// to a chunk, so one backend append carries many records. A bad request ends the chunk
    /// and is returned as the failure that follows it.
    fn take_ready(
        &self,
        first: ProduceRequest,
        inbound: &mut Streaming<ProduceRequest>,
    ) -> (Vec<Record>, Option<Status>) {
        let mut records = Vec::with_capacity(16);
        let mut bytes = 0;
        let mut request = first;
        loop {
            let Some(record) = request.record else {
                return (records, Some(missing_field("ProduceRequest.record")));
            };
            if let Err(status) = self.service.check_record(&record) {
                return (records, Some(status));
            }
            bytes += record.value.len();
            records.push(record);
            if records.len() >= STREAM_CHUNK || bytes >= STREAM_CHUNK_BYTES {
                return (records, None);
            }
            match inbound.message().now_or_never() {
                Some(Ok(Some(next))) => request = next,
                Some(Err(status)) => return (records, Some(decode_status(status))),
                Some(Ok(None)) | None => return (records, None),
            }
        }
    }
}

fn code_result(code: tonic::Code) -> Result<(), Status> {
    if code == tonic::Code::Ok {
        Ok(())
    } else {
        Err(Status::new(code, ""))
    }
}
