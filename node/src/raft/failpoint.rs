//! Test-only fault injection into the Raft state machine (cargo feature `failpoints`, which only
//! this package's tests enable; shipped binaries do not contain this module).
//!
//! `PROGLOG_FAILPOINT` (read once, comma-separated) arms the process:
//! - `apply-error`: applying a record whose value starts with [`APPLY_ERROR_RECORD`] fails with
//!   a storage error, as a failing disk would; openraft stops the Raft core with a fatal error.
//! - `apply-panic`: applying a record whose value starts with [`APPLY_PANIC_RECORD`] panics, as
//!   a bug would.
//!
//! Only the armed node fails: the leader and the other followers apply the same entry normally,
//! which is exactly "one follower's storage broke".

use std::sync::OnceLock;

use proglog_proto::log::v1::Record;

use super::error::RaftStoreError;

/// The environment variable that arms failpoints.
pub const ENV: &str = "PROGLOG_FAILPOINT";
/// Value prefix of the record an `apply-error` node fails to apply.
pub const APPLY_ERROR_RECORD: &[u8] = b"failpoint:apply-error";
/// Value prefix of the record an `apply-panic` node panics on.
pub const APPLY_PANIC_RECORD: &[u8] = b"failpoint:apply-panic";

fn armed(name: &str) -> bool {
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var(ENV)
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|armed| armed == name)
}

/// Called by the state machine for each produce entry it applies.
pub(super) fn on_apply(records: &[Record]) -> Result<(), RaftStoreError> {
    let has = |prefix: &[u8]| records.iter().any(|r| r.value.starts_with(prefix));
    if armed("apply-error") && has(APPLY_ERROR_RECORD) {
        return Err(RaftStoreError::Io(std::io::Error::other(
            "injected storage error (failpoint apply-error)",
        )));
    }
    if armed("apply-panic") && has(APPLY_PANIC_RECORD) {
        panic!("injected panic (failpoint apply-panic)");
    }
    Ok(())
}
