//! The plain-HTTP observability port: `/metrics` (Prometheus text), `/healthz` (the process is
//! alive), `/readyz` (the node serves its log) and the `grpc.health.v1.Health` service over
//! plaintext HTTP/2 (h2c), for Kubernetes `grpc:` probes which cannot use TLS.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::Metrics;
use crate::backend::{Consistency, LogBackend};

#[derive(Clone)]
struct HttpState {
    metrics: Arc<Metrics>,
    backend: Arc<dyn LogBackend>,
    shutting_down: CancellationToken,
}

/// Serves the observability port on `listener` until `shutdown` fires.
///
/// `health` is the gRPC health service to expose in plaintext; it shares its state with the one
/// on the TLS port.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    backend: Arc<dyn LogBackend>,
    health: tonic::service::Routes,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let state = HttpState {
        metrics,
        backend,
        shutting_down: shutdown.clone(),
    };
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(state)
        .merge(health.into_axum_router());
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    if let Ok(bounds) = state.backend.bounds(Consistency::Local).await {
        state.metrics.set_bounds(bounds.lowest, bounds.next);
    }
    if let Some(segments) = state.backend.segment_count() {
        state
            .metrics
            .log_segments
            .set(i64::try_from(segments).unwrap_or(i64::MAX));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if state.shutting_down.is_cancelled() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else if state.backend.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
