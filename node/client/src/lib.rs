//! A Rust client for a ProgLog cluster: leader-aware routing from `GetServers`, consumes spread
//! over the followers, and retries only where they are safe. The `proglog` CLI produces, consumes
//! and lists servers through it.
//!
//! - Produces go to the leader. When it is unknown, unreachable before the request was sent, or
//!   the node answers that the produce was *not executed* (no leader, not the leader, shutting
//!   down), the client refreshes the server list and retries, up to
//!   [`ClientConfig::max_attempts`]. Both are decided from structured information
//!   ([`proglog_proto::retry::produce_not_executed`]: the node's not-executed response metadata,
//!   or a connect failure in the call's error chain), never from message text.
//! - When the outcome of a produce is unknown (a timeout, a connection lost mid-call, a leader
//!   change after the entry was appended), the client does **not** retry: it returns
//!   [`ClientError::OutcomeUnknown`], because a retry could store the record twice.
//!
//! Avoiding duplicates: make records idempotent at the application level — put a unique id
//! (producer id + sequence number) in the value and, after an `OutcomeUnknown`, either consume
//! the tail of the log to see whether the record landed before re-producing it, or let consumers
//! skip ids they have already seen.
//!
//! - Consumes are spread round-robin over the followers (the leader when there are none) and
//!   retried on another server when one is unavailable; reads are idempotent. A follower answers
//!   only what it has committed, so an offset just produced may be `OUT_OF_RANGE` there for a
//!   moment: the client then asks the leader.
//! - With [`ClientConfig::seeds_only`] every call goes to the seeds instead (a cluster behind a
//!   port-forward or a Service, whose advertised addresses this client cannot reach): any node
//!   accepts every request and forwards produces to the leader; the retry rules are the same.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use proglog_client::{ClientConfig, ClusterClient, mutual_tls};
//!
//! let tls = mutual_tls(
//!     std::fs::read("ca.pem")?,
//!     std::fs::read("app.pem")?,
//!     std::fs::read("app-key.pem")?,
//! );
//! let client = ClusterClient::connect(ClientConfig::new(vec!["logs:8400".into()], tls)).await?;
//! let offset = client.produce("hello").await?;
//! assert_eq!(client.consume(offset).await?.value, "hello".as_bytes());
//! # Ok(())
//! # }
//! ```
//!
//! Runnable examples: `examples/produce.rs`, `examples/consume_follow.rs`.

#![warn(missing_docs)]

mod routing;
pub mod tls_files;

use std::time::Duration;

use bytes::Bytes;
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{
    Consistency, ConsumeRequest, ConsumeResponse, GetLogBoundsRequest, GetLogBoundsResponse,
    GetServersRequest, ProduceRequest, Record, Server,
};
use proglog_proto::retry::{not_executed_status, produce_not_executed};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Status, Streaming};

use routing::Routing;

pub use proglog_proto::retry::NOT_EXECUTED_MARK;
pub use tls_files::{ClientTlsFiles, TlsFileError, client_tls_config};

/// Default largest message sent or accepted: one record of the largest size any node accepts (a
/// consume of it must work whatever the node's current limits are), with room for framing.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize =
    (proglog_proto::limits::MAX_RECORD_BYTES + 64 * 1024) as usize;

/// How the client connects and retries.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Addresses (`host:port`) to ask for the server list; any node of the cluster will do.
    pub seeds: Vec<String>,
    /// Mutual TLS: the cluster CA and this client's certificate.
    pub tls: ClientTlsConfig,
    /// Deadline of each call.
    pub request_timeout: Duration,
    /// Connect timeout of each server.
    pub connect_timeout: Duration,
    /// Tries of one operation (the first included).
    pub max_attempts: u32,
    /// Pause before a retry (doubled each time, at most 2 s).
    pub retry_backoff: Duration,
    /// Send every call to the seeds (in turn, on retries), never to the addresses `GetServers`
    /// lists: for a cluster reached through a port-forward or a Kubernetes Service. Any node
    /// accepts every request and forwards produces to the leader.
    pub seeds_only: bool,
    /// Largest gRPC message sent or accepted.
    pub max_message_bytes: usize,
}

/// Mutual TLS from PEM bytes: the CA that signed the nodes' certificates, and this client's
/// certificate and key (its Common Name is its identity for the cluster's ACL). The node's name
/// is checked against the host of each address; set [`ClientTlsConfig::domain_name`] on the
/// result to check another name (e.g. behind a load balancer).
pub fn mutual_tls(
    ca_pem: impl AsRef<[u8]>,
    cert_pem: impl AsRef<[u8]>,
    key_pem: impl AsRef<[u8]>,
) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .identity(Identity::from_pem(cert_pem, key_pem))
}

impl ClientConfig {
    /// From the environment the `proglog` CLI reads too: `PROGLOG_ADDR` (seed addresses,
    /// comma-separated), `PROGLOG_CA`, `PROGLOG_CERT`, `PROGLOG_KEY` (PEM files) and, optionally,
    /// `PROGLOG_SERVER_NAME` (the name to check the nodes' certificates against).
    pub fn from_env() -> Result<Self, ClientError> {
        let var = |name: &str| {
            std::env::var(name).map_err(|_| ClientError::Config(format!("{name} is not set")))
        };
        let file = |name: &str| {
            let path = var(name)?;
            std::fs::read(&path)
                .map_err(|e| ClientError::Config(format!("reading {path} ({name}): {e}")))
        };
        let seeds = var("PROGLOG_ADDR")?
            .split(',')
            .map(|addr| addr.trim().to_owned())
            .filter(|addr| !addr.is_empty())
            .collect();
        let mut tls = mutual_tls(
            file("PROGLOG_CA")?,
            file("PROGLOG_CERT")?,
            file("PROGLOG_KEY")?,
        );
        if let Ok(name) = std::env::var("PROGLOG_SERVER_NAME") {
            tls = tls.domain_name(name);
        }
        Ok(Self::new(seeds, tls))
    }

    /// Defaults for a cluster reached through `seeds` with `tls`: 10 s per call, 5 attempts.
    pub fn new(seeds: Vec<String>, tls: ClientTlsConfig) -> Self {
        Self {
            seeds,
            tls,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            max_attempts: 5,
            retry_backoff: Duration::from_millis(100),
            seeds_only: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The configuration has no seed addresses.
    #[error("no seed addresses configured")]
    NoSeeds,
    /// The configuration could not be read (a variable unset, a file unreadable).
    #[error("configuration: {0}")]
    Config(String),
    /// No server could be reached, or none answered the server list.
    #[error("no server reachable: {0}")]
    Unreachable(String),
    /// The produce may or may not have been stored; retrying could duplicate it.
    #[error(
        "the produce's outcome is unknown ({0}); it may have been stored — check before retrying"
    )]
    OutcomeUnknown(Status),
    /// Retries were exhausted on a retryable error (for a produce: every attempt was certainly
    /// not executed, so nothing was stored).
    #[error("gave up after {attempts} attempts: {:?}: {}", .last.code(), .last.message())]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's status.
        last: Status,
    },
    /// The server refused the request (bad input, permission, offset out of range...).
    #[error("{}: {}", .0.code(), .0.message())]
    Rejected(Status),
}

/// A client of one ProgLog cluster.
#[derive(Debug)]
pub struct ClusterClient {
    config: ClientConfig,
    routing: Routing,
}

impl ClusterClient {
    /// A client that learns the cluster's servers from `config.seeds` (with
    /// [`ClientConfig::seeds_only`] it asks nothing: the channels connect on first use).
    pub async fn connect(config: ClientConfig) -> Result<Self, ClientError> {
        if config.seeds.is_empty() {
            return Err(ClientError::NoSeeds);
        }
        let routing = Routing::new(&config);
        let client = Self { config, routing };
        client.refresh().await?;
        Ok(client)
    }

    /// Asks the cluster for its servers and leader again.
    pub async fn refresh(&self) -> Result<(), ClientError> {
        self.routing.refresh(&self.config).await
    }

    /// The leader's address as last seen (with [`ClientConfig::seeds_only`]: the seed in use).
    pub fn leader(&self) -> Option<String> {
        self.routing.leader()
    }

    async fn pause(&self, attempt: u32) {
        let delay = self.config.retry_backoff * 2u32.saturating_pow(attempt.min(5));
        tokio::time::sleep(delay.min(Duration::from_secs(2))).await;
    }

    /// Appends one record through the leader; returns its offset.
    pub async fn produce(&self, value: impl Into<Bytes>) -> Result<u64, ClientError> {
        let record = Record {
            value: value.into(),
            ..Default::default()
        };
        let mut last = None;
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                self.pause(attempt).await;
                // Best effort: a failed refresh leaves the old view, the call below decides.
                let _ = self.refresh().await;
            }
            let Some((addr, mut client)) = self.routing.leader_client(&self.config) else {
                last = Some(not_executed_status(format!(
                    "no leader known; {NOT_EXECUTED_MARK}"
                )));
                continue;
            };
            let mut request = tonic::Request::new(ProduceRequest {
                record: Some(record.clone()),
            });
            request.set_timeout(self.config.request_timeout);
            match client.produce(request).await {
                Ok(response) => return Ok(response.into_inner().offset),
                Err(status) if produce_not_executed(&status) => {
                    self.routing.forget_leader(&addr);
                    last = Some(status);
                }
                Err(status)
                    if status.code() == Code::Unavailable
                        || status.code() == Code::DeadlineExceeded
                        || status.code() == Code::Unknown
                        || status.code() == Code::Cancelled =>
                {
                    self.routing.forget_leader(&addr);
                    return Err(ClientError::OutcomeUnknown(status));
                }
                Err(status) => return Err(ClientError::Rejected(status)),
            }
        }
        Err(ClientError::Exhausted {
            attempts: self.config.max_attempts,
            last: last.unwrap_or_else(|| Status::unavailable("no attempt made")),
        })
    }

    /// Reads the record at `offset` from a follower (the leader if the follower does not have
    /// it yet or there are none).
    pub async fn consume(&self, offset: u64) -> Result<Record, ClientError> {
        let mut last = None;
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                self.pause(attempt).await;
                let _ = self.refresh().await;
            }
            let prefer_leader = matches!(&last, Some(s) if is_out_of_range(s));
            let Some((addr, mut client)) = self.routing.reader_client(&self.config, prefer_leader)
            else {
                last = Some(Status::unavailable("no server known"));
                continue;
            };
            let mut request = tonic::Request::new(ConsumeRequest { offset });
            request.set_timeout(self.config.request_timeout);
            match client.consume(request).await {
                Ok(response) => {
                    return response.into_inner().record.ok_or_else(|| {
                        ClientError::Rejected(Status::internal("response without a record"))
                    });
                }
                Err(status)
                    if is_out_of_range(&status)
                        && !prefer_leader
                        && self.routing.leader().as_deref() != Some(addr.as_str()) =>
                {
                    // The follower may not have applied it yet: ask the leader next (no pause).
                    last = Some(status);
                }
                Err(status) if is_transient(&status) => {
                    self.routing.forget(&addr);
                    last = Some(status);
                }
                Err(status) => return Err(ClientError::Rejected(status)),
            }
        }
        match last {
            Some(status) if is_out_of_range(&status) => Err(ClientError::Rejected(status)),
            Some(status) => Err(ClientError::Exhausted {
                attempts: self.config.max_attempts,
                last: status,
            }),
            None => Err(ClientError::Unreachable("no attempt made".into())),
        }
    }
}

impl ClusterClient {
    /// The cluster's servers (leader marked), as a node reports them.
    pub async fn servers(&self) -> Result<Vec<Server>, ClientError> {
        let timeout = self.config.request_timeout;
        self.read(true, |mut client| async move {
            let request = with_timeout(GetServersRequest {}, timeout);
            Ok(client.get_servers(request).await?.into_inner().servers)
        })
        .await
    }

    /// The log's bounds, from the leader (with [`ClientConfig::seeds_only`], from a seed;
    /// [`Consistency::Linearizable`] makes that node confirm them with the leader).
    pub async fn log_bounds(
        &self,
        consistency: Consistency,
    ) -> Result<GetLogBoundsResponse, ClientError> {
        let timeout = self.config.request_timeout;
        self.read(true, |mut client| async move {
            let request = GetLogBoundsRequest {
                consistency: consistency as i32,
            };
            let request = with_timeout(request, timeout);
            Ok(client.get_log_bounds(request).await?.into_inner())
        })
        .await
    }

    /// A `ConsumeStream` from `offset` on a follower (the leader when there are none): the
    /// committed records, then new ones as they commit. Opening it is retried like a consume;
    /// an error after that ends the stream (resume from the next offset with a new one).
    pub async fn consume_stream(
        &self,
        offset: u64,
    ) -> Result<Streaming<ConsumeResponse>, ClientError> {
        self.read(false, |mut client| async move {
            // No deadline: the stream lasts as long as the caller reads it.
            let request = ConsumeRequest { offset };
            Ok(client.consume_stream(request).await?.into_inner())
        })
        .await
    }

    /// Runs the idempotent read `call` on the leader (`prefer_leader`) or a follower, retried on
    /// another server while servers are unavailable.
    async fn read<T, F, Fut>(&self, prefer_leader: bool, mut call: F) -> Result<T, ClientError>
    where
        F: FnMut(LogClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Status>>,
    {
        let mut last = None;
        for attempt in 0..self.config.max_attempts {
            if attempt > 0 {
                self.pause(attempt).await;
                let _ = self.refresh().await;
            }
            let Some((addr, client)) = self.routing.reader_client(&self.config, prefer_leader)
            else {
                last = Some(Status::unavailable("no server known"));
                continue;
            };
            match call(client).await {
                Ok(answer) => return Ok(answer),
                Err(status) if is_transient(&status) => {
                    self.routing.forget(&addr);
                    last = Some(status);
                }
                Err(status) => return Err(ClientError::Rejected(status)),
            }
        }
        Err(ClientError::Exhausted {
            attempts: self.config.max_attempts,
            last: last.unwrap_or_else(|| Status::unavailable("no attempt made")),
        })
    }
}

fn with_timeout<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

fn is_out_of_range(status: &Status) -> bool {
    status.code() == Code::OutOfRange
}

/// A read that failed this way may succeed on another server or a later attempt (reads are
/// idempotent, so any failure in transport or of availability is worth retrying).
fn is_transient(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Unknown
    )
}
