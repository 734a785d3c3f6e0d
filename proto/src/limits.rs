//! Size limits of `log.v1` records and messages that the node and the operator must agree on.
//!
//! A node refuses to start when its `--max-message-size` cannot carry a record of its
//! `--max-record-size` ([`check_record_limits`]). The operator writes both settings from
//! `spec.log.maxRecordBytes` ([`message_bytes_for`]) and validates the spec with the same
//! function, so a spec the CRD accepts never gives a node a configuration it refuses (which
//! would crash-loop the pods). The constants live here, in the one crate both depend on, so the
//! arithmetic exists once.

/// Bytes a record's encoding adds to its value: the protobuf tags and lengths of `value`, the
/// `offset` and `term` the log assigns, and `type`. A `log.v1.Record` of value `n` bytes encodes
/// to at most `n + RECORD_OVERHEAD_BYTES`.
pub const RECORD_OVERHEAD_BYTES: u64 = 64;

/// The node's default `--max-record-size`.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;

/// The node's default `--max-message-size`.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 4 << 20;

/// The largest `--max-record-size` a node accepts. A replicated record travels inside one Raft
/// entry in one node-to-node message, whose size the node bounds with this (see the node's
/// `raft::MAX_ENTRY_BYTES`).
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

/// Why a node refuses a record/message size combination. `flag()` names the setting to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// `--max-record-size 0`.
    #[error("must be at least 1")]
    RecordZero,
    /// `--max-record-size` above [`MAX_RECORD_BYTES`].
    #[error(
        "{record} bytes exceeds the largest record size ProgLog supports, {MAX_RECORD_BYTES} bytes"
    )]
    RecordTooLarge {
        /// The configured record size.
        record: u64,
    },
    /// `--max-message-size` too small for a record of `--max-record-size`.
    #[error(
        "{message} bytes cannot carry a record of --max-record-size {record} \
         (a message needs at least {} bytes)",
        min_message_bytes(*record)
    )]
    MessageTooSmall {
        /// The configured record size.
        record: u64,
        /// The configured message size.
        message: u64,
    },
}

impl LimitError {
    /// The node flag (and config-file key) the error is about.
    pub fn flag(&self) -> &'static str {
        match self {
            LimitError::RecordZero | LimitError::RecordTooLarge { .. } => "max-record-size",
            LimitError::MessageTooSmall { .. } => "max-message-size",
        }
    }
}

/// The most bytes a `log.v1.Record` with a value of `value_bytes` encodes to.
pub const fn encoded_record_bytes(value_bytes: u64) -> u64 {
    value_bytes.saturating_add(RECORD_OVERHEAD_BYTES)
}

/// The smallest gRPC message that carries one record of `max_record_bytes` (a `Produce` request
/// or a `Consume` response).
pub const fn min_message_bytes(max_record_bytes: u64) -> u64 {
    encoded_record_bytes(max_record_bytes)
}

/// The `--max-message-size` to run a node with for a given `--max-record-size`: the default,
/// raised when a record needs more. What the operator writes into the node's configuration.
pub const fn message_bytes_for(max_record_bytes: u64) -> u64 {
    let needed = min_message_bytes(max_record_bytes);
    if needed > DEFAULT_MAX_MESSAGE_BYTES {
        needed
    } else {
        DEFAULT_MAX_MESSAGE_BYTES
    }
}

/// The node's check of its record and message size settings (the node exits with status 64
/// when it fails; the operator reports the spec as invalid).
pub fn check_record_limits(
    max_record_bytes: u64,
    max_message_bytes: u64,
) -> Result<(), LimitError> {
    if max_record_bytes == 0 {
        return Err(LimitError::RecordZero);
    }
    if max_record_bytes > MAX_RECORD_BYTES {
        return Err(LimitError::RecordTooLarge {
            record: max_record_bytes,
        });
    }
    if max_message_bytes < min_message_bytes(max_record_bytes) {
        return Err(LimitError::MessageTooSmall {
            record: max_record_bytes,
            message: max_message_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass() {
        assert_eq!(
            check_record_limits(DEFAULT_MAX_RECORD_BYTES, DEFAULT_MAX_MESSAGE_BYTES),
            Ok(())
        );
    }

    #[test]
    fn derived_message_size_carries_every_supported_record() {
        for record in [
            1,
            4096,
            DEFAULT_MAX_MESSAGE_BYTES - 64,
            DEFAULT_MAX_MESSAGE_BYTES - 63,
            MAX_RECORD_BYTES,
        ] {
            let message = message_bytes_for(record);
            assert_eq!(check_record_limits(record, message), Ok(()), "{record}");
            assert!(message >= DEFAULT_MAX_MESSAGE_BYTES);
        }
        assert_eq!(message_bytes_for(MAX_RECORD_BYTES), MAX_RECORD_BYTES + 64);
        assert_eq!(message_bytes_for(1), DEFAULT_MAX_MESSAGE_BYTES);
    }

    #[test]
    fn each_violation_names_its_flag() {
        let zero = check_record_limits(0, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(zero.flag(), "max-record-size");
        let large = check_record_limits(MAX_RECORD_BYTES + 1, u64::MAX).unwrap_err();
        assert_eq!(large.flag(), "max-record-size");
        let small = check_record_limits(5 << 20, DEFAULT_MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(small.flag(), "max-message-size");
        assert!(small.to_string().contains("5242944"), "{small}");
        // The boundary is exact: record + overhead.
        assert_eq!(check_record_limits(1000, 1064), Ok(()));
        assert!(check_record_limits(1000, 1063).is_err());
    }
}
