//! [`LogBackend`]: the seam between the gRPC services and what stores records, so the same
//! `log.v1` service serves a single node ([`LocalBackend`], group commit on the local log) and a
//! Raft cluster (implemented in `crate::raft`).
//!
//! Records are stored as prost-encoded `log.v1.Record`s (value, offset, term, type), as in the
//! book. Errors are [`BackendError`]s; `crate::server::status` maps them to gRPC codes.

mod local;
mod read;

use futures::future::BoxFuture;
use proglog_proto::log::v1::{Record, Server};
use tokio::sync::watch;

pub use local::{GroupCommitConfig, LocalBackend};
pub use read::read_off_worker;

/// Where a batch of appended records landed: offsets `first_offset .. first_offset + count`.
/// (Serializable: it is also what applying a Raft entry answers, `raft::types::ProduceApplied`.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Appended {
    /// Offset of the batch's first record.
    pub first_offset: u64,
    /// Records in the batch (they have consecutive offsets).
    pub count: u64,
}

/// The offsets a node holds: `lowest .. next` (empty when equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogBounds {
    /// First offset still held (retention start).
    pub lowest: u64,
    /// Offset the next record gets.
    pub next: u64,
}

/// How fresh a read of the bounds must be (mirrors `log.v1.Consistency`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// This node's committed log.
    Local,
    /// Confirmed with a quorum first (a single node is its own quorum).
    Linearizable,
}

/// Everything a backend can fail with; each variant has one gRPC code (see `server::status`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    /// The offset has not been written (or not committed) yet.
    #[error("offset {offset} is past the end of the log (next offset {next})")]
    OffsetPastEnd {
        /// The offset asked for.
        offset: u64,
        /// The offset the next record will get.
        next: u64,
    },
    /// The offset was removed by retention.
    #[error("offset {offset} is below the log's retention start (lowest offset {lowest})")]
    OffsetBelowStart {
        /// The offset asked for.
        offset: u64,
        /// The lowest offset still held.
        lowest: u64,
    },
    /// A record is larger than the log accepts.
    #[error("record of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// The record's size in bytes.
        size: u64,
        /// The largest record accepted, in bytes.
        max: u64,
    },
    /// The request is malformed (for example an empty batch).
    #[error("{0}")]
    InvalidArgument(String),
    /// No leader or no quorum right now; the caller may retry (possibly on another node), but
    /// a produce may or may not have been executed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Unavailable, and the request was refused before it had any effect (no leader, not the
    /// leader, the leader unreachable, shutting down): `UNAVAILABLE` marked not executed
    /// (`proglog_proto::retry`), so retrying the same request cannot execute it twice.
    #[error("unavailable: {0}")]
    NotExecuted(String),
    /// The backend is shutting down or closed.
    #[error("the log is closed")]
    Closed,
    /// Storage failure (I/O error, corruption, failed fsync): needs an operator.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl From<proglog_log::LogError> for BackendError {
    fn from(error: proglog_log::LogError) -> Self {
        use proglog_log::LogError;
        match error {
            LogError::OffsetBelowStart { offset, lowest } => {
                BackendError::OffsetBelowStart { offset, lowest }
            }
            LogError::OffsetPastEnd { offset, next } => {
                BackendError::OffsetPastEnd { offset, next }
            }
            LogError::RecordTooLarge { size, max } => BackendError::RecordTooLarge { size, max },
            LogError::Closed => BackendError::Closed,
            other => BackendError::Storage(other.to_string()),
        }
    }
}

/// A boxed future of a backend result (keeps [`LogBackend`] object-safe).
pub type BackendFuture<'a, T> = BoxFuture<'a, Result<T, BackendError>>;

/// An append whose place in the log is fixed, resolving with its outcome (see
/// [`LogBackend::append_in_order`]).
pub type QueuedAppend = BoxFuture<'static, Result<Appended, BackendError>>;

/// What the `log.v1` service needs from "the log".
pub trait LogBackend: Send + Sync + std::fmt::Debug + 'static {
    /// Appends records and resolves once they are durable (single node: fsynced; Raft:
    /// committed on a quorum). Concurrent calls share one fsync. Records get contiguous offsets
    /// in the given order; their `offset` fields are overwritten.
    fn append(&self, records: Vec<Record>) -> BackendFuture<'_, Appended>;

    /// Reads one committed record. Never waits for the disk on the calling thread: a record
    /// that is not in memory is read on a blocking thread ([`read_off_worker`]).
    fn read(&self, offset: u64) -> BackendFuture<'_, Record>;

    /// Committed records from `from` on, in one positional read of at most `max_bytes` of stored
    /// frames (more if the first record alone is larger) and within one segment: at least one
    /// record when `from` is below the committed end, none when it is the end. Waits for the
    /// disk only on a blocking thread, like [`LogBackend::read`].
    fn read_run(&self, from: u64, max_bytes: u64) -> BackendFuture<'_, Vec<Record>>;

    /// The committed bounds of the log.
    fn bounds(&self, consistency: Consistency) -> BackendFuture<'_, LogBounds>;

    /// A watch of the committed `next` offset, for followers of the log end.
    fn subscribe(&self) -> watch::Receiver<u64>;

    /// The servers of the cluster (a single node lists itself as leader).
    fn servers(&self) -> BackendFuture<'_, Vec<Server>>;

    /// `Err(reason)` once the node can no longer work without a restart (`/healthz`; the
    /// kubelet then restarts it). Live by default.
    fn liveness(&self) -> Result<(), String> {
        Ok(())
    }

    /// `Err(reason)` while the node should not receive traffic (`/readyz`, gRPC health): a
    /// single node once its log is open, which it is as soon as the backend exists; a Raft node
    /// by its Raft state (see `crate::raft::health`).
    fn readiness(&self) -> Result<(), String> {
        Ok(())
    }

    /// Resolves when the node stops being live by itself (the Raft core stopped), so gRPC
    /// health follows at once instead of at its next poll. Never, by default.
    fn liveness_lost(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::pending())
    }

    /// Starts appending `records` behind every append this caller started before, and resolves
    /// once their place in the log is fixed — an append started after that lands after them —
    /// with the future of the append's outcome. A `ProduceStream` keeps several appends in
    /// flight through it and its records are never reordered.
    ///
    /// The default waits for the whole append before it resolves, so a caller never has two in
    /// flight: the safe answer for a backend that cannot fix the order early (a Raft follower
    /// forwards each append as its own RPC, and concurrent RPCs can reach the leader in any
    /// order), or that wraps another and forgets to ask it.
    fn append_in_order(&self, records: Vec<Record>) -> BackendFuture<'_, QueuedAppend> {
        Box::pin(async move {
            let outcome = self.append(records).await;
            Ok(Box::pin(std::future::ready(outcome)) as QueuedAppend)
        })
    }

    /// Segments in the local storage, for the metrics (None if not applicable).
    fn segment_count(&self) -> Option<usize> {
        None
    }

    /// Stops accepting appends, makes everything appended durable and closes the storage.
    fn shutdown(&self) -> BackendFuture<'_, ()>;
}
