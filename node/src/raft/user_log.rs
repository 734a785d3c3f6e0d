//! The user-visible log in Raft mode, shared by both halves of the Raft storage: one write per
//! record. The Raft log store appends an entry's records here when it appends the entry (leader
//! and followers alike, before the entry is committed), truncates them with a conflicting
//! suffix, and fsyncs them with the entry; the state machine only moves the *applied end*, the
//! one offset readers may not pass, and replaces the records when it installs a snapshot.
//!
//! So the log may hold records beyond the applied end (replicated, not yet committed or
//! applied); every read path goes through [`UserLog::read_applied`], [`UserLog::applied_end`]
//! and [`UserLog::subscribe`], never the raw log's next offset.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use proglog_log::{Log, LogConfig, LogError, Wait};
use tokio::sync::watch;

use super::error::RaftStoreError;

/// `config` without a record size limit: the limits for logs holding *committed* records (the
/// user log, a staged snapshot of it). Sizes are checked when a produce is proposed; once
/// committed, a record must be stored on every node whatever that node's `--max-record-size`
/// is today (a failed apply stops openraft for good, on every restart). Only the frame format's
/// 4 GiB bound remains, far above the largest Raft entry.
pub fn committed_records_config(config: LogConfig) -> LogConfig {
    LogConfig {
        max_record_bytes: u64::MAX,
        ..config
    }
}

/// The user log, the lock its writers share and the applied end readers see.
#[derive(Debug)]
pub struct UserLog {
    log: Arc<Log>,
    /// Serialises the log's writers: the Raft log store (appends, truncations) and the state
    /// machine (snapshot installs, which reset the log).
    writes: Mutex<()>,
    /// One past the last applied record: what readers may see.
    applied_end: watch::Sender<u64>,
}

impl UserLog {
    /// Opens (or creates) the user log in `dir`, without a record size limit (records are
    /// checked when proposed, see [`committed_records_config`]). Blocking. The applied end starts
    /// at 0 until the state machine publishes its position.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Arc<Self>, RaftStoreError> {
        let log = Log::open(dir, committed_records_config(config))?;
        Ok(Arc::new(Self {
            log: Arc::new(log),
            writes: Mutex::new(()),
            applied_end: watch::channel(0).0,
        }))
    }

    /// The raw log: for writers holding [`UserLog::lock_writes`], snapshots (bounded by their own
    /// end), retention and metrics. Readers use [`UserLog::read_applied`].
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    /// Held by every writer of the log while it writes.
    pub fn lock_writes(&self) -> MutexGuard<'_, ()> {
        self.writes.lock()
    }

    /// One past the last applied record.
    pub fn applied_end(&self) -> u64 {
        *self.applied_end.borrow()
    }

    /// Makes records up to `end` visible (the state machine, after applying or installing).
    pub fn publish_applied(&self, end: u64) {
        self.applied_end.send_if_modified(|current| {
            let changed = *current != end;
            *current = end;
            changed
        });
    }

    /// A watch of the applied end, changed after every apply and snapshot install.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.applied_end.subscribe()
    }

    /// The record at `offset` if it was applied: past the applied end the log may hold records
    /// that are not committed, and those are reported as past the end.
    pub fn read_applied(&self, offset: u64, wait: Wait) -> Result<Bytes, LogError> {
        let next = self.applied_end();
        if offset >= next {
            return Err(LogError::OffsetPastEnd { offset, next });
        }
        self.log.read_with(offset, wait)
    }

    /// Applied records from `from` on, in one read of at most `max_bytes` ([`Log::read_run`]
    /// below the applied end).
    pub fn read_applied_run(
        &self,
        from: u64,
        max_bytes: u64,
        wait: Wait,
    ) -> Result<Vec<(u64, Bytes)>, LogError> {
        self.log.read_run(from, self.applied_end(), max_bytes, wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_past_the_applied_end_are_not_readable() {
        let dir = tempfile::tempdir().unwrap();
        let user = UserLog::open(dir.path(), LogConfig::default()).unwrap();
        user.log()
            .append_batch(&[b"a".as_slice(), b"b", b"c"])
            .unwrap();
        assert!(matches!(
            user.read_applied(0, Wait::Disk),
            Err(LogError::OffsetPastEnd { offset: 0, next: 0 })
        ));
        let mut watch = user.subscribe();
        user.publish_applied(2);
        assert!(watch.has_changed().unwrap());
        assert_eq!(*watch.borrow_and_update(), 2);
        assert_eq!(user.read_applied(1, Wait::Disk).unwrap().as_ref(), b"b");
        assert!(matches!(
            user.read_applied(2, Wait::Disk),
            Err(LogError::OffsetPastEnd { offset: 2, next: 2 })
        ));
        user.publish_applied(2);
        assert!(
            !watch.has_changed().unwrap(),
            "an unchanged end woke readers"
        );
    }
}
