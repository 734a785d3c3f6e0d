//! [`LocalBackend`]: a single node's log with group commit.
//!
//! Every append goes through one writer thread. It takes the first waiting request, then every
//! request already queued behind it (up to a batch limit), appends them all, calls `sync()` once
//! and only then acknowledges each request. While one batch is being fsynced the next one queues
//! up, so under load the cost of an fsync is shared by everything that arrived during the
//! previous one. Records become visible to readers (and subscribers) only once durable, which is
//! the single-node equivalent of Raft's commit index.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use proglog_log::{Log, LogConfig};
use proglog_proto::log::v1::{Record, Server};
use prost::Message;
use tokio::sync::{mpsc, oneshot, watch};

use super::{
    Appended, BackendError, BackendFuture, Consistency, LogBackend, LogBounds, QueuedAppend,
    read_off_worker,
};
use crate::metrics::Metrics;

/// The record stored at `offset`, with its offset set.
fn decode_at(offset: u64, bytes: bytes::Bytes) -> Result<Record, BackendError> {
    let mut record = Record::decode(bytes).map_err(|e| {
        BackendError::Storage(format!("record at offset {offset} does not decode: {e}"))
    })?;
    record.offset = offset;
    Ok(record)
}

/// Limits of one group commit.
#[derive(Debug, Clone)]
pub struct GroupCommitConfig {
    /// Most records appended under one fsync.
    pub max_batch_records: usize,
    /// Most encoded bytes appended under one fsync.
    pub max_batch_bytes: usize,
    /// Append requests that may wait for the writer before callers are slowed down.
    pub queue_depth: usize,
}

impl Default for GroupCommitConfig {
    fn default() -> Self {
        Self {
            max_batch_records: 32 * 1024,
            max_batch_bytes: 16 * 1024 * 1024,
            queue_depth: 8 * 1024,
        }
    }
}

enum WriterMsg {
    Append {
        records: Vec<Record>,
        reply: oneshot::Sender<Result<Appended, BackendError>>,
    },
    Shutdown {
        reply: oneshot::Sender<Result<(), BackendError>>,
    },
}

/// A single-node log: appends are group-committed by one writer thread.
#[derive(Debug)]
pub struct LocalBackend {
    log: Arc<Log>,
    requests: mpsc::Sender<WriterMsg>,
    committed: watch::Receiver<u64>,
    me: Server,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for WriterMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WriterMsg::Append { records, .. } => write!(f, "Append({} records)", records.len()),
            WriterMsg::Shutdown { .. } => f.write_str("Shutdown"),
        }
    }
}

impl LocalBackend {
    /// A node's log in `dir` with default settings (tests).
    #[cfg(test)]
    pub(crate) fn open_default(dir: &Path) -> Self {
        Self::open(
            dir,
            LogConfig::default(),
            GroupCommitConfig::default(),
            Arc::new(Metrics::new()),
            "proglog-0".to_owned(),
            "127.0.0.1:0".to_owned(),
        )
        .expect("open the log")
    }

    /// Opens (recovering if needed) the log in `dir` and starts the writer thread.
    ///
    /// `id` and `rpc_addr` are what `GetServers` reports for this node.
    pub fn open(
        dir: &Path,
        log_config: LogConfig,
        group_commit: GroupCommitConfig,
        metrics: Arc<Metrics>,
        id: String,
        rpc_addr: String,
    ) -> Result<Self, BackendError> {
        let max_encoded = log_config.effective_max_record_bytes();
        let log = Arc::new(Log::open(dir, log_config)?);
        // What recovery found on disk is what survived; it counts as durable.
        let (committed_tx, committed) = watch::channel(log.next_offset());
        metrics.set_bounds(log.lowest_offset(), log.next_offset());
        let (requests, inbox) = mpsc::channel(group_commit.queue_depth.max(1));
        let writer = GroupWriter {
            log: Arc::clone(&log),
            inbox,
            committed: committed_tx,
            metrics,
            limits: group_commit,
            max_encoded,
        };
        let handle = std::thread::Builder::new()
            .name("proglog-group-commit".to_owned())
            .spawn(move || writer.run())
            .map_err(|e| BackendError::Storage(format!("starting the writer thread: {e}")))?;
        Ok(Self {
            log,
            requests,
            committed,
            me: Server {
                id,
                rpc_addr,
                is_leader: true,
            },
            writer: Mutex::new(Some(handle)),
        })
    }

    /// The underlying storage engine.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }
}

impl LogBackend for LocalBackend {
    fn append(&self, records: Vec<Record>) -> BackendFuture<'_, Appended> {
        Box::pin(async move { self.append_in_order(records).await?.await })
    }

    fn append_in_order(&self, records: Vec<Record>) -> BackendFuture<'_, QueuedAppend> {
        Box::pin(async move {
            if records.is_empty() {
                return Err(BackendError::InvalidArgument(
                    "a produce request needs at least one record".to_owned(),
                ));
            }
            // The single writer takes appends from one channel, in the order they were sent:
            // once this one is in the channel, its place in the log is fixed.
            let (reply, answer) = oneshot::channel();
            self.requests
                .send(WriterMsg::Append { records, reply })
                .await
                .map_err(|_| BackendError::Closed)?;
            Ok(
                Box::pin(async move { answer.await.map_err(|_| BackendError::Closed)? })
                    as QueuedAppend,
            )
        })
    }

    fn read(&self, offset: u64) -> BackendFuture<'_, Record> {
        let next = *self.committed.borrow();
        let log = Arc::clone(&self.log);
        Box::pin(async move {
            if offset >= next {
                return Err(BackendError::OffsetPastEnd { offset, next });
            }
            let bytes = read_off_worker(move |wait| log.read_with(offset, wait)).await?;
            decode_at(offset, bytes)
        })
    }

    fn read_run(&self, from: u64, max_bytes: u64) -> BackendFuture<'_, Vec<Record>> {
        let end = *self.committed.borrow();
        let log = Arc::clone(&self.log);
        Box::pin(async move {
            let run = read_off_worker(move |wait| log.read_run(from, end, max_bytes, wait)).await?;
            run.into_iter()
                .map(|(offset, bytes)| decode_at(offset, bytes))
                .collect()
        })
    }

    fn bounds(&self, _consistency: Consistency) -> BackendFuture<'_, LogBounds> {
        // A single node is its own quorum: local is linearizable.
        let next = *self.committed.borrow();
        let lowest = self.log.lowest_offset().min(next);
        Box::pin(async move { Ok(LogBounds { lowest, next }) })
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.committed.clone()
    }

    fn servers(&self) -> BackendFuture<'_, Vec<Server>> {
        let me = self.me.clone();
        Box::pin(async move { Ok(vec![me]) })
    }

    fn segment_count(&self) -> Option<usize> {
        Some(self.log.segments().len())
    }

    fn shutdown(&self) -> BackendFuture<'_, ()> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            if self
                .requests
                .send(WriterMsg::Shutdown { reply })
                .await
                .is_ok()
            {
                // A dropped reply means the writer already stopped: nothing left to sync.
                answer.await.unwrap_or(Ok(()))?;
            }
            let handle = self.writer.lock().take();
            if let Some(handle) = handle {
                tokio::task::spawn_blocking(move || handle.join())
                    .await
                    .map_err(|e| BackendError::Storage(format!("joining the writer: {e}")))?
                    .map_err(|_| BackendError::Storage("the writer thread panicked".to_owned()))?;
            }
            Ok(())
        })
    }
}

/// Pending append requests of one group commit, with the channel to answer each.
type PendingBatch = Vec<(Vec<Record>, oneshot::Sender<Result<Appended, BackendError>>)>;

/// The writer thread's state.
struct GroupWriter {
    log: Arc<Log>,
    inbox: mpsc::Receiver<WriterMsg>,
    committed: watch::Sender<u64>,
    metrics: Arc<Metrics>,
    limits: GroupCommitConfig,
    max_encoded: u64,
}

/// One request of a batch, encoded and placed.
struct Placed {
    reply: oneshot::Sender<Result<Appended, BackendError>>,
    appended: Appended,
    value_bytes: u64,
}

impl GroupWriter {
    fn run(mut self) {
        while let Some(first) = self.inbox.blocking_recv() {
            let mut batch = Vec::new();
            let mut shutdown = None;
            let mut records = 0usize;
            let mut bytes = 0usize;
            let mut msg = Some(first);
            while let Some(current) = msg.take() {
                match current {
                    WriterMsg::Append { records: r, reply } => {
                        records += r.len();
                        bytes += r.iter().map(|x| x.value.len()).sum::<usize>();
                        batch.push((r, reply));
                    }
                    WriterMsg::Shutdown { reply } => {
                        shutdown = Some(reply);
                        break;
                    }
                }
                if records >= self.limits.max_batch_records || bytes >= self.limits.max_batch_bytes
                {
                    break;
                }
                msg = self.inbox.try_recv().ok();
            }
            if !batch.is_empty() {
                self.commit(batch);
            }
            if let Some(reply) = shutdown {
                let result = self
                    .log
                    .sync()
                    .and_then(|()| self.log.close())
                    .map_err(BackendError::from);
                let _ = reply.send(result);
                return;
            }
        }
        // Every sender is gone (the backend was dropped without shutdown): flush what we have.
        if let Err(error) = self.log.sync() {
            tracing::error!(%error, "final sync of the log failed");
        }
    }

    /// Appends a batch of requests under one fsync and answers each.
    fn commit(&mut self, batch: PendingBatch) {
        let mut next = self.log.next_offset();
        let first_of_batch = next;
        let mut frames: Vec<Vec<u8>> = Vec::new();
        let mut placed: Vec<Placed> = Vec::with_capacity(batch.len());
        for (mut records, reply) in batch {
            for (i, record) in records.iter_mut().enumerate() {
                record.offset = next + i as u64;
            }
            if let Some(too_large) = records
                .iter()
                .map(|r| r.encoded_len() as u64)
                .find(|size| *size > self.max_encoded)
            {
                let _ = reply.send(Err(BackendError::RecordTooLarge {
                    size: too_large,
                    max: self.max_encoded,
                }));
                continue;
            }
            let count = records.len() as u64;
            let value_bytes = records.iter().map(|r| r.value.len() as u64).sum();
            frames.extend(records.iter().map(Message::encode_to_vec));
            placed.push(Placed {
                reply,
                appended: Appended {
                    first_offset: next,
                    count,
                },
                value_bytes,
            });
            next += count;
        }
        if frames.is_empty() {
            return;
        }
        let result = self.append_and_sync(&frames, first_of_batch);
        match result {
            Ok(end) => {
                self.committed.send_replace(end);
                self.metrics.records_appended.inc_by(frames.len() as u64);
                self.metrics
                    .commit_batch_records
                    .observe(frames.len() as f64);
                self.metrics.set_bounds(self.log.lowest_offset(), end);
                for p in placed {
                    self.metrics.bytes_appended.inc_by(p.value_bytes);
                    let _ = p.reply.send(Ok(p.appended));
                }
            }
            Err(error) => {
                tracing::error!(%error, "group commit failed");
                for p in placed {
                    let _ = p.reply.send(Err(error.clone()));
                }
            }
        }
    }

    /// Appends the frames, fsyncs once, and returns the new end of the log.
    fn append_and_sync(
        &self,
        frames: &[Vec<u8>],
        expected_first: u64,
    ) -> Result<u64, BackendError> {
        let range = self.log.append_batch(frames)?;
        if range.start != expected_first {
            // Only this thread appends, so this means a bug; refuse to acknowledge wrong offsets.
            return Err(BackendError::Storage(format!(
                "log appended at {} but the writer expected {expected_first}",
                range.start
            )));
        }
        let started = Instant::now();
        self.log.sync()?;
        self.metrics
            .fsync_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(range.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path, max_record_bytes: u64) -> LocalBackend {
        LocalBackend::open(
            dir,
            LogConfig {
                max_record_bytes,
                ..LogConfig::default()
            },
            GroupCommitConfig::default(),
            Arc::new(Metrics::new()),
            "n0".to_owned(),
            "127.0.0.1:1".to_owned(),
        )
        .unwrap()
    }

    fn rec(value: &[u8]) -> Record {
        Record {
            value: value.to_vec().into(),
            ..Record::default()
        }
    }

    #[tokio::test]
    async fn concurrent_appends_get_contiguous_offsets_and_only_durable_records_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(open(dir.path(), 1024));
        let mut tasks = Vec::new();
        for i in 0..50u8 {
            let backend = Arc::clone(&backend);
            tasks.push(tokio::spawn(async move {
                backend.append(vec![rec(&[i]), rec(&[i])]).await.unwrap()
            }));
        }
        let mut firsts = Vec::new();
        for task in tasks {
            let appended = task.await.unwrap();
            assert_eq!(appended.count, 2);
            firsts.push(appended.first_offset);
        }
        firsts.sort_unstable();
        assert_eq!(firsts, (0..50).map(|i| i * 2).collect::<Vec<u64>>());
        let bounds = backend.bounds(Consistency::Local).await.unwrap();
        assert_eq!((bounds.lowest, bounds.next), (0, 100));
        // Both records of one request are adjacent and carry their offsets.
        let a = backend.read(10).await.unwrap();
        let b = backend.read(11).await.unwrap();
        assert_eq!((a.offset, b.offset), (10, 11));
        assert_eq!(a.value, b.value);
        assert!(matches!(
            backend.read(100).await,
            Err(BackendError::OffsetPastEnd {
                offset: 100,
                next: 100
            })
        ));
        backend.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn a_too_large_request_fails_alone_and_others_in_its_batch_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(open(dir.path(), 64));
        let big = {
            let backend = Arc::clone(&backend);
            tokio::spawn(async move { backend.append(vec![rec(&[1u8; 200])]).await })
        };
        let small = backend.append(vec![rec(b"ok")]).await.unwrap();
        assert!(matches!(
            big.await.unwrap(),
            Err(BackendError::RecordTooLarge { max: 64, .. })
        ));
        assert_eq!(small.count, 1);
        assert_eq!(
            &backend.read(small.first_offset).await.unwrap().value[..],
            b"ok"
        );
        assert!(matches!(
            backend.append(Vec::new()).await,
            Err(BackendError::InvalidArgument(_))
        ));
        backend.shutdown().await.unwrap();
    }

    #[tokio::test]
    async fn records_survive_shutdown_and_appends_after_it_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let backend = open(dir.path(), 1024);
        backend.append(vec![rec(b"kept")]).await.unwrap();
        backend.shutdown().await.unwrap();
        assert!(matches!(
            backend.append(vec![rec(b"late")]).await,
            Err(BackendError::Closed)
        ));
        drop(backend);
        let reopened = open(dir.path(), 1024);
        assert_eq!(&reopened.read(0).await.unwrap().value[..], b"kept");
        assert!(reopened.read(1).await.is_err());
        reopened.shutdown().await.unwrap();
    }
}
