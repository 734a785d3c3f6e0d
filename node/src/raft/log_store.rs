//! Raft log storage on the project's segmented [`Log`], with each record written once: a Raft
//! entry is one record of the Raft log (record offset == Raft index) holding its header and where
//! its records are in the user log ([`StoredEntry`](super::stored_entry::StoredEntry)); a produce entry's records themselves go to
//! the user log ([`UserLog`]) when the entry is appended, with their offset and term assigned.
//! Reading an entry back rebuilds it from both (or takes it from the tail cache); `records.rs`.
//!
//! Group commit: `append` writes the entries (readable at once) and hands openraft's
//! [`IOFlushed`] callback to a flusher thread, which drains every callback queued meanwhile and
//! covers them all with one fsync of each log (`flush.rs`).
//!
//! The vote and the last purged log id live in `raft-state.json`, replaced atomically
//! (write-temp-fsync-rename) before `save_vote`/`purge` return. The committed log id is an
//! optimisation (it saves re-applying after a restart), so it is written in the background, at
//! most twice a second and on close, by the same atomic method into `raft-committed.json`. Both
//! are versioned [`StateFile`]s: the background writer and `close_log` race, and the one holding
//! the older committed id must not overwrite the newer.
//!
//! The newest entries' wire encodings are also kept in memory (`TailCache`, bounded): the leader
//! reads every entry back once per follower to replicate it, and serving those reads from memory
//! saves rebuilding it from the two logs; the decoded records of both followers then share the
//! same bytes.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;

use openraft::storage::{IOFlushed, LogState, RaftLogStorage};
use openraft::{OptionalSend, RaftLogReader};
use parking_lot::Mutex;
use proglog_log::{Log, LogConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::codec;
use super::durable_file::{self, StateFile};
use super::durable_index::{DurableIndex, RaftDurable};
use super::error::RaftStoreError;
use super::tail_cache::TailCache;
use super::types::{Entry, LogId, TypeConfig, Vote};
use super::user_log::UserLog;
use crate::metrics::Metrics;

mod flush;
mod reconcile;
mod records;

const STATE_FILE: &str = "raft-state.json";
const COMMITTED_FILE: &str = "raft-committed.json";
/// How often, at most, the committed log id is persisted (see `write_committed_in_background`).
const COMMITTED_WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(500);
const LOG_DIR: &str = "log";
/// Most encoded bytes the in-memory tail holds (about 8 times what a follower that keeps up has
/// in flight with 1 KiB records).
const TAIL_CACHE_BYTES: usize = 64 << 20;
/// The storage layout this version writes, recorded in `raft-state.json`: 2 is one write per
/// record (the Raft log refers to records in the user log). Absent in directories written by the
/// two-log layout, which this version refuses (see [`RaftLogStore::open_with_metrics`]).
const LAYOUT_ONE_WRITE: u32 = 2;

/// The durable part of Raft's own state (not the log entries).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct HardState {
    /// Bumped on every change; the [`StateFile`] version (kept outside the JSON of the state).
    #[serde(skip)]
    version: u64,
    vote: Option<Vote>,
    /// Entries up to and including this id are purged; reads never return them even when the
    /// segment that holds them still exists (the log deletes whole segments only).
    last_purged: Option<LogId>,
    /// [`LAYOUT_ONE_WRITE`] once this version wrote the directory; 0 when an earlier one did.
    #[serde(default)]
    layout: u32,
}

#[derive(Debug)]
struct Shared {
    log: Arc<Log>,
    /// Where produce entries' records are (written by `append_entries`).
    user: Arc<UserLog>,
    /// The current hard state; held only to copy or replace it, never across file I/O, so the
    /// Raft core's reads do not wait for fsyncs.
    hard: Mutex<HardState>,
    /// Serialises the writers of `raft-state.json` (`save_vote`, `purge`, on blocking threads):
    /// held across a write's fsyncs instead of `hard`.
    hard_writes: Mutex<()>,
    hard_file: StateFile<HardState>,
    /// The committed log id, with a version bumped on every save (for `committed_file`).
    committed: watch::Sender<(u64, Option<LogId>)>,
    committed_file: Arc<StateFile<Option<LogId>>>,
    tail: Mutex<TailCache>,
    /// How far the log is durable, for the state machine (see `durable_index`).
    durable: DurableIndex,
}

impl Shared {
    fn has_state(&self) -> bool {
        let hard = self.hard.lock();
        hard.vote.is_some() || hard.last_purged.is_some() || !self.log.is_empty()
    }

    /// First index a reader may return.
    fn first_readable(&self) -> u64 {
        let purged_next = self.hard.lock().last_purged.map_or(0, |id| id.index + 1);
        purged_next.max(self.log.lowest_offset())
    }

    /// Makes `change` of the hard state durable, then current; false if there was no change. Blocking (two fsyncs); writers
    /// are serialised by `hard_writes`, so versions are bumped and written in order, while
    /// readers of `hard` see the previous state until the new one is durable.
    fn change_hard(
        &self,
        change: impl FnOnce(&HardState) -> Option<HardState>,
    ) -> Result<bool, RaftStoreError> {
        let _writing = self.hard_writes.lock();
        let current = self.hard.lock().clone();
        let Some(mut next) = change(&current) else {
            return Ok(false);
        };
        next.version = current.version + 1;
        self.hard_file.store(next.version, &next)?;
        *self.hard.lock() = next;
        Ok(true)
    }

    /// Writes the newest committed log id (no-op when that version is on disk already).
    fn persist_committed(&self) -> Result<(), RaftStoreError> {
        let (version, committed) = *self.committed.borrow();
        self.committed_file.store(version, &committed).map(drop)
    }
}

/// openraft's [`RaftLogStorage`] on a segmented [`Log`].
#[derive(Debug)]
pub struct RaftLogStore {
    shared: Arc<Shared>,
    flush_requests: std_mpsc::Sender<IOFlushed<TypeConfig>>,
}

/// A cheap handle reading entries concurrently with appends (it sees later appends too).
#[derive(Debug, Clone)]
pub struct RaftLogStoreReader {
    shared: Arc<Shared>,
}

impl RaftLogStore {
    /// Opens (or creates) the Raft log under `dir`, keeping produce entries' records in `user`.
    /// Must be called within a tokio runtime: the committed-id writer runs as a task. Before
    /// Raft starts, [`RaftLogStore::reconcile`] must run once with the state machine's position.
    pub fn open(dir: &Path, config: LogConfig, user: Arc<UserLog>) -> Result<Self, RaftStoreError> {
        Self::open_with_metrics(dir, config, user, Arc::new(Metrics::new()))
    }

    /// [`RaftLogStore::open`], timing the fsyncs in `metrics`. Refuses a directory written by
    /// the two-log layout of earlier versions (every record stored twice): those Raft logs hold
    /// records this version does not look for there.
    pub fn open_with_metrics(
        dir: &Path,
        config: LogConfig,
        user: Arc<UserLog>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, RaftStoreError> {
        durable_file::create_dir(dir)?;
        // Entries are size-checked when proposed; a follower must store whatever its leader
        // sends, whatever its own limits (see `committed_records_config`).
        let config = super::user_log::committed_records_config(config);
        let log = Arc::new(Log::open(dir.join(LOG_DIR), config)?);
        let (hard_file, hard) = StateFile::<HardState>::open(dir.join(STATE_FILE))?;
        let hard = HardState {
            version: hard_file.version(),
            ..hard.unwrap_or_default()
        };
        let written_before = hard.vote.is_some() || hard.last_purged.is_some() || !log.is_empty();
        if hard.layout != LAYOUT_ONE_WRITE && written_before {
            return Err(RaftStoreError::Corrupt(format!(
                "{} was written by a ProgLog version that stored every record twice (in the Raft \
                 log and in the user log); this version stores each record once and cannot read \
                 that layout. Upgrade a cluster by replacing its members one at a time: remove \
                 the member, wipe its data directory and add it back (it receives a snapshot), or \
                 keep running the earlier version",
                dir.display()
            )));
        }
        // What a kill left in the page cache is not durable yet: sync it, then it counts.
        log.sync()?;
        user.log().sync()?;
        let purged_next = hard.last_purged.map_or(0, |id| id.index + 1);
        let durable = DurableIndex::new(log.next_offset().max(purged_next));
        let (committed_file, committed) = StateFile::open(dir.join(COMMITTED_FILE))?;
        let (committed_tx, committed_rx) =
            watch::channel((committed_file.version(), committed.flatten()));
        let committed_file = Arc::new(committed_file);
        let shared = Arc::new(Shared {
            log,
            user,
            hard: Mutex::new(hard),
            hard_writes: Mutex::new(()),
            hard_file,
            committed: committed_tx,
            committed_file: committed_file.clone(),
            tail: Mutex::new(TailCache::default()),
            durable,
        });
        if !written_before {
            shared.change_hard(|hard| {
                (hard.layout != LAYOUT_ONE_WRITE).then(|| HardState {
                    layout: LAYOUT_ONE_WRITE,
                    ..hard.clone()
                })
            })?;
        }
        tokio::spawn(flush::write_committed_in_background(
            committed_file,
            committed_rx,
        ));
        let (flush_requests, flush_queue) = std_mpsc::channel();
        let flusher = shared.clone();
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || flush::flush_loop(&flusher, &flush_queue, &metrics))
            .map_err(RaftStoreError::Io)?;
        Ok(Self {
            shared,
            flush_requests,
        })
    }

    /// True when this store holds any Raft state (see [`RaftLogStoreReader::has_state`]).
    pub fn has_state(&self) -> bool {
        self.shared.has_state()
    }

    /// How far this log is durable on disk, for the state machine
    /// ([`super::state_machine::UserLogStateMachine::open_with_metrics`]).
    pub fn durable(&self) -> RaftDurable {
        self.shared.durable.subscribe()
    }

    /// A reader sharing this store.
    pub fn reader(&self) -> RaftLogStoreReader {
        RaftLogStoreReader {
            shared: self.shared.clone(),
        }
    }
}

impl RaftLogStoreReader {
    /// True when the store holds any Raft state (a vote or entries): the node was initialized or
    /// joined a cluster.
    pub fn has_state(&self) -> bool {
        self.shared.has_state()
    }

    /// Syncs and closes the Raft log, releasing its directory lock, once Raft has stopped (the
    /// flush thread and openraft's tasks may still hold the `Log` for a moment after that).
    /// The last committed log id is written first, since the background writer may be up to
    /// `COMMITTED_WRITE_INTERVAL` (500 ms) behind.
    pub fn close_log(&self) -> Result<(), proglog_log::LogError> {
        if let Err(e) = self.shared.persist_committed() {
            tracing::warn!(error = %e, "persisting the raft committed index on close failed");
        }
        self.shared.log.close()
    }
}

fn range_to_bounds<RB: RangeBounds<u64>>(range: &RB) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s + 1,
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

/// Entries in `range`: from the tail cache in place when it holds them all (what replicating
/// to a follower that keeps up reads), else from the files on a blocking thread, so a lagging
/// follower never makes an async worker wait for the disk.
async fn read_entries(shared: &Arc<Shared>, start: u64, end: u64) -> Result<Vec<Entry>, io::Error> {
    if let Some(cached) = shared.read_range_cached(start, end) {
        return Ok(cached);
    }
    let shared = Arc::clone(shared);
    tokio::task::spawn_blocking(move || shared.read_range(start, end))
        .await
        .map_err(|e| io::Error::other(format!("raft log read task failed: {e}")))?
        .map_err(io::Error::from)
}

impl RaftLogReader<TypeConfig> for RaftLogStoreReader {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        read_entries(&self.shared, start, end).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.hard.lock().vote)
    }
}

impl RaftLogReader<TypeConfig> for RaftLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, io::Error> {
        let (start, end) = range_to_bounds(&range);
        read_entries(&self.shared, start, end).await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, io::Error> {
        Ok(self.shared.hard.lock().vote)
    }
}

impl RaftLogStore {
    /// The id of the last entry, or of the last purged one when no entry is left (reads the
    /// log's last entry: call on a blocking thread, or while opening).
    pub fn last_log_id(&self) -> Result<Option<LogId>, RaftStoreError> {
        let last_purged = self.shared.hard.lock().last_purged;
        let next = self.shared.log.next_offset();
        if next > self.shared.first_readable() {
            Ok(Some(codec::decode_log_id(
                &self.shared.log.read(next - 1)?,
            )?))
        } else {
            Ok(last_purged)
        }
    }
}

impl RaftLogStorage<TypeConfig> for RaftLogStore {
    type LogReader = RaftLogStoreReader;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        // Two statements: a guard in a struct literal would live until its end, and
        // `last_log_id` takes the same lock.
        let last_purged_log_id = self.shared.hard.lock().last_purged;
        let last_log_id = self.last_log_id()?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.reader()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let vote = *vote;
        run_blocking(move || {
            shared
                .change_hard(|hard| {
                    // openraft saves the vote again on every append from the leader; rewriting the
                    // same vote costs two fsyncs and a new inode each time, for nothing.
                    (hard.vote != Some(vote)).then(|| HardState {
                        vote: Some(vote),
                        ..hard.clone()
                    })
                })
                .map(drop)
        })
        .await
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), io::Error> {
        self.shared.committed.send_modify(|(version, current)| {
            *version += 1;
            *current = committed;
        });
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, io::Error> {
        Ok(self.shared.committed.borrow().1)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut first_index = None;
        let entries: Vec<Entry> = entries.into_iter().collect();
        let mut wire = Vec::with_capacity(entries.len());
        for entry in &entries {
            first_index.get_or_insert(entry.log_id.index);
            // Entries received from the leader keep the bytes they came in (encode once).
            wire.push(codec::entry_bytes(entry)?);
        }
        // The writes (and a segment roll's fsync) run on a blocking thread; the flusher thread
        // then covers them with a shared fsync and calls back.
        let shared = self.shared.clone();
        let flush_requests = self.flush_requests.clone();
        run_blocking(move || {
            if let Some(first) = first_index {
                shared.append_entries(first, &entries, &wire)?;
            }
            flush_requests
                .send(callback)
                .map_err(|_| RaftStoreError::Io(io::Error::other("raft log flusher stopped")))
        })
        .await
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId>) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index + 1);
        let shared = self.shared.clone();
        shared.tail.lock().clear_from(from);
        run_blocking(move || {
            let _writes = shared.user.lock_writes();
            if from < shared.log.next_offset() {
                shared.truncate_from(from)?;
                shared.log.sync()?;
                shared.user.log().sync()?;
            }
            Ok(())
        })
        .await
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        run_blocking(move || {
            // Record the purge first: a crash after this but before deleting segments only
            // leaves unreadable entries behind, never a log that claims purged entries exist.
            let purged = shared.change_hard(|hard| {
                hard.last_purged
                    .is_none_or(|p| p.index < log_id.index)
                    .then(|| HardState {
                        last_purged: Some(log_id),
                        ..hard.clone()
                    })
            })?;
            if !purged {
                return Ok(());
            }
            // Entries up to the purge are covered by a snapshot now (its record is durable).
            shared.durable.purged(log_id.index + 1);
            shared.tail.lock().clear_through(log_id.index);
            if log_id.index + 1 >= shared.log.next_offset() {
                shared.log.reset(log_id.index + 1)?;
            } else {
                shared.log.truncate_prefix(log_id.index + 1)?;
            }
            Ok(())
        })
        .await
    }
}

async fn run_blocking<F>(f: F) -> Result<(), io::Error>
where
    F: FnOnce() -> Result<(), RaftStoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("raft storage task failed: {e}")))?
        .map_err(io::Error::from)
}
