//! A steady producer: N concurrent clients produce unique values at a bounded rate through one
//! port-forward to the client Service, for as long as a scenario disturbs the cluster.
//!
//! Every value is produced until it is acknowledged, refused, or its outcome becomes unknown.
//! A failed produce is retried with the same value only when it certainly was not executed
//! (`UNAVAILABLE` carrying the node's not-executed metadata, or a failure to connect at all:
//! `proglog_proto::retry::produce_not_executed`), exactly the rule of the client library
//! (`proglog-client`, node/client): anything else could have stored the record, so it is recorded as a failure
//! with an unknown outcome and never retried.
//! [`Load::stop`] returns the [`History`]: every acknowledged `(value, offset)` and every failure.
//! A producer connects with its [`Credentials`] as they are at that moment and reconnects
//! between two produces when they changed (an application following a CA rotation).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use proglog_proto::log::v1::{ProduceRequest, Record, log_client::LogClient};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tonic::{Code, Status, transport::Channel};

use crate::{
    E2eError,
    credentials::Credentials,
    log_client::{self, PemPair},
    port_forward::SharedForward,
    wait::{Check, until},
};

pub use proglog_proto::retry::produce_not_executed as not_executed;

/// Whether the server refused the request outright (it stored nothing, and retrying will not help).
fn refused(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::InvalidArgument
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted
            | Code::NotFound
            | Code::AlreadyExists
            | Code::Unimplemented
    )
}

/// An error with its sources (a failed TLS handshake says why only in its source chain).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How hard the load pushes.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent clients, each with its own connection.
    pub clients: usize,
    /// Pause between two produces of one client (the rate bound).
    pub interval: Duration,
    /// Deadline of each produce call.
    pub request_timeout: Duration,
    /// How long one value is retried after "not executed" answers before it counts as failed.
    pub retry_budget: Duration,
}

impl Default for LoadConfig {
    fn default() -> Self {
        Self {
            clients: 4,
            interval: Duration::from_millis(50),
            request_timeout: Duration::from_secs(10),
            retry_budget: Duration::from_secs(120),
        }
    }
}

/// An acknowledged record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The unique value produced.
    pub value: Bytes,
    /// The offset the cluster acknowledged.
    pub offset: u64,
    /// When, since the load started.
    pub at: Duration,
}

/// What is known about a produce that did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It may or may not have been stored (a timeout, a connection lost mid-call, a leader change
    /// after the entry was appended); never retried.
    Unknown,
    /// The server refused it; nothing was stored.
    Refused,
    /// Every attempt was refused before execution until the retry budget ran out; not stored.
    NotExecuted,
}

/// A produce that did not succeed.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The value.
    pub value: Bytes,
    /// What is known about it.
    pub outcome: Outcome,
    /// The last error.
    pub error: String,
    /// When, since the load started.
    pub at: Duration,
}

/// Everything the load did.
#[derive(Debug, Default, Clone)]
pub struct History {
    /// Acknowledged records, per client in production order.
    pub acks: Vec<Ack>,
    /// Produces that did not succeed.
    pub failures: Vec<Failure>,
    /// Attempts refused as "not executed" (or failed to connect) and retried with the same value.
    pub safe_retries: u64,
    /// Every distinct error behind those retries, with how often it was seen.
    pub retry_errors: BTreeMap<String, u64>,
    /// Values still being retried (never executed) when the load was stopped.
    pub abandoned: u64,
    /// How long the load ran.
    pub elapsed: Duration,
}

impl History {
    /// One line for the test output.
    pub fn summary(&self) -> String {
        let count = |outcome| {
            self.failures
                .iter()
                .filter(|f| f.outcome == outcome)
                .count()
        };
        format!(
            "{} acknowledged in {:?}, {} safe retries, {} failures ({} outcome unknown, {} refused, \
             {} not executed after retries), {} abandoned at stop; retried errors: {:?}",
            self.acks.len(),
            self.elapsed,
            self.safe_retries,
            self.failures.len(),
            count(Outcome::Unknown),
            count(Outcome::Refused),
            count(Outcome::NotExecuted),
            self.abandoned,
            self.retry_errors,
        )
    }

    /// Acknowledgements received after `at` (since the load started).
    pub fn acks_after(&self, at: Duration) -> usize {
        self.acks.iter().filter(|ack| ack.at > at).count()
    }

    /// The highest acknowledged offset.
    pub fn max_offset(&self) -> Option<u64> {
        self.acks.iter().map(|ack| ack.offset).max()
    }
}

/// Running producers; [`Load::stop`] ends them.
#[derive(Debug)]
pub struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<History>>,
    acked: Arc<AtomicU64>,
    started: Instant,
}

struct Producer {
    id: usize,
    run: String,
    forward: Arc<SharedForward>,
    credentials: Credentials,
    config: LoadConfig,
    acked: Arc<AtomicU64>,
    started: Instant,
}

impl Load {
    /// Starts `config.clients` producers through `forward` (a forward to the client Service).
    pub fn start(
        forward: Arc<SharedForward>,
        ca_pem: &str,
        identity: &PemPair,
        config: LoadConfig,
    ) -> Self {
        Self::start_with_forwards(&[forward], ca_pem, identity, config)
    }

    /// [`Load::start`] with producer `i` going through `forwards[i % forwards.len()]`.
    /// `kubectl port-forward` exits at the first connection it cannot open — a client dialling
    /// a pod that is shutting down — and cuts every other connection through it, including a
    /// produce the draining node would still have answered (its outcome is then unknown). A
    /// forward per producer confines that to the producer whose dial failed, which had nothing
    /// in flight: what a scenario restarting the forwarded pod under load needs.
    pub fn start_with_forwards(
        forwards: &[Arc<SharedForward>],
        ca_pem: &str,
        identity: &PemPair,
        config: LoadConfig,
    ) -> Self {
        Self::start_following(forwards, &Credentials::fixed(ca_pem, identity), config)
    }

    /// [`Load::start_with_forwards`] with credentials that may change while it runs.
    pub fn start_following(
        forwards: &[Arc<SharedForward>],
        credentials: &Credentials,
        config: LoadConfig,
    ) -> Self {
        assert!(!forwards.is_empty(), "a load needs a forward");
        let (stop, stopped) = watch::channel(false);
        let acked = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let run = format!("{:08x}", rand::random::<u32>());
        let tasks = (0..config.clients)
            .map(|id| {
                let producer = Producer {
                    id,
                    run: run.clone(),
                    forward: forwards[id % forwards.len()].clone(),
                    credentials: credentials.clone(),
                    config: config.clone(),
                    acked: acked.clone(),
                    started,
                };
                tokio::spawn(producer.run(stopped.clone()))
            })
            .collect();
        Self {
            stop,
            tasks,
            acked,
            started,
        }
    }

    /// Acknowledged produces so far.
    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Time since the load started (to compare with [`Ack::at`]).
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Waits until `more` produces beyond the current count are acknowledged: the cluster
    /// accepts writes again.
    pub async fn wait_for_progress(&self, more: u64, timeout: Duration) -> Result<(), E2eError> {
        let target = self.acked() + more;
        until(
            &format!("{more} more acknowledged produces"),
            timeout,
            || async {
                let now = self.acked();
                Ok(if now >= target {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{now} acknowledged, want {target}"))
                })
            },
        )
        .await
    }

    /// Stops every producer (in-flight calls finish) and returns the merged history.
    pub async fn stop(self) -> History {
        let _ = self.stop.send(true);
        let mut history = History::default();
        for task in self.tasks {
            match task.await {
                Ok(part) => {
                    history.acks.extend(part.acks);
                    history.failures.extend(part.failures);
                    history.safe_retries += part.safe_retries;
                    history.abandoned += part.abandoned;
                    for (error, count) in part.retry_errors {
                        *history.retry_errors.entry(error).or_default() += count;
                    }
                }
                Err(err) => history.failures.push(Failure {
                    value: Bytes::new(),
                    outcome: Outcome::Unknown,
                    error: format!("producer task failed: {err}"),
                    at: self.started.elapsed(),
                }),
            }
        }
        history.elapsed = self.started.elapsed();
        history
    }
}

impl Producer {
    /// A client with the current credentials, and their version.
    async fn connect(&self) -> Result<(LogClient<Channel>, u64), String> {
        let (port, generation) = self.forward.port().await.map_err(|e| e.to_string())?;
        let credentials = self.credentials.current();
        match log_client::connect(port, &credentials.ca_pem, &credentials.identity).await {
            Ok(client) => Ok((client, credentials.version)),
            Err(err) => {
                // The pod behind the forward may be gone: the next connection gets a new one.
                let _ = self.forward.restart(generation).await;
                Err(error_chain(&err))
            }
        }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) -> History {
        let mut history = History::default();
        let mut client: Option<LogClient<Channel>> = None;
        let mut connected_with = 0;
        let mut next = Instant::now();
        for seq in 0u64.. {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = stopped.wait_for(|stop| *stop) => break,
            }
            if *stopped.borrow() {
                break;
            }
            next = (next + self.config.interval).max(Instant::now());
            let value = Bytes::from(format!("load-{}-c{}-{seq:09}", self.run, self.id));
            let first_attempt = Instant::now();
            let mut backoff = Duration::from_millis(100);
            loop {
                // Nothing is in flight: the connection may be replaced by one with the new
                // credentials.
                if self.credentials.version() != connected_with {
                    client = None;
                }
                let retry_error = match client.as_mut() {
                    None => match self.connect().await {
                        Ok((connected, version)) => {
                            client = Some(connected);
                            connected_with = version;
                            continue;
                        }
                        // Nothing was sent: as safe to retry as a refused connection.
                        Err(error) => format!("connect: {error}"),
                    },
                    Some(log) => {
                        let mut request = tonic::Request::new(ProduceRequest {
                            record: Some(Record {
                                value: value.clone(),
                                ..Record::default()
                            }),
                        });
                        request.set_timeout(self.config.request_timeout);
                        match log.produce(request).await {
                            Ok(response) => {
                                history.acks.push(Ack {
                                    value: value.clone(),
                                    offset: response.into_inner().offset,
                                    at: self.started.elapsed(),
                                });
                                self.acked.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            Err(status) if not_executed(&status) => {
                                // Another node (or connection) may do better.
                                client = None;
                                format!("{:?}: {}", status.code(), status.message())
                            }
                            Err(status) => {
                                let outcome = if refused(&status) {
                                    Outcome::Refused
                                } else {
                                    client = None;
                                    Outcome::Unknown
                                };
                                history.failures.push(Failure {
                                    value: value.clone(),
                                    outcome,
                                    // With the source chain: a transport failure says what broke
                                    // (a reset, a GOAWAY, a timeout) only there.
                                    error: error_chain(&status),
                                    at: self.started.elapsed(),
                                });
                                break;
                            }
                        }
                    }
                };
                history.safe_retries += 1;
                *history.retry_errors.entry(retry_error.clone()).or_default() += 1;
                if first_attempt.elapsed() > self.config.retry_budget {
                    history.failures.push(Failure {
                        value: value.clone(),
                        outcome: Outcome::NotExecuted,
                        error: retry_error,
                        at: self.started.elapsed(),
                    });
                    break;
                }
                if *stopped.borrow() {
                    history.abandoned += 1;
                    return history;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
        history
    }
}

/// Produces `values` over one `ProduceStream` (the node pipelines them, so thousands take
/// seconds even through a port-forward) and pairs each response with its value, in order.
/// Fails on the first error: for runs where nothing is disturbed.
pub async fn produce_stream(
    mut client: LogClient<Channel>,
    values: Vec<Bytes>,
    started: Instant,
) -> Result<Vec<Ack>, E2eError> {
    let requests: Vec<ProduceRequest> = values
        .iter()
        .map(|value| ProduceRequest {
            record: Some(Record {
                value: value.clone(),
                ..Record::default()
            }),
        })
        .collect();
    let mut responses = client
        .produce_stream(futures::stream::iter(requests))
        .await?
        .into_inner();
    let mut acks = Vec::with_capacity(values.len());
    for value in values {
        let response = tokio::time::timeout(Duration::from_secs(60), responses.message())
            .await
            .map_err(|_| {
                E2eError::Unexpected(format!(
                    "no ProduceStream response within 60 s after {} acknowledgements",
                    acks.len()
                ))
            })??
            .ok_or_else(|| {
                E2eError::Unexpected(format!(
                    "ProduceStream ended after {} of the records",
                    acks.len()
                ))
            })?;
        acks.push(Ack {
            value,
            offset: response.offset,
            at: started.elapsed(),
        });
    }
    Ok(acks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_before_execution_are_safe_to_retry() {
        use proglog_proto::retry::{NOT_EXECUTED_MARK, not_executed_status};

        let not_leader = not_executed_status(format!(
            "this node is not the leader; {NOT_EXECUTED_MARK}; the leader is node 2; retry"
        ));
        assert!(not_executed(&not_leader));
        // What tonic reports when the port-forward's pod is gone.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(not_executed(&Status::from_error(Box::new(
            tonic::ConnectError(Box::new(refused))
        ))));
        let unknown = Status::unavailable(
            "no quorum within 5s; the produce may or may not have been committed; retry",
        );
        assert!(!not_executed(&unknown));
        assert!(!not_executed(&Status::deadline_exceeded("timeout")));
        // The words alone (no metadata) decide nothing.
        assert!(!not_executed(&Status::unavailable(NOT_EXECUTED_MARK)));
    }

    #[test]
    fn refusals_are_the_codes_of_requests_the_server_rejected() {
        assert!(refused(&Status::permission_denied("acl")));
        assert!(refused(&Status::invalid_argument("too large")));
        assert!(!refused(&Status::unavailable("x")));
        assert!(!refused(&Status::unknown("x")));
    }
}
