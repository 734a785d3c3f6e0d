//! The `log.v1.Log` service: the book's five RPCs plus `ProduceBatch` and `GetLogBounds`, over
//! any [`LogBackend`]. Every call is authorized, traced (a span per RPC with method, peer
//! identity and offset) and counted in the metrics. Record bytes in flight are paid for from the
//! node's [`MemoryBudget`]: `ProduceStream` in [`super::produce`], `Consume` and `ConsumeStream`
//! in [`super::consume`], unary produces by holding their call's charged request bytes.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use futures::Stream;
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
use super::budget::{MemoryBudget, RequestCredit, ResponseCredit};
use super::consume::{ConsumeFollower, read_response};
use super::produce::{ACK_CHANNEL, ProducePipeline};
use super::status::{backend_status, missing_field, record_too_large};
use crate::acl::Action;
use crate::backend::{Consistency, LogBackend};
use crate::metrics::Metrics;

/// Per-call limits of the log service.
#[derive(Debug, Clone)]
pub struct ServiceLimits {
    /// Largest record value accepted, in bytes.
    pub max_record_bytes: u64,
    /// Records a `ProduceStream` may have appended but not yet acknowledged to its client.
    pub produce_window: usize,
    /// Bytes (of requests on the wire) a `ProduceStream` may have in flight to the backend.
    pub produce_window_bytes: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 1024 * 1024,
            produce_window: 8 * 1024,
            produce_window_bytes: 16 << 20,
        }
    }
}

/// Encoding overhead of a response around its record's value, reserved with it.
const RESPONSE_OVERHEAD: usize = 64 * 1024;

/// The `log.v1.Log` implementation.
#[derive(Debug, Clone)]
pub struct LogService {
    pub(super) backend: Arc<dyn LogBackend>,
    authorizer: Authorizer,
    metrics: Arc<Metrics>,
    pub(super) limits: ServiceLimits,
    budget: MemoryBudget,
    shutdown: CancellationToken,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl LogService {
    /// A service over `backend` whose record bytes in flight are paid for from `budget`; streams
    /// end when `shutdown` fires.
    pub fn new(
        backend: Arc<dyn LogBackend>,
        authorizer: Authorizer,
        metrics: Arc<Metrics>,
        limits: ServiceLimits,
        budget: MemoryBudget,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            backend,
            authorizer,
            metrics,
            limits,
            budget,
            shutdown,
        }
    }

    /// Bytes reserved before reading a record for a response: the largest this node accepts.
    fn response_reserve(&self) -> usize {
        usize::try_from(self.limits.max_record_bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(RESPONSE_OVERHEAD)
    }

    pub(super) fn check_record(&self, record: &Record) -> Result<(), Status> {
        if record.value.len() as u64 > self.limits.max_record_bytes {
            return Err(record_too_large(
                record.value.len(),
                self.limits.max_record_bytes,
            ));
        }
        Ok(())
    }

    pub(super) fn observe<T>(&self, method: &str, started: Instant, result: &Result<T, Status>) {
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
            // The request's bytes stay paid for until the record is appended.
            let _paid = request.extensions().get::<RequestCredit>().cloned();
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
            // Nothing waits for budget while holding some: the request was decoded already.
            if let Some(paid) = request.extensions().get::<RequestCredit>() {
                drop(paid.take_message());
            }
            let (response, permit) = read_response(
                self.backend.as_ref(),
                &self.budget,
                self.response_reserve(),
                offset,
            )
            .await?;
            // Paid for until HTTP/2 has written it (the chunk tonic encodes carries it).
            if let Some(ResponseCredit(credit)) = request.extensions().get() {
                credit.add(permit);
            }
            Ok(Response::new(response))
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
        let follower = ConsumeFollower {
            backend: Arc::clone(&self.backend),
            budget: self.budget.clone(),
            reserve: self.response_reserve(),
            shutdown: self.shutdown.clone(),
            metrics: Arc::clone(&self.metrics),
            started,
            span,
            credit: request.extensions().get::<ResponseCredit>().cloned(),
        };
        Ok(Response::new(Box::pin(follower.stream(offset))))
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
        let (tx, rx) = mpsc::channel(ACK_CHANNEL);
        let pipeline = ProducePipeline {
            service: self.clone(),
            tx,
            credit: request.extensions().get::<RequestCredit>().cloned(),
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
            let _paid = request.extensions().get::<RequestCredit>().cloned();
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

pub(super) fn code_result(code: tonic::Code) -> Result<(), Status> {
    if code == tonic::Code::Ok {
        Ok(())
    } else {
        Err(Status::new(code, ""))
    }
}
