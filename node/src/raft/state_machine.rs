//! The Raft state machine *is* the user-visible commit log: applying a produce entry appends its
//! records (prost-encoded `log.v1.Record`, offsets contiguous) to a second [`Log`], the one clients
//! consume from. Offsets never change once acknowledged.
//!
//! Exactly-once apply across restarts: `sm-state.json` records the last applied Raft log id, the
//! membership, and the user log's `next_offset` *at that point*. It is written (atomically, after
//! syncing the user log) in the background, coalesced, at most every [`PERSIST_INTERVAL`], and by
//! the foreground paths (snapshot build and install, shutdown), all under one persist lock; it is
//! a versioned [`StateFile`], so a state captured before a newer one was written is never
//! written over it. A position is persisted only once this node's Raft log holds its entries
//! durably ([`super::durable_index`]): a leader may apply entries before its own fsync of them. On open, user-log records past the recorded `next_offset` are dropped and
//! openraft re-applies from the recorded log id — the Raft log is durable, so nothing is lost and
//! nothing is applied twice.
//!
//! Snapshots are views of the user log up to the applied point (see [`super::snapshot`]);
//! installing one replaces this node's user log with the snapshot's records, crash-atomically
//! (see [`super::snapshot_install`]: a committed install is finished by [`UserLogStateMachine::open`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, Stream, StreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use parking_lot::Mutex;
use proglog_log::{Joined, Log, LogConfig};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::codec;
use super::durable_file::{self, StateFile};
use super::durable_index::RaftDurable;
use super::error::RaftStoreError;
use super::snapshot::UserLogSnapshot;
use super::snapshot_install::{self as install, PendingInstall, crash_point};
use super::types::{
    LogId, ProduceApplied, SnapshotMeta, StoredMembership, TypeConfig, UserSnapshot,
};
use crate::metrics::Metrics;

mod persist;

const STATE_FILE: &str = "sm-state.json";
const USER_LOG_DIR: &str = "user-log";
/// Longest time applied-but-unpersisted progress may wait before `sm-state.json` catches up.
pub const PERSIST_INTERVAL: Duration = Duration::from_millis(100);
/// Most entries applied with one user-log append.
const MAX_APPLY_BATCH: usize = 4096;
/// Longest a shutdown waits for the Raft log to hold the applied entries before giving up on
/// persisting the newest position (the Raft log's fsync normally takes milliseconds).
pub const SHUTDOWN_PERSIST_WAIT: Duration = Duration::from_secs(3);

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

/// Where the state machine stands; persisted as `sm-state.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SmState {
    /// Bumped on every change; the [`StateFile`] version (kept outside the JSON of the state).
    #[serde(skip)]
    version: u64,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    /// The user log's next offset right after `last_applied` was applied.
    user_next_offset: u64,
    /// The last snapshot built or installed.
    snapshot: Option<SnapshotRecord>,
    /// Set between an install's commit point and the moment its records are all in the user log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending_install: Option<PendingInstall>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct SnapshotRecord {
    meta: SnapshotMeta,
    first_offset: u64,
    next_offset: u64,
}

#[derive(Debug)]
struct Shared {
    /// The state machine's directory (`raft/sm`).
    dir: PathBuf,
    /// The user log's configuration (without a record size limit).
    log_config: LogConfig,
    log: Arc<Log>,
    state: Mutex<SmState>,
    /// `sm-state.json`.
    file: StateFile<SmState>,
    /// Bumped after every apply; the persister writes the state when it changes.
    applied: watch::Sender<u64>,
    /// Serialises persisting (background writer, snapshot builder, snapshot install).
    persist_lock: tokio::sync::Mutex<()>,
    /// Snapshots installed since start (a node catching up from far behind).
    installed_snapshots: AtomicU64,
    /// The node's Prometheus metrics: applied records count as appended.
    metrics: Arc<Metrics>,
    /// How far the node's Raft log is durable: no position beyond it is persisted.
    raft_durable: RaftDurable,
}

impl Shared {
    /// Installs a snapshot, crash-atomically (the steps are [`super::snapshot_install`]'s).
    /// Blocking; the caller holds the persist lock.
    fn install(&self, meta: SnapshotMeta, snapshot: UserLogSnapshot) -> Result<(), RaftStoreError> {
        let staged = install::stage(&self.dir, &snapshot, &self.log_config)?;
        crash_point("install-staged");
        let pending = PendingInstall {
            first_offset: snapshot.first_offset,
            next_offset: snapshot.next_offset,
        };
        let committed = {
            let mut state = self.state.lock();
            *state = SmState {
                version: state.version + 1,
                last_applied: meta.last_log_id,
                last_membership: meta.last_membership.clone(),
                user_next_offset: snapshot.next_offset,
                snapshot: Some(SnapshotRecord {
                    meta,
                    first_offset: snapshot.first_offset,
                    next_offset: snapshot.next_offset,
                }),
                pending_install: Some(pending),
            };
            state.clone()
        };
        self.file.store(committed.version, &committed)?;
        crash_point("install-committed");
        install::replace_records(&self.log, &staged, pending)?;
        drop(staged);
        let finished = {
            let mut state = self.state.lock();
            state.pending_install = None;
            state.version += 1;
            state.clone()
        };
        self.file.store(finished.version, &finished)?;
        crash_point("install-done");
        install::remove_leftover(&self.dir)?;
        self.installed_snapshots.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// openraft's [`RaftStateMachine`]: the user-visible commit log.
#[derive(Debug, Clone)]
pub struct UserLogStateMachine {
    shared: Arc<Shared>,
}

impl UserLogStateMachine {
    /// Opens (or creates) the state machine under `dir`, dropping user-log records applied after
    /// the last persisted state (openraft re-applies them). Must run within a tokio runtime.
    /// Alone, without a Raft log to wait for (tools and tests); a node uses
    /// [`UserLogStateMachine::open_with_metrics`].
    pub fn open(dir: &Path, user_log_config: LogConfig) -> Result<Self, RaftStoreError> {
        Self::open_with_metrics(
            dir,
            user_log_config,
            Arc::new(Metrics::new()),
            RaftDurable::always(),
        )
    }

    /// [`UserLogStateMachine::open`], counting applied records in `metrics`, persisting only
    /// positions the node's Raft log holds durably (`raft_durable`, from
    /// [`super::log_store::RaftLogStore::durable`]).
    pub fn open_with_metrics(
        dir: &Path,
        user_log_config: LogConfig,
        metrics: Arc<Metrics>,
        raft_durable: RaftDurable,
    ) -> Result<Self, RaftStoreError> {
        durable_file::create_dir(dir)?;
        let (file, state) = StateFile::<SmState>::open(dir.join(STATE_FILE))?;
        let mut state = SmState {
            version: file.version(),
            ..state.unwrap_or_default()
        };
        let log_config = committed_records_config(user_log_config);
        let log = Log::open(dir.join(USER_LOG_DIR), log_config.clone())?;
        match state.pending_install {
            // A crash interrupted an install after its commit point: finish it.
            Some(pending) => {
                let staged = install::reopen(dir, pending, &log_config)?;
                install::replace_records(&log, &staged, pending)?;
                drop(staged);
                state.pending_install = None;
                state.version += 1;
                file.store(state.version, &state)?;
                install::remove_leftover(dir)?;
            }
            // A crash before the commit point leaves the old state and, maybe, staged records.
            None => install::remove_leftover(dir)?,
        }
        let next = log.next_offset();
        if next > state.user_next_offset {
            log.truncate_suffix(state.user_next_offset.max(log.lowest_offset()))?;
            log.sync()?;
        } else if next < state.user_next_offset {
            return Err(RaftStoreError::Corrupt(format!(
                "the user log ends at offset {next} but {STATE_FILE} says {} records were applied",
                state.user_next_offset
            )));
        }
        let (applied, applied_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            log_config,
            log: Arc::new(log),
            state: Mutex::new(state),
            file,
            applied,
            persist_lock: tokio::sync::Mutex::new(()),
            installed_snapshots: AtomicU64::new(0),
            metrics,
            raft_durable,
        });
        tokio::spawn(persist::persist_in_background(
            Arc::downgrade(&shared),
            applied_rx,
        ));
        Ok(Self { shared })
    }

    /// The user-visible log (consumers read it; only this state machine appends to it).
    pub fn user_log(&self) -> Arc<Log> {
        self.shared.log.clone()
    }

    /// The last applied Raft log id.
    pub fn last_applied(&self) -> Option<LogId> {
        self.shared.state.lock().last_applied
    }

    /// The last Raft log id the current snapshot covers.
    pub fn snapshot_last_log_id(&self) -> Option<LogId> {
        let state = self.shared.state.lock();
        state.snapshot.as_ref().and_then(|s| s.meta.last_log_id)
    }

    /// How many snapshots this state machine installed since it was opened.
    pub fn installed_snapshots(&self) -> u64 {
        self.shared.installed_snapshots.load(Ordering::Relaxed)
    }

    /// Applies consecutive entries: their records are appended with one `append_batch`, then
    /// the state advances and each entry's responder gets its offsets.
    fn apply_batch(&self, batch: Vec<EntryResponder<TypeConfig>>) -> Result<(), RaftStoreError> {
        let log = &self.shared.log;
        let start = log.next_offset();
        let mut next = start;
        // Each record is stored as its encoded message from the Raft entry (a slice, no copy)
        // followed by the fields applying assigns; protobuf decoding lets the later fields win.
        let mut messages = Vec::new();
        let mut assigned = Vec::new();
        let mut assigned_ends = Vec::new();
        let mut value_bytes = 0u64;
        let mut responses = Vec::with_capacity(batch.len());
        let mut last_applied = None;
        let mut membership = None;
        for (entry, responder) in batch {
            let log_id = entry.log_id;
            let first_offset = next;
            let stored = codec::encoded_records(&entry).transpose()?;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(produce) => {
                    #[cfg(feature = "failpoints")]
                    super::failpoint::on_apply(&produce.records)?;
                    let stored = match stored {
                        Some(stored) => stored,
                        None => produce
                            .records
                            .iter()
                            .map(|r| r.encode_to_vec().into())
                            .collect(),
                    };
                    value_bytes += produce
                        .records
                        .iter()
                        .map(|r| r.value.len() as u64)
                        .sum::<u64>();
                    for message in stored {
                        messages.push(message);
                        prost::encoding::uint64::encode(2, &next, &mut assigned);
                        prost::encoding::uint64::encode(3, &log_id.leader_id.term, &mut assigned);
                        assigned_ends.push(assigned.len());
                        next += 1;
                    }
                }
                EntryPayload::Membership(m) => {
                    membership = Some(StoredMembership::new(Some(log_id), m))
                }
            }
            last_applied = Some(log_id);
            let applied = ProduceApplied {
                first_offset,
                count: next - first_offset,
            };
            responses.push((responder, applied));
        }
        if !messages.is_empty() {
            let mut assigned_start = 0;
            let records: Vec<Joined<&[u8], &[u8]>> = messages
                .iter()
                .zip(&assigned_ends)
                .map(|(message, &end)| {
                    let record = Joined(message.as_ref(), &assigned[assigned_start..end]);
                    assigned_start = end;
                    record
                })
                .collect();
            let range = log.append_batch(&records)?;
            if range.start != start {
                return Err(RaftStoreError::Corrupt(format!(
                    "user log appended at {} but the state machine expected {start}",
                    range.start
                )));
            }
            let metrics = &self.shared.metrics;
            metrics.records_appended.inc_by(range.end - range.start);
            metrics.bytes_appended.inc_by(value_bytes);
            metrics.set_bounds(log.lowest_offset(), range.end);
        }
        {
            let mut state = self.shared.state.lock();
            state.version += 1;
            state.last_applied = last_applied;
            if let Some(m) = membership {
                state.last_membership = m;
            }
            state.user_next_offset = next;
        }
        for (responder, applied) in responses {
            if let Some(responder) = responder {
                responder.send(applied);
            }
        }
        Ok(())
    }

    fn snapshot_of(&self, record: &SnapshotRecord) -> UserSnapshot {
        UserSnapshot {
            meta: record.meta.clone(),
            snapshot: UserLogSnapshot {
                log: self.shared.log.clone(),
                first_offset: record.first_offset.max(self.shared.log.lowest_offset()),
                next_offset: record.next_offset,
                staging: None,
            },
        }
    }
}

impl RaftStateMachine<TypeConfig> for UserLogStateMachine {
    type SnapshotData = UserLogSnapshot;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let state = self.shared.state.lock();
        Ok((state.last_applied, state.last_membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut applied_any = false;
        let mut ended = false;
        while !ended {
            let Some(first) = entries.next().await else {
                break;
            };
            // Take every entry that is already available: they are applied with one append.
            let mut batch = vec![first?];
            while batch.len() < MAX_APPLY_BATCH {
                match entries.next().now_or_never() {
                    Some(Some(item)) => batch.push(item?),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            // Appending writes files (and a segment roll fsyncs): on a blocking thread.
            let sm = self.clone();
            tokio::task::spawn_blocking(move || sm.apply_batch(batch))
                .await
                .map_err(|e| io::Error::other(format!("applying entries failed: {e}")))??;
            applied_any = true;
        }
        if applied_any {
            self.shared.applied.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: UserLogSnapshot,
    ) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        // No other persist may run meanwhile: one that captured the old state would sync the
        // half-replaced log and write the old state over the new one.
        let _persisting = self.shared.persist_lock.lock().await;
        tokio::task::spawn_blocking(move || shared.install(meta, snapshot))
            .await
            .map_err(|e| io::Error::other(format!("installing a snapshot failed: {e}")))??;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<UserSnapshot>, io::Error> {
        let record = self.shared.state.lock().snapshot.clone();
        Ok(record.map(|r| self.snapshot_of(&r)))
    }
}

/// Decodes a user-log record.
pub fn decode_record(bytes: &Bytes) -> Result<proglog_proto::log::v1::Record, RaftStoreError> {
    proglog_proto::log::v1::Record::decode(bytes.clone())
        .map_err(|e| RaftStoreError::Corrupt(format!("user log record: {e}")))
}
