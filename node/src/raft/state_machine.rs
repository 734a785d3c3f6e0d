//! The Raft state machine *is* the user-visible commit log: a produce entry's records are in the
//! user log ([`UserLog`]) already, written by the Raft log store when the entry was appended (one
//! write per record), so applying an entry only moves the *applied end* readers may not pass and
//! answers each produce with its offsets. Offsets never change once acknowledged.
//!
//! Exactly-once apply across restarts: `sm-state.json` records the last applied Raft log id, the
//! membership, and the user log's end *at that point*. It is written (atomically) in the
//! background, coalesced, at most every [`PERSIST_INTERVAL`], and by the foreground paths
//! (snapshot build and install, shutdown), all under one persist lock; it is a versioned
//! [`StateFile`], so a state captured before a newer one was written is never written over it. A
//! position is persisted only once this node's Raft log holds its entries, and so the user log
//! their records, durably ([`super::durable_index`]): a leader may apply entries before its own
//! fsync of them. On open, openraft re-applies from the recorded log id; the records past the
//! recorded end stay (they belong to entries in the Raft log, see
//! [`super::log_store::RaftLogStore::reconcile`]).
//!
//! Snapshots are views of the user log up to the applied point (see [`super::snapshot`]);
//! installing one replaces this node's user log with the snapshot's records, crash-atomically
//! (see [`super::snapshot_install`]: a committed install is finished by
//! [`UserLogStateMachine::open`]), unless the Raft log holds the snapshot's last entry, and so the
//! user log its records already.

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
use proglog_log::LogConfig;
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::durable_file::{self, StateFile};
use super::durable_index::RaftDurable;
use super::error::RaftStoreError;
use super::snapshot::UserLogSnapshot;
use super::snapshot_install::{self as install, PendingInstall, crash_point};
use super::types::{
    LogId, ProduceApplied, SnapshotMeta, StoredMembership, TypeConfig, UserSnapshot,
};
use super::user_log::UserLog;
use crate::metrics::Metrics;

mod persist;

const STATE_FILE: &str = "sm-state.json";
/// The user log's directory under the state machine's (`raft/sm`).
pub const USER_LOG_DIR: &str = "user-log";
/// Longest time applied-but-unpersisted progress may wait before `sm-state.json` catches up.
pub const PERSIST_INTERVAL: Duration = Duration::from_millis(100);
/// Most entries applied with one user-log append.
const MAX_APPLY_BATCH: usize = 4096;
/// Longest a shutdown waits for the Raft log to hold the applied entries before giving up on
/// persisting the newest position (the Raft log's fsync normally takes milliseconds).
pub const SHUTDOWN_PERSIST_WAIT: Duration = Duration::from_secs(3);

/// Where the state machine stands; persisted as `sm-state.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SmState {
    /// Bumped on every change; the [`StateFile`] version (kept outside the JSON of the state).
    #[serde(skip)]
    version: u64,
    last_applied: Option<LogId>,
    last_membership: StoredMembership,
    /// The user log's applied end right after `last_applied` was applied.
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
    user: Arc<UserLog>,
    /// Where the Raft log's entry with a log id ends in the user log, if the Raft log holds
    /// exactly that entry (`None` for a state machine opened alone).
    raft_entries: Option<RaftEntryEnd>,
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
        let _writes = self.user.lock_writes();
        if self.holds_records_of(&meta, &snapshot)? {
            return self.install_position(meta, snapshot);
        }
        let staged = install::stage(&self.dir, &snapshot, &self.log_config)?;
        crash_point("install-staged");
        let pending = PendingInstall {
            first_offset: snapshot.first_offset,
            next_offset: snapshot.next_offset,
        };
        let committed = self.move_to_snapshot(meta, &snapshot, Some(pending));
        self.file.store(committed.version, &committed)?;
        crash_point("install-committed");
        install::replace_records(self.user.log(), &staged, pending)?;
        drop(staged);
        self.user.publish_applied(snapshot.next_offset);
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

    /// True when this node's Raft log holds the snapshot's last entry: then (the logs match up
    /// to there) the user log holds the snapshot's records already, as appended with the
    /// entries, and entries after it may follow in the Raft log with their records after them,
    /// which replacing the records would cut off.
    fn holds_records_of(
        &self,
        meta: &SnapshotMeta,
        snapshot: &UserLogSnapshot,
    ) -> Result<bool, RaftStoreError> {
        let (Some(lookup), Some(last)) = (&self.raft_entries, meta.last_log_id) else {
            return Ok(false);
        };
        let held = (lookup.0)(last)?.is_some_and(|end| end == snapshot.next_offset);
        Ok(held && self.user.log().next_offset() >= snapshot.next_offset)
    }

    /// Makes the snapshot's position the current state (in memory; the caller persists the
    /// returned copy), marked `pending` while its records are not all in the user log.
    fn move_to_snapshot(
        &self,
        meta: SnapshotMeta,
        snapshot: &UserLogSnapshot,
        pending: Option<PendingInstall>,
    ) -> SmState {
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
            pending_install: pending,
        };
        state.clone()
    }

    /// An install whose records are here already: only the position moves (one atomic write).
    fn install_position(
        &self,
        meta: SnapshotMeta,
        snapshot: UserLogSnapshot,
    ) -> Result<(), RaftStoreError> {
        let state = self.move_to_snapshot(meta, &snapshot, None);
        // The records were appended with the entries, maybe not fsynced yet.
        self.user.log().sync()?;
        self.file.store(state.version, &state)?;
        self.user.publish_applied(snapshot.next_offset);
        self.installed_snapshots.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Looks up an entry in the Raft log by log id: the end of its records in the user log when the
/// Raft log holds exactly that entry (see `RaftLogStoreReader::records_end_of`).
#[derive(Clone)]
pub struct RaftEntryEnd(
    pub Arc<dyn Fn(LogId) -> Result<Option<u64>, RaftStoreError> + Send + Sync + 'static>,
);

impl std::fmt::Debug for RaftEntryEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftEntryEnd")
    }
}

/// openraft's [`RaftStateMachine`]: the user-visible commit log.
#[derive(Debug, Clone)]
pub struct UserLogStateMachine {
    shared: Arc<Shared>,
}

impl UserLogStateMachine {
    /// Opens (or creates) the state machine under `dir` with its own user log (in
    /// `dir/user-log`), without a Raft log: tools and tests. Must run within a tokio runtime. A
    /// node opens both halves with [`super::storage_pair::open_storage`].
    pub fn open(dir: &Path, user_log_config: LogConfig) -> Result<Self, RaftStoreError> {
        durable_file::create_dir(dir)?;
        let user = UserLog::open(&dir.join(USER_LOG_DIR), user_log_config)?;
        Self::open_with_metrics(
            dir,
            user,
            Arc::new(Metrics::new()),
            RaftDurable::always(),
            None,
        )
    }

    /// [`UserLogStateMachine::open`] on a shared `user` log, counting applied records in
    /// `metrics`, persisting only positions the node's Raft log holds durably (`raft_durable`,
    /// from [`super::log_store::RaftLogStore::durable`]), skipping the record copy of a snapshot
    /// install whose last entry `raft_entries` finds in the Raft log. Finishes an install a crash
    /// interrupted after its commit point.
    pub fn open_with_metrics(
        dir: &Path,
        user: Arc<UserLog>,
        metrics: Arc<Metrics>,
        raft_durable: RaftDurable,
        raft_entries: Option<RaftEntryEnd>,
    ) -> Result<Self, RaftStoreError> {
        durable_file::create_dir(dir)?;
        let (file, state) = StateFile::<SmState>::open(dir.join(STATE_FILE))?;
        let mut state = SmState {
            version: file.version(),
            ..state.unwrap_or_default()
        };
        let log_config = user.log().config().clone();
        let log = user.log();
        match state.pending_install {
            // A crash interrupted an install after its commit point: finish it.
            Some(pending) => {
                let staged = install::reopen(dir, pending, &log_config)?;
                install::replace_records(log, &staged, pending)?;
                drop(staged);
                state.pending_install = None;
                state.version += 1;
                file.store(state.version, &state)?;
                install::remove_leftover(dir)?;
            }
            // A crash before the commit point leaves the old state and, maybe, staged records.
            None => install::remove_leftover(dir)?,
        }
        // Records past the applied end belong to unapplied entries of the Raft log (which
        // `RaftLogStore::reconcile` checks); fewer records than were applied is lost data.
        let next = log.next_offset();
        if next < state.user_next_offset {
            return Err(RaftStoreError::Corrupt(format!(
                "the user log ends at offset {next} but {STATE_FILE} says {} records were applied",
                state.user_next_offset
            )));
        }
        user.publish_applied(state.user_next_offset);
        let (applied, applied_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            log_config,
            user,
            raft_entries,
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

    /// The user-visible log (consumers read it up to its applied end).
    pub fn user_log(&self) -> Arc<UserLog> {
        self.shared.user.clone()
    }

    /// The last applied entry and the user log's end at that point (for
    /// [`super::log_store::RaftLogStore::reconcile`]).
    pub fn applied_position(&self) -> (Option<LogId>, u64) {
        let state = self.shared.state.lock();
        (state.last_applied, state.user_next_offset)
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

    /// Applies consecutive entries: their records are in the user log already (appended with
    /// the entries), so the applied end moves past them and each entry's responder gets its
    /// offsets. No file I/O.
    fn apply_batch(&self, batch: Vec<EntryResponder<TypeConfig>>) -> Result<(), RaftStoreError> {
        let user = &self.shared.user;
        let start = self.shared.state.lock().user_next_offset;
        let mut next = start;
        let mut value_bytes = 0u64;
        let mut responses = Vec::with_capacity(batch.len());
        let mut last_applied = None;
        let mut membership = None;
        for (entry, responder) in batch {
            let log_id = entry.log_id;
            let first_offset = next;
            match entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(produce) => {
                    #[cfg(feature = "failpoints")]
                    super::failpoint::on_apply(&produce)?;
                    // Counted, not parsed: the records stay in their encoding.
                    value_bytes += produce.value_bytes();
                    next += produce.len();
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
        let log = user.log();
        if next > log.next_offset() {
            return Err(RaftStoreError::Corrupt(format!(
                "applying up to {last_applied:?} needs user records up to offset {next} but the \
                 user log ends at {}",
                log.next_offset()
            )));
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
        user.publish_applied(next);
        if next > start {
            let metrics = &self.shared.metrics;
            metrics.records_appended.inc_by(next - start);
            metrics.bytes_appended.inc_by(value_bytes);
            metrics.set_bounds(log.lowest_offset(), next);
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
                log: self.shared.user.log().clone(),
                first_offset: record
                    .first_offset
                    .max(self.shared.user.log().lowest_offset()),
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
            // No file I/O: the records were written when the entries were appended.
            self.apply_batch(batch)?;
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
