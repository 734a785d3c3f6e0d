//! Prometheus metrics of the operator (reconciles, failures, duration, leadership) and the plain
//! HTTP port serving `/metrics` and `/healthz`.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

/// Labels of the per-cluster metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ClusterLabels {
    /// The ProgLogCluster's namespace.
    pub namespace: String,
    /// The ProgLogCluster's name.
    pub cluster: String,
    /// What: the step kind (membership operations) or the certificate (expiry).
    pub kind: String,
}

/// The operator's metrics, shared by the controller and the HTTP server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Counter,
    duration: Histogram,
    leader: Gauge,
    membership_operations: Family<ClusterLabels, Counter>,
    certificate_expiry: Family<ClusterLabels, Gauge>,
    ca_rotation_phases: Family<ClusterLabels, Counter>,
    healthy: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `proglog_operator_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("proglog_operator");
        let reconciles = Counter::default();
        let failures = Counter::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "ProgLogCluster reconciliations run",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "ProgLogCluster reconciliations that returned an error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time spent in one reconciliation",
            duration.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the controller",
            leader.clone(),
        );
        let membership_operations = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "membership_operations",
            "Raft membership operations the operator executed, by cluster and step kind (kind)",
            membership_operations.clone(),
        );
        let certificate_expiry = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Expiry (Unix time) of each cluster's certificates the operator manages (kind: ca, node, operator)",
            certificate_expiry.clone(),
        );
        let ca_rotation_phases = Family::<ClusterLabels, Counter>::default();
        registry.register(
            "ca_rotation_phases",
            "CA rotation phases entered, by cluster and phase (kind: TrustBoth, Reissue, DropOld, Idle = a rotation completed)",
            ca_rotation_phases.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            membership_operations,
            certificate_expiry,
            ca_rotation_phases,
            healthy: AtomicBool::new(true),
        }
    }

    fn labels(namespace: &str, cluster: &str, kind: &str) -> ClusterLabels {
        ClusterLabels {
            namespace: namespace.to_owned(),
            cluster: cluster.to_owned(),
            kind: kind.to_owned(),
        }
    }

    /// Counts one executed membership step of `kind` (see `Step::kind`).
    pub fn count_membership_operation(&self, namespace: &str, cluster: &str, kind: &str) {
        self.membership_operations
            .get_or_create(&Self::labels(namespace, cluster, kind))
            .inc();
    }

    /// Counts one CA rotation phase entered (`Idle`: a rotation completed).
    pub fn count_ca_rotation_phase(&self, namespace: &str, cluster: &str, phase: &str) {
        self.ca_rotation_phases
            .get_or_create(&Self::labels(namespace, cluster, phase))
            .inc();
    }

    /// Records when `certificate` (ca, node, operator) of a cluster expires (Unix seconds).
    pub fn set_certificate_expiry(
        &self,
        namespace: &str,
        cluster: &str,
        certificate: &str,
        at: i64,
    ) {
        self.certificate_expiry
            .get_or_create(&Self::labels(namespace, cluster, certificate))
            .set(at);
    }

    /// Records one reconciliation.
    pub fn observe_reconcile(&self, elapsed: Duration, failed: bool) {
        self.reconciles.inc();
        if failed {
            self.failures.inc();
        }
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Reconciliations so far (for tests and logs).
    pub fn reconciles(&self) -> u64 {
        self.reconciles.get()
    }

    /// Failed reconciliations so far.
    pub fn failures(&self) -> u64 {
        self.failures.get()
    }

    /// Marks whether this replica leads.
    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// `/healthz` fails once the controller stopped (e.g. lost its Lease) so the pod restarts.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::Relaxed);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn healthz_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.healthy.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "controller stopped\n")
    }
}

/// The HTTP router: `/metrics` and `/healthz`.
pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(healthz_handler))
        .with_state(metrics)
}

/// Serves [`router`] on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, router(metrics)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exported_with_prefix() {
        let metrics = Metrics::new();
        metrics.observe_reconcile(Duration::from_millis(20), false);
        metrics.observe_reconcile(Duration::from_millis(20), true);
        metrics.set_leader(true);
        let text = metrics.encode();
        assert!(
            text.contains("proglog_operator_reconciles_total 2"),
            "{text}"
        );
        assert!(
            text.contains("proglog_operator_reconcile_failures_total 1"),
            "{text}"
        );
        assert!(
            text.contains("proglog_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
        assert!(text.contains("proglog_operator_leader 1"), "{text}");
    }

    #[test]
    fn membership_operations_and_certificate_expiry_are_per_cluster() {
        let metrics = Metrics::new();
        metrics.count_membership_operation("ns", "logs", "add_learner");
        metrics.count_membership_operation("ns", "logs", "add_learner");
        metrics.set_certificate_expiry("ns", "logs", "node", 1_900_000_000);
        let text = metrics.encode();
        for line in [
            r#"proglog_operator_membership_operations_total{namespace="ns",cluster="logs",kind="add_learner"} 2"#,
            r#"proglog_operator_certificate_expiry_timestamp_seconds{namespace="ns",cluster="logs",kind="node"} 1900000000"#,
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line} in\n{text}");
        }
    }

    #[tokio::test]
    async fn http_port_serves_metrics_and_health() {
        let metrics = Arc::new(Metrics::new());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(axum::serve(listener, router(metrics.clone())).into_future());
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        };
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        assert!(
            get("/metrics")
                .await
                .contains("proglog_operator_reconciles_total")
        );
        metrics.set_healthy(false);
        assert!(get("/healthz").await.starts_with("HTTP/1.1 503"));
        server.abort();
    }
}
