//! Keeps the node's `grpc.health.v1` statuses — service `""` and `log.v1.Log`, the same on the
//! TLS port and the plaintext probe port — equal to the backend's readiness (which includes
//! liveness: a node whose Raft core stopped is not ready either). Readiness depends on time
//! (how long ago the leader was heard from), so it is re-evaluated every [`POLL_INTERVAL`]
//! (evaluating it reads a few in-memory values); losing liveness is pushed, so a node whose Raft
//! core stopped turns NOT_SERVING at once.

use std::sync::Arc;
use std::time::Duration;

use proglog_proto::log::v1::log_server::LogServer;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use super::LogService;
use crate::backend::LogBackend;

/// How often readiness is re-evaluated for gRPC health (HTTP `/readyz` evaluates per request).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn is_ready(backend: &dyn LogBackend) -> bool {
    backend
        .liveness()
        .and_then(|()| backend.readiness())
        .is_ok()
}

/// Sets both statuses.
pub(super) async fn publish(health: &HealthReporter, ready: bool) {
    let status = if ready {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    };
    health.set_service_status("", status).await;
    if ready {
        health.set_serving::<LogServer<LogService>>().await;
    } else {
        health.set_not_serving::<LogServer<LogService>>().await;
    }
}

/// Publishes readiness whenever it changes from `published`, until `shutdown` fires.
pub(super) async fn track(
    backend: Arc<dyn LogBackend>,
    health: HealthReporter,
    mut published: bool,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(POLL_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut lost = backend.liveness_lost();
    let mut lost_seen = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            _ = &mut lost, if !lost_seen => lost_seen = true,
        }
        let ready = is_ready(backend.as_ref());
        if ready != published {
            publish(&health, ready).await;
            published = ready;
        }
    }
}
