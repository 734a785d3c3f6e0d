//! The Raft log store's background writers: the flusher thread (group commit: every `IOFlushed`
//! callback queued while the previous fsync ran shares the next one) and the committed-id
//! writer task.
//!
//! An entry is durable when both its Raft-log record and its records in the user log are: the
//! flusher fsyncs the user log, then the Raft log, and calls back (and raises the
//! [`super::DurableIndex`]) only once both succeeded. One after the other on this thread, not at
//! the same time on two: measured on the bench machine, handing one fsync to a helper thread
//! cost more (two thread wake-ups per batch on every node) than the second fsync itself, at every
//! load (docs/BENCHMARKS.md, "One write per record").

use std::io;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use openraft::storage::IOFlushed;
use tokio::sync::watch;

use super::super::durable_file::StateFile;
use super::super::error::RaftStoreError;
use super::super::types::{LogId, TypeConfig};
use super::{COMMITTED_WRITE_INTERVAL, Shared};
use crate::metrics::Metrics;

/// Completes flush callbacks in batches: everything queued while the previous fsync ran shares
/// the next one. Ends when the store (the queue's sender) is dropped.
pub(super) fn flush_loop(
    shared: &Shared,
    queue: &std_mpsc::Receiver<IOFlushed<TypeConfig>>,
    metrics: &Metrics,
) {
    let log = &shared.log;
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        batch.extend(queue.try_iter());
        let started = std::time::Instant::now();
        // Entries below the ticket had their records appended to the user log before their
        // Raft-log records (`append_entries`), so both syncs, started after it, cover them.
        let ticket = shared.durable.before_sync(|| log.next_offset());
        let user_result = shared
            .user
            .log()
            .sync()
            .map_err(|e| format!("user log fsync failed: {e}"));
        let raft_result = log
            .sync()
            .map_err(|e| format!("raft log fsync failed: {e}"));
        let result = raft_result.and(user_result);
        if result.is_ok() {
            shared.durable.synced(ticket);
        }
        metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        for callback in batch {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(io::Error::other(e.clone())),
            };
            callback.io_completed(outcome);
        }
    }
}

/// Writes the committed log id at most once per [`COMMITTED_WRITE_INTERVAL`]. Each write costs
/// two fsyncs (file and directory); written on every commit, as before, those doubled the fsyncs
/// of a busy node and competed with the Raft log's own on the disk.
pub(super) async fn write_committed_in_background(
    file: Arc<StateFile<Option<LogId>>>,
    mut rx: watch::Receiver<(u64, Option<LogId>)>,
) {
    while rx.changed().await.is_ok() {
        let (version, committed) = *rx.borrow_and_update();
        let file = file.clone();
        // `close_log` may have written a newer id meanwhile: the version keeps this one out.
        let written = tokio::task::spawn_blocking(move || file.store(version, &committed)).await;
        if let Ok(Err(e)) | Err(e) = written.map_err(|e| RaftStoreError::Task(e.to_string())) {
            tracing::warn!(error = %e, "persisting the raft committed index failed");
        }
        tokio::time::sleep(COMMITTED_WRITE_INTERVAL).await;
    }
}
