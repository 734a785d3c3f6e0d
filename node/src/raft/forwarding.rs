//! What a follower sends on to the leader, and how openraft's "not the leader" becomes an error:
//! produces ([`ForwardProduces`]: concurrent ones batched into one RPC), linearizable
//! `GetLogBounds` and admin membership changes forwarded over the pooled Raft channel, the one
//! mapping of openraft's
//! `ForwardToLeader` to an error, and [`is_connect_failure`], which tells a failed forward that
//! certainly never reached the leader (safe to retry) from one whose outcome is unknown.
//!
//! Refusals of requests that had no effect are [`BackendError::NotExecuted`], which
//! `server::status` sends as `UNAVAILABLE` with the not-executed metadata of
//! `proglog_proto::retry`. A forward keeps that mark only when it certainly did not execute the
//! request: it never reached the leader, or the leader's own answer carries the mark.

use std::sync::Weak;

use openraft::errors::{ForwardToLeader, LinearizableReadError, RaftError};
use proglog_proto::log::v1::Record;
use proglog_proto::proglog::raft::v1 as pb;
use proglog_proto::retry::{not_executed_status, says_not_executed};
use tonic::Status;

use super::batcher::Submit;
use super::channel_pool::ChannelPool;
use super::node::{NOT_EXECUTED_MARK, RaftNode};
use super::types::{ProduceApplied, TypeConfig};
use crate::backend::{Appended, BackendError, LogBounds};

/// The first words of every error caused by not knowing a leader (no raw openraft text such as
/// "has to forward request to: None, None" reaches a client).
pub const NO_LEADER_KNOWN: &str = "no leader known; the cluster may be electing or has lost quorum";

/// The error for a request this node refused because it is not the leader (openraft's
/// `ForwardToLeader`). `not_executed` says in words what was not done, e.g. "the produce was not
/// executed"; the request was refused before it had any effect, so it is
/// [`BackendError::NotExecuted`] and retrying is safe.
pub fn not_leader_error(forward: &ForwardToLeader<TypeConfig>, not_executed: &str) -> BackendError {
    match (forward.leader_id, &forward.leader_node) {
        (Some(id), Some(node)) => BackendError::NotExecuted(format!(
            "this node is not the leader; {not_executed}; the leader is node {id} at {}; retry \
             there",
            node.addr
        )),
        _ => no_leader_error(not_executed),
    }
}

/// The error when no leader is known (see [`NO_LEADER_KNOWN`]); the request was refused, so it
/// is [`BackendError::NotExecuted`].
pub fn no_leader_error(not_executed: &str) -> BackendError {
    BackendError::NotExecuted(format!("{NO_LEADER_KNOWN}; {not_executed}; retry"))
}

/// The error of a failed read-index (`ensure_linearizable`).
pub fn linearizable_error(
    error: RaftError<TypeConfig, LinearizableReadError<TypeConfig>>,
) -> BackendError {
    match error {
        RaftError::APIError(LinearizableReadError::ForwardToLeader(forward)) => {
            not_leader_error(&forward, "the read was not executed")
        }
        RaftError::APIError(LinearizableReadError::QuorumNotEnough(e)) => {
            BackendError::Unavailable(format!("{e}; retry shortly"))
        }
        RaftError::Fatal(fatal) => {
            BackendError::Unavailable(format!("raft stopped on this node: {fatal}"))
        }
    }
}

pub use proglog_proto::retry::is_connect_failure;

/// A linearizable read of the leader's bounds, asked of the leader at `leader_addr`.
pub async fn forward_linearizable_bounds(
    pool: &ChannelPool,
    leader_addr: &str,
    timeout: std::time::Duration,
) -> Result<LogBounds, BackendError> {
    let mut client = pool.raft_client(leader_addr).map_err(|e| {
        BackendError::NotExecuted(format!(
            "leader address {leader_addr}: {e}; the read was not executed"
        ))
    })?;
    let mut request = tonic::Request::new(pb::ForwardLinearizableBoundsRequest {});
    request.set_timeout(timeout);
    match client.forward_linearizable_bounds(request).await {
        Ok(response) => {
            let response = response.into_inner();
            Ok(LogBounds {
                lowest: response.lowest_offset,
                next: response.next_offset,
            })
        }
        Err(status) if is_connect_failure(&status) => Err(BackendError::NotExecuted(format!(
            "the leader at {leader_addr} is unreachable ({}); the read was not executed; retry \
             shortly",
            status.message()
        ))),
        Err(status) if says_not_executed(&status) => Err(BackendError::NotExecuted(format!(
            "the leader at {leader_addr} did not execute the linearizable read: {}",
            status.message()
        ))),
        Err(status) => Err(BackendError::Unavailable(format!(
            "the leader at {leader_addr} could not serve the linearizable read: {}",
            status.message()
        ))),
    }
}

/// An admin membership change executed by the leader at `leader_addr`; its answer (or error
/// status, with its metadata) is returned unchanged, except that a forward that never reached
/// the leader is a not-executed `UNAVAILABLE`.
pub async fn forward_admin(
    pool: &ChannelPool,
    leader_addr: &str,
    request: pb::forward_admin_request::Request,
) -> Result<pb::forward_admin_response::Response, Status> {
    let mut client = pool.raft_client(leader_addr).map_err(|e| {
        not_executed_status(format!(
            "leader address {leader_addr}: {e}; the membership change was not executed"
        ))
    })?;
    let request = pb::ForwardAdminRequest {
        request: Some(request),
    };
    match client.forward_admin(request).await {
        Ok(response) => response
            .into_inner()
            .response
            .ok_or_else(|| Status::internal("the leader sent an empty admin answer")),
        Err(status) if is_connect_failure(&status) => Err(not_executed_status(format!(
            "the leader at {leader_addr} is unreachable ({}); the membership change was not \
             executed; retry shortly",
            status.message()
        ))),
        Err(status) => Err(status),
    }
}

#[cfg(test)]
mod tests {
    use openraft::BasicNode;
    use rustls::{AlertDescription, CertificateError};

    use super::*;
    use crate::server::status::backend_status;

    /// What tonic makes of an error of its connector: `UNAVAILABLE` with the error's text, and
    /// the error (inside a `tonic::ConnectError`) as the status's source.
    fn connect_status(error: impl std::error::Error + Send + Sync + 'static) -> Status {
        Status::from_error(Box::new(tonic::ConnectError(Box::new(error))))
    }

    #[test]
    fn tls_handshake_failures_are_connect_failures() {
        let rejected_server = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let rejected_client = rustls::Error::AlertReceived(AlertDescription::BadCertificate);
        let expired = rustls::Error::InvalidCertificate(CertificateError::Expired);
        for error in [rejected_server, rejected_client, expired] {
            // tokio-rustls hands rustls errors to tonic inside an io::Error.
            let io = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
            let status = connect_status(io);
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert!(
                is_connect_failure(&status),
                "a TLS handshake failure is a connect failure: {status:?}"
            );
        }
    }

    #[test]
    fn tcp_connect_failures_are_connect_failures() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_connect_failure(&connect_status(refused)));
    }

    #[test]
    fn other_failures_are_not_connect_failures() {
        // After the request was sent the outcome is unknown.
        assert!(!is_connect_failure(&Status::unavailable(
            "error reading a body from connection"
        )));
        assert!(!is_connect_failure(&Status::unavailable(
            "no quorum within 10s; the produce may or may not have been committed"
        )));
        // Connect-failure words in a status received from another node are not ours: a node
        // that failed to reach someone else.
        assert!(!is_connect_failure(&Status::unavailable(
            "tcp connect error: Connection refused (os error 111)"
        )));
    }

    #[test]
    fn not_leader_errors_name_the_leader_or_say_none_is_known() {
        let unknown = ForwardToLeader::<TypeConfig>::empty();
        let message = not_leader_error(&unknown, "the produce was not executed").to_string();
        assert!(message.contains(NO_LEADER_KNOWN), "{message}");
        assert!(
            message.contains("the produce was not executed"),
            "{message}"
        );
        assert!(!message.contains("None"), "{message}");

        let known = ForwardToLeader::<TypeConfig>::new(7, BasicNode::new("127.0.0.1:9"));
        let message = not_leader_error(&known, "the read was not executed").to_string();
        assert!(message.contains("node 7 at 127.0.0.1:9"), "{message}");
    }

    #[test]
    fn refusals_are_sent_as_not_executed_statuses() {
        let known = ForwardToLeader::<TypeConfig>::new(7, BasicNode::new("127.0.0.1:9"));
        for error in [
            not_leader_error(&known, NOT_EXECUTED_MARK),
            not_leader_error(&ForwardToLeader::empty(), NOT_EXECUTED_MARK),
            no_leader_error(NOT_EXECUTED_MARK),
        ] {
            let status = backend_status(&error);
            assert_eq!(status.code(), tonic::Code::Unavailable);
            assert!(says_not_executed(&status), "{status:?}");
            assert!(status.message().contains(NOT_EXECUTED_MARK), "{status:?}");
        }
        // An unknown outcome is UNAVAILABLE without the mark.
        let unknown =
            BackendError::Unavailable("the produce may or may not have been committed".into());
        assert!(!says_not_executed(&backend_status(&unknown)));
    }

    #[test]
    fn a_forward_is_not_executed_only_when_it_never_reached_the_leader_or_the_leader_says_so() {
        let leader = "10.0.0.7:8400";
        // The leader's refusal, as the follower receives it.
        let refused = backend_status(&no_leader_error(NOT_EXECUTED_MARK));
        let error = forward_produce_error(leader, &refused);
        assert!(matches!(error, BackendError::NotExecuted(_)), "{error:?}");
        assert!(says_not_executed(&backend_status(&error)));
        // Never sent.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let error = forward_produce_error(leader, &connect_status(refused));
        assert!(matches!(error, BackendError::NotExecuted(_)), "{error:?}");
        // The leader's words without its mark, a timeout, a lost connection: unknown outcome.
        for status in [
            Status::unavailable(format!("quoting '{NOT_EXECUTED_MARK}' proves nothing")),
            Status::deadline_exceeded("deadline"),
            Status::unknown("transport error"),
        ] {
            let error = forward_produce_error(leader, &status);
            assert!(matches!(error, BackendError::Unavailable(_)), "{error:?}");
            assert!(!says_not_executed(&backend_status(&error)));
        }
        // The leader's verdicts on the records pass through.
        assert!(matches!(
            forward_produce_error(leader, &Status::invalid_argument("too large")),
            BackendError::InvalidArgument(_)
        ));
    }
}

/// Sends `records` to the leader at `leader_addr` with `ForwardProduce`; the leader's offsets.
pub async fn forward_produce(
    pool: &ChannelPool,
    leader_addr: &str,
    records: Vec<Record>,
    deadline: tokio::time::Instant,
) -> Result<Appended, BackendError> {
    let mut client = pool.raft_client(leader_addr).map_err(|e| {
        BackendError::NotExecuted(format!(
            "leader address {leader_addr}: {e}; {NOT_EXECUTED_MARK}"
        ))
    })?;
    let mut request = tonic::Request::new(pb::ForwardProduceRequest { records });
    request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
    match client.forward_produce(request).await {
        Ok(response) => {
            let response = response.into_inner();
            Ok(Appended {
                first_offset: response.first_offset,
                count: response.count,
            })
        }
        Err(status) => Err(forward_produce_error(leader_addr, &status)),
    }
}

/// The error of a `ForwardProduce` that failed with `status`: not executed when it never reached
/// the leader or the leader's answer says so; otherwise the outcome is unknown, whatever the
/// message says.
fn forward_produce_error(leader_addr: &str, status: &Status) -> BackendError {
    if is_connect_failure(status) {
        return BackendError::NotExecuted(format!(
            "the leader at {leader_addr} is unreachable ({}); {NOT_EXECUTED_MARK}; retry shortly",
            status.message()
        ));
    }
    if says_not_executed(status) {
        return BackendError::NotExecuted(format!(
            "{NOT_EXECUTED_MARK} by the leader at {leader_addr}: {}",
            status.message()
        ));
    }
    match status.code() {
        tonic::Code::InvalidArgument => BackendError::InvalidArgument(status.message().into()),
        tonic::Code::Internal => BackendError::Storage(status.message().into()),
        _ => BackendError::Unavailable(format!(
            "forwarding to the leader at {leader_addr} failed ({}); the produce may or may not \
             have been committed; retry",
            status.message()
        )),
    }
}

/// A follower's [`Submit`] for produces: one `ForwardProduce` RPC per batch, to whoever leads
/// when the batch is sent (this node itself if it has become the leader meanwhile).
#[derive(Debug, Clone)]
pub struct ForwardProduces {
    node: Weak<RaftNode>,
}

impl ForwardProduces {
    /// Forwards for `node` (weak: the node owns the batcher that owns this).
    pub fn new(node: Weak<RaftNode>) -> Self {
        Self { node }
    }
}

impl Submit for ForwardProduces {
    type Error = BackendError;

    async fn submit(&self, records: Vec<Record>) -> Result<ProduceApplied, BackendError> {
        let Some(node) = self.node.upgrade() else {
            return Err(self.stopped());
        };
        let deadline = tokio::time::Instant::now() + node.propose_timeout();
        match node.leader() {
            Some((leader, addr)) if leader != node.node_id() => {
                node.count_forward_rpc();
                forward_produce(node.pool(), &addr, records, deadline).await
            }
            Some(_) => node.propose_local(records).await,
            None => Err(no_leader_error(NOT_EXECUTED_MARK)),
        }
    }

    fn stopped(&self) -> BackendError {
        BackendError::NotExecuted(format!(
            "this node is shutting down; {NOT_EXECUTED_MARK}; retry on another node"
        ))
    }

    fn abandoned(&self) -> BackendError {
        // The forward may have been sent before its task was dropped.
        BackendError::Unavailable(
            "this node is shutting down; the produce may or may not have been committed".into(),
        )
    }
}
