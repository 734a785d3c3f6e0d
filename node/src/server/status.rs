//! The one place where errors become gRPC statuses: offsets outside the log are
//! `OUT_OF_RANGE` with a `google.rpc.LocalizedMessage` detail, too-large records
//! `INVALID_ARGUMENT` (or `RESOURCE_EXHAUSTED` for a whole message over the limit), no leader
//! `UNAVAILABLE`, storage failures `INTERNAL`.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::backend::BackendError;

/// The locale of the `LocalizedMessage` details.
pub const LOCALE: &str = "en-US";

/// The gRPC status for a backend error.
pub fn backend_status(error: &BackendError) -> Status {
    match error {
        BackendError::OffsetPastEnd { offset, .. } => out_of_range(
            error.to_string(),
            format!("The requested offset is outside the log's range: {offset}"),
        ),
        BackendError::OffsetBelowStart { offset, lowest } => out_of_range(
            error.to_string(),
            format!(
                "The requested offset is outside the log's range: {offset} \
                 (below the retention start {lowest})"
            ),
        ),
        BackendError::RecordTooLarge { .. } | BackendError::InvalidArgument(_) => {
            Status::invalid_argument(error.to_string())
        }
        BackendError::Unavailable(_) => Status::unavailable(error.to_string()),
        BackendError::NotExecuted(_) => {
            proglog_proto::retry::not_executed_status(error.to_string())
        }
        BackendError::Closed => {
            Status::unavailable("the node is shutting down; retry another node")
        }
        BackendError::Storage(_) => Status::internal(error.to_string()),
    }
}

fn out_of_range(message: String, localized: String) -> Status {
    Status::with_error_details(
        Code::OutOfRange,
        message,
        ErrorDetails::with_localized_message(LOCALE, localized),
    )
}

/// A record whose value exceeds the configured maximum record size.
pub fn record_too_large(size: usize, max: u64) -> Status {
    Status::invalid_argument(format!(
        "record value of {size} bytes exceeds the maximum record size of {max} bytes"
    ))
}

/// A required field is missing.
pub fn missing_field(field: &str) -> Status {
    Status::invalid_argument(format!("{field} is required"))
}

/// The node is stopping.
pub fn shutting_down() -> Status {
    Status::unavailable("the node is shutting down; retry another node")
}

/// Whether tonic produced `status` because a message exceeded the size limit. tonic reports
/// that as `OUT_OF_RANGE`, which our API reserves for offsets.
fn is_message_too_large(code: Code, message: &str) -> bool {
    code == Code::OutOfRange
        && (message.contains("message length too large")
            || message.contains("message%20length%20too%20large"))
}

/// Rewrites tonic's "message too large" `OUT_OF_RANGE` into `RESOURCE_EXHAUSTED`; leaves any
/// other status alone. Used on statuses returned by `Streaming::message`.
pub fn decode_status(status: Status) -> Status {
    if is_message_too_large(status.code(), status.message()) {
        Status::resource_exhausted(format!(
            "{} (raise --max-message-size to accept larger messages)",
            status.message()
        ))
    } else {
        status
    }
}

/// Rewrites a trailers-only "message too large" response (unary and server-streaming calls,
/// whose request tonic decodes before our handler runs) into `RESOURCE_EXHAUSTED`.
pub fn rewrite_message_too_large<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers();
    let too_large = headers.get("grpc-status").and_then(|v| v.to_str().ok()) == Some("11")
        && headers
            .get("grpc-message")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|m| is_message_too_large(Code::OutOfRange, m));
    if too_large {
        response
            .headers_mut()
            .insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_end_is_out_of_range_with_localized_message() {
        let status = backend_status(&BackendError::OffsetPastEnd { offset: 7, next: 3 });
        assert_eq!(status.code(), Code::OutOfRange);
        let details = status.get_details_localized_message().expect("detail");
        assert_eq!(details.locale, "en-US");
        assert_eq!(
            details.message,
            "The requested offset is outside the log's range: 7"
        );
    }

    #[test]
    fn below_start_says_so() {
        let status = backend_status(&BackendError::OffsetBelowStart {
            offset: 1,
            lowest: 5,
        });
        assert_eq!(status.code(), Code::OutOfRange);
        assert!(
            status.message().contains("retention start"),
            "{}",
            status.message()
        );
        let details = status.get_details_localized_message().expect("detail");
        assert!(
            details
                .message
                .starts_with("The requested offset is outside the log's range: 1")
        );
    }

    #[test]
    fn other_errors_map_to_their_codes() {
        let code = |e: BackendError| backend_status(&e).code();
        assert_eq!(
            code(BackendError::RecordTooLarge { size: 9, max: 1 }),
            Code::InvalidArgument
        );
        assert_eq!(
            code(BackendError::Unavailable("no leader".into())),
            Code::Unavailable
        );
        assert_eq!(code(BackendError::Closed), Code::Unavailable);
        assert_eq!(code(BackendError::Storage("disk".into())), Code::Internal);
    }

    #[test]
    fn too_large_message_becomes_resource_exhausted() {
        let status = decode_status(Status::out_of_range(
            "Error, decoded message length too large: found 9 bytes, the limit is: 4 bytes",
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        let untouched = decode_status(Status::out_of_range("offset 3"));
        assert_eq!(untouched.code(), Code::OutOfRange);
    }
}
