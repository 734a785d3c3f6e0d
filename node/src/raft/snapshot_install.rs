//! Crash-atomic snapshot install: a crash at any instant leaves the state machine with either
//! its old user log and position or the snapshot's, never a mix (which would stop the node from
//! starting again, or make it re-apply entries at the wrong offsets).
//!
//! The steps, each named for the crash test (`crash-at:<step>` failpoints, see
//! [`INSTALL_STEPS`]):
//! 1. **stage** — the snapshot's records become a durable log in `sm/snapshot-install/`: a
//!    received snapshot's staging directory is synced and renamed there (no copy); any other
//!    snapshot (one viewing another node's live log, in tests) is copied there and synced.
//!    *`install-staged`*: a crash here leaves the old state; recovery deletes the directory.
//! 2. **commit** — `sm-state.json` is replaced (atomically, versioned) by the snapshot's
//!    position with a [`PendingInstall`] mark. This is the commit point.
//!    *`install-committed`*: from here on, recovery finishes the install.
//! 3. **replace** — the live user log is reset to the snapshot's first offset and the staged
//!    records are copied in, then synced. *`install-copying`* (after the first chunk),
//!    *`install-copied`* (after the sync). Redone from the start by recovery, so idempotent.
//! 4. **finish** — `sm-state.json` is replaced without the mark. *`install-done`*.
//! 5. **clean up** — `sm/snapshot-install/` is deleted (recovery deletes a leftover one).
//!
//! Steps 1 and 3 are blocking file I/O: they run on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use proglog_log::{Log, LogConfig};
use serde::{Deserialize, Serialize};

use super::error::RaftStoreError;
use super::snapshot::UserLogSnapshot;
use super::user_log::committed_records_config;

/// Directory (under the state machine's) holding a snapshot's records while it is installed.
pub const INSTALL_DIR: &str = "snapshot-install";

/// The crash points of an install, in order (`PROGLOG_FAILPOINT=crash-at:<step>` aborts the
/// process there in builds with the `failpoints` feature).
pub const INSTALL_STEPS: [&str; 5] = [
    "install-staged",
    "install-committed",
    "install-copying",
    "install-copied",
    "install-done",
];

/// Mark in `sm-state.json`: a committed install whose records may not all be in the live user
/// log yet. Recovery copies them from [`INSTALL_DIR`] before anything else.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInstall {
    /// The snapshot's first user offset.
    pub first_offset: u64,
    /// One past the snapshot's last user offset.
    pub next_offset: u64,
}

/// Aborts the process at `step` when the test armed it; nothing in shipped builds.
pub(super) fn crash_point(step: &str) {
    #[cfg(feature = "failpoints")]
    super::failpoint::crash_point(step);
    #[cfg(not(feature = "failpoints"))]
    let _ = step;
}

/// Where the records of an install are staged for the state machine in `sm_dir`.
pub fn install_dir(sm_dir: &Path) -> PathBuf {
    sm_dir.join(INSTALL_DIR)
}

/// Step 1: makes the snapshot's records a durable log at [`install_dir`]. Returns the log to
/// copy from (the snapshot's own, when its directory was moved).
pub(super) fn stage(
    sm_dir: &Path,
    snapshot: &UserLogSnapshot,
    user_log_config: &LogConfig,
) -> Result<Arc<Log>, RaftStoreError> {
    #[cfg(feature = "failpoints")]
    super::failpoint::on_install();
    let dir = install_dir(sm_dir);
    remove_leftover(sm_dir)?;
    match &snapshot.staging {
        Some(staging) => {
            // The transfer wrote the records to disk already: make them durable and move the
            // directory. The open log keeps reading through its file handles.
            snapshot.log.sync()?;
            proglog_log::durable_fs::rename(&staging.0, &dir)
                .map_err(|e| file_error(e.into_io(), &dir))?;
            Ok(snapshot.log.clone())
        }
        None => {
            let log = open_staged(&dir, snapshot.first_offset, user_log_config)?;
            snapshot.for_each_chunk(snapshot.first_offset, |chunk| {
                log.append_batch(&chunk)?;
                Ok(())
            })?;
            log.sync()?;
            Ok(Arc::new(log))
        }
    }
}

/// Opens the staged records of a committed install (recovery).
pub(super) fn reopen(
    sm_dir: &Path,
    pending: PendingInstall,
    user_log_config: &LogConfig,
) -> Result<Arc<Log>, RaftStoreError> {
    let dir = install_dir(sm_dir);
    if !dir.exists() {
        return Err(RaftStoreError::Corrupt(format!(
            "a snapshot install was committed but its records ({}) are missing",
            dir.display()
        )));
    }
    let log = open_staged(&dir, pending.first_offset, user_log_config)?;
    Ok(Arc::new(log))
}

fn open_staged(dir: &Path, first: u64, config: &LogConfig) -> Result<Log, RaftStoreError> {
    let config = LogConfig {
        initial_offset: first,
        ..committed_records_config(config.clone())
    };
    Ok(Log::open(dir, config)?)
}

/// Step 3: the live user log holds exactly the staged records `[first, next)`, durably.
pub(super) fn replace_records(
    live: &Log,
    staged: &Log,
    pending: PendingInstall,
) -> Result<(), RaftStoreError> {
    replace_from(live, staged, pending)
}

fn replace_from(live: &Log, staged: &Log, pending: PendingInstall) -> Result<(), RaftStoreError> {
    let PendingInstall {
        first_offset,
        next_offset,
    } = pending;
    if staged.lowest_offset() > first_offset || staged.next_offset() < next_offset {
        return Err(RaftStoreError::Corrupt(format!(
            "staged snapshot holds offsets {}..{} but the install needs {first_offset}..{next_offset}",
            staged.lowest_offset(),
            staged.next_offset()
        )));
    }
    live.reset(first_offset)?;
    let mut first_chunk = true;
    super::snapshot::for_each_chunk(staged, first_offset, next_offset, |chunk| {
        live.append_batch(&chunk)?;
        if std::mem::take(&mut first_chunk) {
            crash_point("install-copying");
        }
        Ok(())
    })?;
    live.sync()?;
    if live.next_offset() != next_offset {
        return Err(RaftStoreError::Corrupt(format!(
            "installed snapshot ends at {} instead of {next_offset}",
            live.next_offset()
        )));
    }
    crash_point("install-copied");
    Ok(())
}

/// Step 5, and recovery's cleanup: deletes [`install_dir`] if it exists, durably.
pub(super) fn remove_leftover(sm_dir: &Path) -> Result<(), RaftStoreError> {
    let dir = install_dir(sm_dir);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {
            proglog_log::durable_fs::sync_dir(sm_dir).map_err(|e| file_error(e.into_io(), sm_dir))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(file_error(e, &dir)),
    }
}

fn file_error(source: std::io::Error, path: &Path) -> RaftStoreError {
    RaftStoreError::File {
        path: path.to_path_buf(),
        source,
    }
}
