//! Test-only fault injection into the Raft state machine (cargo feature `failpoints`, which only
//! this package's tests enable; shipped binaries do not contain this module).
//!
//! `PROGLOG_FAILPOINT` (read once, comma-separated) or [`arm`] arms the process:
//! - `apply-error`: applying a record whose value starts with [`APPLY_ERROR_RECORD`] fails with
//!   a storage error, as a failing disk would; openraft stops the Raft core with a fatal error.
//! - `apply-panic`: applying a record whose value starts with [`APPLY_PANIC_RECORD`] panics, as
//!   a bug would.
//! - `slow-install`: installing a snapshot takes [`SLOW_INSTALL`] longer, as installing many
//!   GiB would.
//! - `raft-rpcs-dropped-from:<node id>`: every openraft call that node makes fails as unreachable
//!   (its Raft messages are lost; calls it answers, and its leadership confirmations, still
//!   work), so the others elect a new leader while it still believes it leads.
//! - `read-index-passes:<node id>`: that node's read-index takes openraft's confirmation as
//!   given without asking openraft, as openraft's replication can wrongly give it (see
//!   `leadership.rs`), so a test can show the second confirmation catching it.
//! - `crash-at:<step>`: the process aborts at that step (no cleanup, no flush: as a power cut or
//!   `kill -9` would stop it), e.g. the steps of a snapshot install
//!   ([`super::snapshot_install::INSTALL_STEPS`]).
//!
//! Only the armed node fails: the leader and the other followers apply the same entry normally,
//! which is exactly "one follower's storage broke".

use std::sync::OnceLock;

use super::produce_batch::ProduceBatch;

use super::error::RaftStoreError;

/// The environment variable that arms failpoints.
pub const ENV: &str = "PROGLOG_FAILPOINT";
/// Value prefix of the record an `apply-error` node fails to apply.
pub const APPLY_ERROR_RECORD: &[u8] = b"failpoint:apply-error";
/// Value prefix of the record an `apply-panic` node panics on.
pub const APPLY_PANIC_RECORD: &[u8] = b"failpoint:apply-panic";

fn armed_set() -> &'static parking_lot::Mutex<Vec<String>> {
    static ARMED: OnceLock<parking_lot::Mutex<Vec<String>>> = OnceLock::new();
    ARMED.get_or_init(|| {
        parking_lot::Mutex::new(
            std::env::var(ENV)
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        )
    })
}

fn armed(name: &str) -> bool {
    armed_set().lock().iter().any(|armed| armed == name)
}

/// Arms failpoint `name` in this process, as [`ENV`] does at start (for in-process tests).
pub fn arm(name: &str) {
    armed_set().lock().push(name.to_owned());
}

/// Called by the state machine for each produce entry it applies.
pub(super) fn on_apply(batch: &ProduceBatch) -> Result<(), RaftStoreError> {
    let records = batch
        .records()
        .map_err(|e| RaftStoreError::Corrupt(format!("produce entry: {e}")))?;
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

/// Whether node `source`'s openraft calls are dropped (`raft-rpcs-dropped-from:<source>`).
pub(super) fn raft_rpcs_dropped_from(source: u64) -> bool {
    armed(&format!("raft-rpcs-dropped-from:{source}"))
}

/// Whether node `node`'s read-index skips openraft's check (`read-index-passes:<node>`).
pub(super) fn read_index_passes(node: u64) -> bool {
    armed(&format!("read-index-passes:{node}"))
}

/// Aborts the process if `crash-at:<step>` is armed.
pub(super) fn crash_point(step: &str) {
    if armed(&format!("crash-at:{step}")) {
        eprintln!("failpoint crash-at:{step}: aborting the process");
        std::process::abort();
    }
}

/// How much longer an install takes with `slow-install`.
pub const SLOW_INSTALL: std::time::Duration = std::time::Duration::from_secs(4);

/// Called by the state machine when it starts installing a snapshot (on a blocking thread).
pub(super) fn on_install() {
    if armed("slow-install") {
        std::thread::sleep(SLOW_INSTALL);
    }
}
