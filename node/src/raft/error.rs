//! Errors of the Raft storage layer (log storage, state machine, snapshots, node identity). openraft
//! wants `std::io::Error` from its storage traits, so these convert into it at that boundary.

use std::io;

use crate::log::LogError;

/// What can go wrong below openraft: the segmented log, metadata files, or corrupt contents.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    #[error("segmented log: {0}")]
    Log(#[from] LogError),
    #[error("i/o on {path}: {source}")]
    File {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("encoding: {0}")]
    Json(#[from] serde_json::Error),
    #[error("corrupt raft storage: {0}")]
    Corrupt(String),
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
