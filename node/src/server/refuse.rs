//! What a draining node does with connections that arrive after it stopped taking calls.
//!
//! On shutdown the server stops handing new connections to tonic and lets the calls in flight
//! finish (`--shutdown-grace`). Its port stays open meanwhile: closing it at once would refuse
//! the clients that still reach this node — a Service whose endpoints have not caught up with
//! the pod's termination, or a `kubectl port-forward`, which gives up on *every* connection it
//! carries (in-flight calls included) when one new connection is refused. Instead, each call on
//! a connection accepted while draining is answered at once, without reading its request, with
//! `UNAVAILABLE` carrying the not-executed mark ([`proglog_proto::retry::mark_not_executed`]),
//! which every client may safely retry on another node. When the in-flight calls are done the
//! server closes the port and sends these connections a graceful GOAWAY ([`Refuser::close`]),
//! so none is cut while an answer is on its way.

use std::convert::Infallible;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::incoming::Connection;

/// The message of every refused call.
pub const SHUTTING_DOWN: &str =
    "the node is shutting down; the request was not executed; retry on another node";

/// Longest [`Refuser::close`] waits for the refused connections to end after their GOAWAY: the
/// answers are immediate, so this only bounds a client that does not read.
const CLOSE_BOUND: Duration = Duration::from_secs(2);

/// Serves connections accepted while the node drains (see the module doc).
#[derive(Clone)]
pub struct Refuser {
    close: CancellationToken,
    tasks: TaskTracker,
}

impl Refuser {
    pub fn new() -> Self {
        Self {
            close: CancellationToken::new(),
            tasks: TaskTracker::new(),
        }
    }

    /// Answers every call on `connection` as not executed until [`Refuser::close`].
    pub fn serve(&self, connection: Connection) {
        let close = self.close.clone();
        self.tasks.spawn(async move {
            let service = hyper::service::service_fn(|_request: http::Request<Incoming>| async {
                let mut status = tonic::Status::unavailable(SHUTTING_DOWN);
                proglog_proto::retry::mark_not_executed(&mut status);
                Ok::<_, Infallible>(status.into_http::<tonic::body::Body>())
            });
            let serving = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(connection), service);
            tokio::pin!(serving);
            tokio::select! {
                result = serving.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection refused while draining ended");
                    }
                    return;
                }
                _ = close.cancelled() => serving.as_mut().graceful_shutdown(),
            }
            if let Err(error) = serving.await {
                tracing::debug!(%error, "connection refused while draining ended");
            }
        });
    }

    /// Whether [`Refuser::close`] was called (the accept loop then stops and drops the port).
    pub fn closing(&self) -> &CancellationToken {
        &self.close
    }

    /// Sends every refused connection a graceful GOAWAY and waits (within a bound) until they
    /// end.
    pub async fn close(&self) {
        self.close.cancel();
        self.tasks.close();
        if tokio::time::timeout(CLOSE_BOUND, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections refused while draining did not close in time");
        }
    }
}
