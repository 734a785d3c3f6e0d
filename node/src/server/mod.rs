//! The node's gRPC server: `log.v1.Log`, `grpc.health.v1.Health` and server reflection on one
//! mutual-TLS port, with limits and graceful shutdown.
//!
//! - [`NodeServer`]: assembles the services; other modules add theirs with
//!   [`NodeServer::add_service`] and authorize them with [`NodeServer::authorizer`].
//! - [`auth`]: caller identity and the ACL check ([`Authorizer::authorize`]).
//! - [`status`]: the one mapping from errors to gRPC statuses.
//! - `service`: the `log.v1.Log` implementation (`produce`: `ProduceStream`; `consume`:
//!   `Consume` and `ConsumeStream`); `incoming`: the TLS accept loop and the connection caps;
//!   `health`: gRPC health statuses that follow the backend's readiness.
//! - [`budget`]: the node-wide memory budget for record bytes in flight, paid at the edge of the
//!   log service by `charged_body`. Together with the HTTP/2 limits ([`Http2Limits`]) and the
//!   connection caps they bound what clients can make the node hold (ARCHITECTURE "Bounded
//!   resources").

pub mod auth;
pub mod budget;
mod charged_body;
mod consume;
mod health;
mod incoming;
mod produce;
mod refuse;
mod service;
pub mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proglog_proto::log::v1::log_server::LogServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::{Routes, RoutesBuilder};
use tonic_health::server::HealthReporter;

pub use auth::{Authorizer, caller_identity};
pub use service::{LogService, ServiceLimits};

use crate::acl::Acl;
use crate::backend::LogBackend;
use crate::metrics::Metrics;
use crate::tls::ReloadingServerTls;

/// Failures of the server itself (not of single calls).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The gRPC port could not be bound (in use, or not permitted).
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The gRPC reflection descriptors could not be loaded.
    #[error("building the reflection service: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed while serving.
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The backend failed to close cleanly at shutdown.
    #[error("closing the log: {0}")]
    Backend(#[from] crate::backend::BackendError),
}

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// Per-call limits of the log service.
    pub service: ServiceLimits,
    /// Largest gRPC message accepted or sent, in bytes.
    pub max_message_bytes: usize,
    /// HTTP/2 streams (concurrent calls) per connection.
    pub max_concurrent_streams: u32,
    /// Interval of HTTP/2 keep-alive pings to each client.
    pub keepalive_interval: Duration,
    /// A connection whose client does not answer a ping within this is closed.
    pub keepalive_timeout: Duration,
    /// A connection that does not finish its TLS handshake within this is dropped.
    pub handshake_timeout: Duration,
    /// Node-wide budget for record bytes in flight in `log.v1` calls ([`budget`]).
    pub memory_budget_bytes: usize,
    /// A `log.v1` request message, once paid for from the budget, may keep the node waiting for
    /// its bytes this long in all; then the call fails (`DEADLINE_EXCEEDED`) and releases them.
    pub message_timeout: Duration,
    /// Connections at once; further ones wait in the listen backlog.
    pub max_connections: usize,
    /// Connections at once without a verified client identity (handshakes in progress, or
    /// no client certificate).
    pub max_unauthenticated_connections: usize,
    /// A connection without a client certificate is closed this long after it was accepted.
    pub unauthenticated_timeout: Duration,
    /// HTTP/2 flow-control windows and frame and header sizes.
    pub http2: Http2Limits,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            service: ServiceLimits::default(),
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 256,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            memory_budget_bytes: budget::DEFAULT_MEMORY_BUDGET_BYTES,
            message_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_unauthenticated_connections: 128,
            unauthenticated_timeout: Duration::from_secs(10),
            http2: Http2Limits::default(),
        }
    }
}

/// Byte bounds of the HTTP/2 layer: what a client may send before the node reads it is bounded
/// by the windows (per stream, and per connection across its streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http2Limits {
    /// `SETTINGS_INITIAL_WINDOW_SIZE`: bytes a client may send on one stream ahead of the node.
    pub stream_window_bytes: u32,
    /// Bytes a client may send on one connection (all streams) ahead of the node.
    pub connection_window_bytes: u32,
    /// `SETTINGS_MAX_FRAME_SIZE`: the largest frame the node accepts.
    pub max_frame_bytes: u32,
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`: the largest header block the node accepts.
    pub max_header_list_bytes: u32,
}

impl Default for Http2Limits {
    fn default() -> Self {
        Self {
            stream_window_bytes: 1 << 20,
            connection_window_bytes: 1 << 20,
            max_frame_bytes: 16 * 1024,
            max_header_list_bytes: 16 * 1024,
        }
    }
}

/// Assembles and runs the gRPC server of a node.
#[derive(Debug)]
pub struct NodeServer {
    backend: Arc<dyn LogBackend>,
    authorizer: Authorizer,
    tls: Arc<ReloadingServerTls>,
    metrics: Arc<Metrics>,
    limits: ServerLimits,
    health: HealthReporter,
    health_service:
        tonic_health::pb::health_server::HealthServer<tonic_health::server::HealthService>,
    extra: RoutesBuilder,
    shutdown_grace: Duration,
}

impl NodeServer {
    /// A server for `backend`, secured by `tls` and `acl`.
    pub fn new(
        backend: Arc<dyn LogBackend>,
        acl: Arc<Acl>,
        tls: Arc<ReloadingServerTls>,
        metrics: Arc<Metrics>,
        limits: ServerLimits,
    ) -> Self {
        let health = HealthReporter::new();
        let health_server = tonic_health::pb::health_server::HealthServer::new(
            tonic_health::server::HealthService::from_health_reporter(health.clone()),
        );
        Self {
            backend,
            authorizer: Authorizer::new(acl),
            tls,
            metrics,
            limits,
            health,
            health_service: health_server,
            extra: RoutesBuilder::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// How long in-flight calls may take to finish after shutdown starts.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// The authorizer for services added with [`NodeServer::add_service`].
    pub fn authorizer(&self) -> Authorizer {
        self.authorizer.clone()
    }

    /// The health reporter (to mark services serving or not).
    pub fn health_reporter(&self) -> HealthReporter {
        self.health.clone()
    }

    /// The `grpc.health.v1.Health` service sharing this server's state, for the plaintext
    /// observability port.
    pub fn health_routes(&self) -> Routes {
        Routes::new(self.health_service.clone())
    }

    /// Adds a service (Raft, admin) served on the same port, behind the same TLS. Authorize its
    /// calls with [`NodeServer::authorizer`].
    pub fn add_service<S>(mut self, service: S) -> Self
    where
        S: tower::Service<http::Request<tonic::body::Body>, Error = std::convert::Infallible>
            + tonic::server::NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.extra.add_service(service);
        self
    }

    /// Binds the listening socket (use port 0 for an ephemeral port).
    pub async fn bind(self, addr: SocketAddr) -> Result<BoundServer, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener
            .local_addr()
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(BoundServer {
            server: self,
            listener,
            local_addr,
        })
    }
}

/// A server whose socket is bound; [`BoundServer::serve`] runs it.
#[derive(Debug)]
pub struct BoundServer {
    server: NodeServer,
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl BoundServer {
    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` fires, then stops accepting, lets in-flight calls finish within
    /// the grace period, and closes the backend (which syncs the log).
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let BoundServer {
            server, listener, ..
        } = self;
        let NodeServer {
            backend,
            authorizer,
            tls,
            metrics,
            limits,
            health,
            health_service,
            extra,
            shutdown_grace,
        } = server;

        let budget = budget::MemoryBudget::new(limits.memory_budget_bytes);
        let service = LogService::new(
            Arc::clone(&backend),
            authorizer,
            metrics,
            limits.service.clone(),
            budget.clone(),
            shutdown.clone(),
        );
        // A response carries at most one stored record, and a record committed under an
        // earlier, larger --max-record-size must stay readable after the limit was lowered: so
        // what this node sends is bounded by the largest record any node accepts, not by its
        // own limits (those bound what it receives).
        let encoding_limit = limits
            .max_message_bytes
            .max(limits.service.max_record_bytes as usize + 64 * 1024)
            .max((proglog_proto::limits::MAX_RECORD_BYTES + 64 * 1024) as usize);
        let log_server = LogServer::new(service)
            .max_decoding_message_size(limits.max_message_bytes)
            .max_encoding_message_size(encoding_limit);
        // Health follows readiness (a Raft node is not ready before it joined a cluster).
        let ready = health::is_ready(backend.as_ref());
        health::publish(&health, ready).await;
        let tracker_stop = shutdown.child_token();
        let tracker = tokio::spawn(health::track(
            Arc::clone(&backend),
            health.clone(),
            ready,
            tracker_stop.clone(),
        ));

        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proglog_proto::FILE_DESCRIPTOR_SET)
            .build_v1()?;
        let reflection_alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proglog_proto::FILE_DESCRIPTOR_SET)
            .build_v1alpha()?;

        let mut routes = extra;
        routes
            .add_service(charged_body::Budgeted::new(
                log_server,
                budget,
                limits.max_message_bytes,
                limits.message_timeout,
            ))
            .add_service(reflection)
            .add_service(reflection_alpha)
            .add_service(health_service);
        let routes = routes.routes();

        // From `shutdown` until the calls in flight are done, new connections are answered by
        // the refuser (see refuse.rs); the port closes after that.
        let refuser = refuse::Refuser::new();
        let handoff = incoming::spawn_accept_loop(
            listener,
            Arc::clone(&tls),
            incoming::ConnectionLimits {
                max_connections: limits.max_connections,
                max_unauthenticated: limits.max_unauthenticated_connections,
                handshake_timeout: limits.handshake_timeout,
                unauthenticated_timeout: limits.unauthenticated_timeout,
            },
            shutdown.clone(),
            refuser.clone(),
        );
        let serve_shutdown = shutdown.clone();
        let http2 = limits.http2;
        let serving = tonic::transport::Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .initial_stream_window_size(http2.stream_window_bytes)
            .initial_connection_window_size(http2.connection_window_bytes)
            .max_frame_size(http2.max_frame_bytes)
            .http2_max_header_list_size(http2.max_header_list_bytes)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout))
            .layer(tower::util::MapResponseLayer::new(
                status::rewrite_message_too_large::<tonic::body::Body>,
            ))
            .add_routes(routes)
            .serve_with_incoming_shutdown(handoff.stream(), async move {
                serve_shutdown.cancelled().await
            });
        let mut serving = Box::pin(serving);

        tokio::select! {
            result = &mut serving => result?,
            _ = shutdown.cancelled() => {
                // The tracker stops first, so it cannot mark the node serving again.
                tracker_stop.cancel();
                let _ = tracker.await;
                health::publish(&health, false).await;
                match tokio::time::timeout(shutdown_grace, &mut serving).await {
                    Ok(result) => result?,
                    Err(_) => tracing::warn!(
                        grace = ?shutdown_grace,
                        "in-flight calls did not finish within the shutdown grace; closing them"
                    ),
                }
            }
        }
        drop(serving);
        handoff.close_into(&refuser);
        refuser.close().await;
        backend.shutdown().await?;
        tracing::info!("server stopped; log synced and closed");
        Ok(())
    }
}
