//! The storage engine's error type, [`LogError`], and what each variant means for callers.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong in the storage engine.
///
/// The variants separate what a caller can act on: an offset outside the log (a client error),
/// a record that is too large (a client error), an I/O failure (retryable or operator action),
/// corruption of data at rest (operator action, never silently skipped) and a failed fsync (the
/// log refuses further writes, see the module documentation).
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The offset was removed by retention or truncation (or never existed below the start).
    #[error("offset {offset} is below the log's start (lowest offset {lowest})")]
    OffsetBelowStart {
        /// The requested offset.
        offset: u64,
        /// The lowest offset still in the log.
        lowest: u64,
    },
    /// The offset has not been written yet.
    #[error("offset {offset} is past the end of the log (next offset {next})")]
    OffsetPastEnd {
        /// The requested offset.
        offset: u64,
        /// The offset the next append will get.
        next: u64,
    },
    /// The record exceeds `max_record_bytes` (or the 4 GiB a frame's length field holds).
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// The size of the rejected record in bytes.
        size: u64,
        /// The largest record this log accepts, in bytes.
        max: u64,
    },
    /// An operating-system I/O call failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Bytes on disk do not form what the engine wrote (checksum mismatch, broken framing,
    /// index pointing outside the store, a gap between segments).
    #[error("corruption in {} at byte {position}: {reason}", path.display())]
    Corruption {
        /// The damaged file.
        path: PathBuf,
        /// The byte position in that file where the damage was detected.
        position: u64,
        /// What was wrong.
        reason: String,
    },
    /// `fsync` failed. The kernel may have dropped the dirty pages, so the data's fate is
    /// unknown; the log refuses every later write (see [`LogError::WritesRefused`]).
    #[error("fsync of {} failed, the log now refuses writes: {source}", path.display())]
    FsyncFailed {
        /// The file whose fsync failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A write was attempted after an earlier fsync failure (or after a truncation or reset
    /// failed halfway, leaving the files and the log's view of them apart). Reopen the log
    /// (which re-reads what actually reached the disk) to write again.
    #[error("the log refuses writes after an earlier failure on {}; reopen it", path.display())]
    WritesRefused {
        /// The file whose fsync failed earlier.
        path: PathBuf,
    },
    /// Another `Log` (in this or another process) has the directory open: two writers would
    /// corrupt it, so the second open is refused.
    #[error("log directory {} is already open (locked through {})", dir.display(), lock_path.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
        /// The lock file held by the other owner.
        lock_path: PathBuf,
    },
    /// A memory-only read ([`Wait::MemoryOnly`](super::Wait::MemoryOnly)) would have waited for
    /// the disk: read again with [`Wait::Disk`](super::Wait::Disk) on a blocking thread.
    #[error("the read would wait for the disk")]
    NotInMemory,
    /// The log was closed with [`Log::close`](super::Log::close).
    #[error("the log is closed")]
    Closed,
    /// The configuration cannot work (for example an index too small for one entry).
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    /// Appending would exceed the largest representable offset.
    #[error("offset overflow: the log cannot hold offsets beyond {}", u64::MAX)]
    OffsetOverflow,
}

impl From<crate::durable_fs::DurableFsError> for LogError {
    fn from(e: crate::durable_fs::DurableFsError) -> Self {
        match e {
            crate::durable_fs::DurableFsError::Io { path, source } => LogError::Io { path, source },
            crate::durable_fs::DurableFsError::Fsync { path, source } => {
                LogError::FsyncFailed { path, source }
            }
        }
    }
}

/// The storage engine's result type.
pub type Result<T, E = LogError> = std::result::Result<T, E>;

impl LogError {
    /// An [`LogError::Io`] about `path`.
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A [`LogError::Corruption`] in `path` at `position`.
    pub(crate) fn corruption(path: &Path, position: u64, reason: impl Into<String>) -> Self {
        LogError::Corruption {
            path: path.to_path_buf(),
            position,
            reason: reason.into(),
        }
    }
}
