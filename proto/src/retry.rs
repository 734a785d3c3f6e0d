//! What makes a failed call safe to retry with the same request, in one place for the node's
//! follower forwarding, the Rust client (`proglog_client`) and the e2e suite's load
//! generator. Two kinds of failure certainly did not execute the request, and both are read from
//! structured information, never from the status message:
//!
//! - **The node says so**: every `UNAVAILABLE` a node returns for a request it refused before
//!   executing it (no leader, not the leader, shutting down, the leader unreachable when
//!   forwarding) carries the response metadata [`OUTCOME_KEY`]` = `[`NOT_EXECUTED`] (built by
//!   [`not_executed_status`] / [`mark_not_executed`], read by [`says_not_executed`]). The message
//!   still says it in words ([`NOT_EXECUTED_MARK`]) for people; nothing decides on the words.
//! - **The call never reached a server** ([`is_connect_failure`]): the TCP connect or the TLS
//!   handshake failed. tonic wraps every error of its connector (TCP connect and its timeout,
//!   TLS handshake and its timeout, no HTTP/2 negotiated) in [`tonic::ConnectError`] and keeps
//!   it in the status's source chain; one case is only visible as text (see
//!   [`is_connect_failure`]).
//!
//! A status received from a server has no source chain, so the second kind can only be a local
//! observation, and a server's message that happens to contain transport words changes nothing.

use std::error::Error;

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

/// Response metadata key (trailer) of statuses whose request the node did not execute.
pub const OUTCOME_KEY: &str = "proglog-outcome";

/// The value of [`OUTCOME_KEY`] for a request the node refused before executing it, so a retry
/// with the same request cannot execute it twice.
pub const NOT_EXECUTED: &str = "not-executed";

/// The words in the message of a refused produce, for people reading it (decisions use
/// [`OUTCOME_KEY`]).
pub const NOT_EXECUTED_MARK: &str = "the produce was not executed";

/// An `UNAVAILABLE` status saying the request was not executed (see [`says_not_executed`]).
pub fn not_executed_status(message: impl Into<String>) -> Status {
    let mut status = Status::unavailable(message);
    mark_not_executed(&mut status);
    status
}

/// Adds the not-executed metadata to `status` (meaningful on `UNAVAILABLE` only).
pub fn mark_not_executed(status: &mut Status) {
    status
        .metadata_mut()
        .insert(OUTCOME_KEY, MetadataValue::from_static(NOT_EXECUTED));
}

/// Whether `status` is an `UNAVAILABLE` whose metadata says the node did not execute the request.
pub fn says_not_executed(status: &Status) -> bool {
    status.code() == Code::Unavailable && metadata_says_not_executed(status.metadata())
}

fn metadata_says_not_executed(metadata: &MetadataMap) -> bool {
    metadata
        .get_all(OUTCOME_KEY)
        .iter()
        .any(|value| value.as_bytes() == NOT_EXECUTED.as_bytes())
}

/// Alerts a TLS server sends about the client's certificate. A server only checks the
/// certificate during the handshake, before it reads any request on the connection.
const CERTIFICATE_ALERTS: [&str; 8] = [
    "BadCertificate",
    "UnsupportedCertificate",
    "CertificateRevoked",
    "CertificateExpired",
    "CertificateUnknown",
    "UnknownCA",
    "AccessDenied",
    "CertificateRequired",
];

/// Whether the call failed before its request could reach the server, so it was certainly not
/// executed. Decided from the status's source chain, which only a locally failed call has:
///
/// - a [`tonic::ConnectError`] anywhere in it: the connector failed (TCP connect, connect
///   timeout, TLS handshake — including our rejection of the server's certificate — handshake
///   timeout, HTTP/2 not negotiated);
/// - an `InvalidData` [`std::io::Error`] that is a certificate alert from the server: with TLS
///   1.3 the server checks our certificate after our side of the handshake has finished, so its
///   refusal (e.g. a certificate from another CA, or expired) arrives on the first read, when the
///   connection is already hyper's. Only this case is recognised by text, because hyper and h2
///   keep just the kind and the text of the I/O error (rustls's typed `AlertReceived` is gone by
///   then); the match is narrow: rustls's exact words and the certificate alerts only (another
///   alert may end a connection that had already carried requests).
pub fn is_connect_failure(status: &Status) -> bool {
    let mut source = status.source();
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && is_certificate_alert(io)
        {
            return true;
        }
        source = error.source();
    }
    false
}

fn is_certificate_alert(io: &std::io::Error) -> bool {
    // rustls's `Error::AlertReceived` reads "received fatal alert: {description:?}".
    let Some(text) = io.get_ref().map(ToString::to_string) else {
        return false;
    };
    io.kind() == std::io::ErrorKind::InvalidData
        && text
            .strip_prefix("received fatal alert: ")
            .is_some_and(|alert| CERTIFICATE_ALERTS.contains(&alert))
}

/// Whether a failed produce certainly did not reach the log, so retrying it with the same value
/// cannot store it twice: the node said so, or the call never reached a node.
pub fn produce_not_executed(status: &Status) -> bool {
    says_not_executed(status) || is_connect_failure(status)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// An `UNAVAILABLE` status as a node sends it for a produce it refused, with the metadata
    /// `proglog-outcome: not-executed` and whatever message.
    fn marked(message: &str) -> Status {
        let mut metadata = tonic::metadata::MetadataMap::new();
        metadata.insert("proglog-outcome", "not-executed".parse().unwrap());
        Status::with_metadata(Code::Unavailable, message, metadata)
    }

    #[test]
    fn the_metadata_not_the_message_says_not_executed() {
        assert!(produce_not_executed(&marked("no leader known; retry")));
        assert!(produce_not_executed(&marked("")));
        // The old words without the metadata: the answer of some other server, or a message that
        // merely quotes them.
        assert!(!produce_not_executed(&Status::unavailable(format!(
            "forwarding failed ({NOT_EXECUTED_MARK}); the produce may or may not have been \
             committed"
        ))));
        // The metadata only counts on UNAVAILABLE.
        let internal = Status::with_metadata(Code::Internal, "x", marked("x").metadata().clone());
        assert!(!produce_not_executed(&internal));
    }

    #[test]
    fn connect_failures_are_recognised_from_the_error_chain_not_the_message() {
        // What tonic makes of a failed connect: its `ConnectError` ends up in the source chain,
        // whatever the text.
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(refused))));
        assert!(is_connect_failure(&status), "{status:?}");
        let odd = std::io::Error::other("some connector failure with unusual words");
        let status = Status::from_error(Box::new(tonic::ConnectError(Box::new(odd))));
        assert!(is_connect_failure(&status), "{status:?}");
        assert!(produce_not_executed(&status));
        // The same words received from a server (no local source): not a connect failure here.
        let relayed = Status::unavailable("tcp connect error: Connection refused (os error 111)");
        assert!(!is_connect_failure(&relayed));
        assert!(!produce_not_executed(&relayed));
    }

    #[test]
    fn a_certificate_alert_after_the_handshake_is_a_connect_failure() {
        // TLS 1.3: the server checks our certificate after our side of the handshake finished,
        // so its alert arrives on the first read; hyper and h2 keep only the error's kind and
        // text, and tonic reports `UNKNOWN` "transport error".
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA).to_string();
        let mut status = Status::unknown("transport error");
        status.set_source(Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            alert.clone(),
        )));
        assert!(is_connect_failure(&status), "{status:?}");
        // Other alerts can end an established connection: the outcome is unknown.
        let mut status = Status::unknown("transport error");
        status.set_source(Arc::new(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::DecryptError).to_string(),
        )));
        assert!(!is_connect_failure(&status), "{status:?}");
        // The text in a message from a server is not evidence.
        assert!(!is_connect_failure(&Status::unavailable(alert)));
    }

    #[test]
    fn not_executed_statuses_carry_the_metadata_over_the_wire() {
        let status = not_executed_status(format!("no leader known; {NOT_EXECUTED_MARK}"));
        assert_eq!(status.code(), Code::Unavailable);
        assert!(says_not_executed(&status));
        // What a client decodes from the trailers the server writes.
        let response = status.into_http::<()>();
        let received = Status::from_header_map(response.headers()).expect("a status");
        assert!(says_not_executed(&received), "{received:?}");
        assert!(produce_not_executed(&received));
        assert!(received.message().contains(NOT_EXECUTED_MARK));
    }

    #[test]
    fn unknown_outcomes_are_not_safe_to_retry() {
        assert!(!produce_not_executed(&Status::unavailable(
            "no quorum within 10s; the produce may or may not have been committed"
        )));
        assert!(!produce_not_executed(&Status::deadline_exceeded("timeout")));
        assert!(!produce_not_executed(&Status::unknown("transport error")));
    }
}
