//! Prometheus metrics of a node and the plain-HTTP observability port.
//!
//! - [`Metrics`]: the registry and every metric the node records.
//! - [`raft`]: the Raft gauges (leadership, indexes, follower lag).
//! - [`certificates`]: when the node's certificate and its CA expire.
//! - [`http`]: serves `/metrics`, `/healthz`, `/readyz` and, on the same port, the plaintext
//!   (h2c) `grpc.health.v1.Health` service, because Kubernetes `grpc:` probes do not speak TLS.

pub mod certificates;
pub mod http;
pub mod raft;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of a finished RPC.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RpcLabels {
    /// The gRPC method name, e.g. `Produce`.
    pub method: String,
    /// The gRPC status code name, e.g. `Ok`, `OutOfRange`.
    pub code: String,
}

/// Labels of `proglog_raft_core_stopped`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct CoreStoppedLabels {
    /// Why: `storage`, `panic` or `stopped` (see `raft::fatal`).
    pub kind: String,
}

/// Labels of a latency histogram.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MethodLabels {
    /// The gRPC method name.
    pub method: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 17))
}

/// Every metric of a node, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// RPCs finished, by method and status code (errors are the codes other than `Ok`).
    pub rpcs: Family<RpcLabels, Counter>,
    /// RPC latency by method (streams: the whole stream's lifetime).
    pub rpc_seconds: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Records made durable.
    pub records_appended: Counter,
    /// Bytes of record values made durable.
    pub bytes_appended: Counter,
    /// Lowest offset held (retention start).
    pub log_lowest_offset: Gauge,
    /// Offset the next record will get.
    pub log_next_offset: Gauge,
    /// Segments in the log.
    pub log_segments: Gauge,
    /// Duration of each `fsync` of the log.
    pub fsync_seconds: Histogram,
    /// Records per group commit (one fsync each).
    pub commit_batch_records: Histogram,
    /// Worker threads of the async runtime (`--worker-threads`, or one per usable CPU).
    pub runtime_worker_threads: Gauge,
    /// 1 once the Raft core stopped (the node then exits), by kind.
    pub core_stopped: Family<CoreStoppedLabels, Gauge>,
    /// Raft term, leadership, indexes and follower lag (fed by `crate::raft::metrics_view`).
    pub raft: raft::RaftGauges,
    /// Expiry of the node's certificates (see [`certificates::spawn_certificate_expiry_watcher`]).
    pub certificates: certificates::CertificateGauges,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric under the `proglog_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("proglog");
        let rpcs = Family::<RpcLabels, Counter>::default();
        registry.register(
            "grpc_requests",
            "gRPC calls finished, by method and code",
            rpcs.clone(),
        );
        let rpc_seconds =
            Family::<MethodLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        registry.register(
            "grpc_request_duration_seconds",
            "gRPC call latency by method (streams: whole stream)",
            rpc_seconds.clone(),
        );
        let records_appended = Counter::default();
        registry.register(
            "records_appended",
            "Records made durable",
            records_appended.clone(),
        );
        let bytes_appended = Counter::default();
        registry.register(
            "bytes_appended",
            "Bytes of record values made durable",
            bytes_appended.clone(),
        );
        let log_lowest_offset = Gauge::default();
        registry.register(
            "log_lowest_offset",
            "Lowest offset held",
            log_lowest_offset.clone(),
        );
        let log_next_offset = Gauge::default();
        registry.register(
            "log_next_offset",
            "Offset of the next record",
            log_next_offset.clone(),
        );
        let log_segments = Gauge::default();
        registry.register("log_segments", "Segments in the log", log_segments.clone());
        let fsync_seconds = latency_histogram();
        registry.register(
            "log_fsync_duration_seconds",
            "Duration of log fsyncs",
            fsync_seconds.clone(),
        );
        let commit_batch_records = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        registry.register(
            "log_commit_batch_records",
            "Records per group commit (one fsync each)",
            commit_batch_records.clone(),
        );
        let runtime_worker_threads = Gauge::default();
        registry.register(
            "runtime_worker_threads",
            "Worker threads of the node's async runtime",
            runtime_worker_threads.clone(),
        );
        let core_stopped = Family::<CoreStoppedLabels, Gauge>::default();
        registry.register(
            "raft_core_stopped",
            "1 when the Raft core stopped and the node is exiting, by kind (storage, panic, stopped)",
            core_stopped.clone(),
        );
        let raft = raft::RaftGauges::register(&mut registry);
        let certificates = certificates::CertificateGauges::register(&mut registry);
        Self {
            registry,
            rpcs,
            rpc_seconds,
            records_appended,
            bytes_appended,
            log_lowest_offset,
            log_next_offset,
            log_segments,
            fsync_seconds,
            commit_batch_records,
            runtime_worker_threads,
            core_stopped,
            raft,
            certificates,
        }
    }

    /// Marks the Raft core as stopped for `kind`.
    pub fn raft_core_stopped(&self, kind: &str) {
        self.core_stopped
            .get_or_create(&CoreStoppedLabels {
                kind: kind.to_owned(),
            })
            .set(1);
    }

    /// Counts a finished RPC.
    pub fn observe_rpc(&self, method: &str, code: tonic::Code, seconds: f64) {
        self.rpcs
            .get_or_create(&RpcLabels {
                method: method.to_owned(),
                code: format!("{code:?}"),
            })
            .inc();
        self.observe_latency(method, seconds);
    }

    /// Records one latency sample for `method`.
    pub fn observe_latency(&self, method: &str, seconds: f64) {
        self.rpc_seconds
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .observe(seconds);
    }

    /// The registry in the Prometheus/OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl Metrics {
    /// Updates the log-offset gauges.
    pub fn set_bounds(&self, lowest: u64, next: u64) {
        self.log_lowest_offset.set(clamp_i64(lowest));
        self.log_next_offset.set(clamp_i64(next));
    }
}
