//! Snapshot data: "the user log from `first_offset` up to `next_offset`" — a view of a [`Log`],
//! never a copy in memory. On the leader it views the live user log (offsets below `next_offset`
//! never change once applied); on a receiving follower it views a staging log the transfer wrote
//! to disk, which installing moves into the state machine (see [`super::snapshot_install`]) and
//! which is deleted when a snapshot that was not installed is dropped. Reading goes through the
//! log's chunked reader ([`for_each_chunk`]).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use proglog_log::Log;

use super::error::RaftStoreError;

/// Records handed over per chunk when a snapshot is read (bounds memory while streaming).
pub const CHUNK_RECORDS: usize = 1024;
/// Bytes handed over per chunk at most (a chunk always holds at least one record).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// A directory removed when the last snapshot referring to it is dropped.
#[derive(Debug)]
pub struct StagingDir(pub PathBuf);

impl Drop for StagingDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), error = %e, "removing a snapshot staging directory failed");
        }
    }
}

/// The data of a ProgLog snapshot.
#[derive(Debug, Clone)]
pub struct UserLogSnapshot {
    /// The log holding the records (declared before `staging` so it closes first).
    pub log: Arc<Log>,
    /// First user offset included.
    pub first_offset: u64,
    /// One past the last user offset included.
    pub next_offset: u64,
    /// Set when `log` is a staging copy that must be deleted after use.
    pub staging: Option<Arc<StagingDir>>,
}

impl UserLogSnapshot {
    /// Reads the records `[from, next_offset)` as chunks of at most [`CHUNK_RECORDS`] records /
    /// [`CHUNK_BYTES`] bytes, calling `sink` for each; stops at the first error.
    pub fn for_each_chunk<F>(&self, from: u64, sink: F) -> Result<(), RaftStoreError>
    where
        F: FnMut(Vec<Bytes>) -> Result<(), RaftStoreError>,
    {
        for_each_chunk(
            &self.log,
            from.max(self.first_offset),
            self.next_offset,
            sink,
        )
    }
}

/// Reads the records `[from, to)` of `log` with its chunked reader (large positional reads,
/// not one per record) and hands them to `sink` in chunks of at most [`CHUNK_RECORDS`] records
/// / [`CHUNK_BYTES`] bytes (a chunk always holds at least one record); stops at the first error.
/// Fails if the log does not hold every offset of the range.
pub fn for_each_chunk<F>(log: &Log, from: u64, to: u64, mut sink: F) -> Result<(), RaftStoreError>
where
    F: FnMut(Vec<Bytes>) -> Result<(), RaftStoreError>,
{
    let mut reader = log.reader(from);
    let mut expected = from;
    let mut chunk = Vec::new();
    let mut bytes = 0;
    while expected < to {
        let Some(item) = reader.next() else {
            return Err(RaftStoreError::Corrupt(format!(
                "the log ends at offset {expected}, before the snapshot's end {to}"
            )));
        };
        let (offset, record) = item?;
        if offset != expected {
            return Err(RaftStoreError::Corrupt(format!(
                "snapshot read offset {offset} where {expected} was expected"
            )));
        }
        bytes += record.len();
        chunk.push(record);
        expected += 1;
        if chunk.len() >= CHUNK_RECORDS || bytes >= CHUNK_BYTES {
            sink(std::mem::take(&mut chunk))?;
            bytes = 0;
        }
    }
    if !chunk.is_empty() {
        sink(chunk)?;
    }
    Ok(())
}
