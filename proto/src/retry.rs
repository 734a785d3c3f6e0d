//! What makes a failed produce safe to retry with the same value, in one place for the node's
//! follower forwarding, the Rust client and the e2e suite's load generator: the node marks every
//! `UNAVAILABLE` refusal of a produce it never appended with [`NOT_EXECUTED_MARK`], and a call
//! that failed while connecting ([`is_connect_failure`]) never reached a server at all.
//!
//! Both are read from the status message today; a typed status detail is the better carrier
//! (issue 10, item 10) and would replace the two functions here, not their callers.

use tonic::{Code, Status};

/// Marker in `UNAVAILABLE` messages of produces refused before they were appended, so clients
/// know a retry cannot duplicate the record.
pub const NOT_EXECUTED_MARK: &str = "the produce was not executed";

/// Whether a call failed before its request could reach the server, so it was certainly not
/// executed: the TCP connect or the TLS handshake failed (tonic reports both as `UNAVAILABLE`
/// with the transport error as the message), or the server rejected our certificate during the
/// handshake (we then see its fatal alert).
pub fn is_connect_failure(status: &Status) -> bool {
    const CONNECT_STAGE: [&str; 8] = [
        // TCP connect (hyper-util) and the generic connector wrapper.
        "tcp connect error",
        "error trying to connect",
        "Connection refused",
        // TLS handshake (rustls error texts, and tonic's own handshake errors).
        "invalid peer certificate",
        "received fatal alert",
        "peer is incompatible",
        "TLS handshake timeout",
        "HTTP/2 was not negotiated",
    ];
    status.code() == Code::Unavailable
        && CONNECT_STAGE
            .iter()
            .any(|stage| status.message().contains(stage))
}

/// Whether a failed produce certainly did not reach the log, so retrying it with the same value
/// cannot store it twice.
pub fn produce_not_executed(status: &Status) -> bool {
    status.code() == Code::Unavailable && status.message().contains(NOT_EXECUTED_MARK)
        || is_connect_failure(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unavailable_refusals_and_connect_failures_are_not_executed() {
        assert!(produce_not_executed(&Status::unavailable(format!(
            "no leader; {NOT_EXECUTED_MARK}"
        ))));
        assert!(produce_not_executed(&Status::unavailable(
            "tcp connect error: refused"
        )));
        assert!(!produce_not_executed(&Status::internal(NOT_EXECUTED_MARK)));
        assert!(!produce_not_executed(&Status::unavailable(
            "the produce may or may not have been committed"
        )));
    }
}
