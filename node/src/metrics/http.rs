//! The plain-HTTP observability port: `/metrics` (Prometheus text), `/healthz` (liveness: 503
//! with the reason once the node can only be restarted, e.g. its Raft core stopped), `/readyz`
//! (readiness: 503 with the reason while the node should get no traffic) and the
//! `grpc.health.v1.Health` service over plaintext HTTP/2 (h2c), for Kubernetes `grpc:` probes
//! which cannot use TLS. The rules are the backend's ([`LogBackend::liveness`],
//! [`LogBackend::readiness`]), evaluated on every request.

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
        .route("/healthz", get(live))
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

async fn live(State(state): State<HttpState>) -> impl IntoResponse {
    match state.backend.liveness() {
        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not live: {reason}\n"),
        ),
    }
}

async fn ready(State(state): State<HttpState>) -> impl IntoResponse {
    if state.shutting_down.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down\n".to_owned(),
        );
    }
    match state
        .backend
        .liveness()
        .and_then(|()| state.backend.readiness())
    {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        ),
    }
}
