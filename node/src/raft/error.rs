//! Errors of the Raft storage layer (log storage, state machine, snapshots, node identity). openraft
//! wants `std::io::Error` from its storage traits, so these convert into it at that boundary.

use std::io;

use proglog_log::LogError;

/// What can go wrong below openraft: the segmented log, metadata files, or corrupt contents.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    /// The Raft log's or the user log's segmented log failed.
    #[error("segmented log: {0}")]
    Log(#[from] LogError),
    /// A state file or directory operation failed.
    #[error("i/o on {path}: {source}")]
    File {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// I/O without a path of its own (e.g. reading a snapshot stream).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// A state file or a log entry could not be encoded or decoded.
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// What is on disk contradicts itself or this node (the node refuses to start on it).
    #[error("corrupt raft storage: {0}")]
    Corrupt(String),
    /// A blocking storage task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(String),
}

impl From<RaftStoreError> for io::Error {
    fn from(e: RaftStoreError) -> Self {
        match e {
            RaftStoreError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}
