//! [`Log`]: the segmented commit log — appends, reads, group-commit `sync`, offset listeners
//! (notification of new records), segment listing, close and remove. Truncation lives in `truncation.rs`, recovery in
//! `recovery.rs`, the streaming reader in `reader.rs`, retention in `retention.rs`.
//!
//! Locking: `writer` (a mutex) serializes appends, `truncate_suffix`, `reset` and `close`;
//! `segments` (a read-write lock) is taken for reading by readers and by the writer while
//! appending, and for writing only to add or remove segments or to truncate (retention takes
//! only this one, and unlinks files after releasing it). Reads therefore never wait for an
//! append or a `sync`; they wait only for a roll's list update, or for the rare
//! `truncate_suffix`/`reset`, which hold it across their file operations. Lock order:
//! `sync_lock`, then `writer`, then `segments`.

use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use super::RecordBytes;
use super::config::LogConfig;
use super::error::{LogError, Result};
use super::recovery;
use super::segment::{Segment, SegmentInfo, SyncHandles};
use super::store::{FRAME_HEADER_BYTES, encode_frame_parts};

/// A segmented, append-only commit log in one directory. See the [module docs](super) for the
/// durability guarantee and failure semantics.
pub struct Log {
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    pub(super) writer: Mutex<WriterState>,
    /// Never empty; the last segment is the active one.
    pub(super) segments: RwLock<Vec<Segment>>,
    /// Offset of the next append; records below it are readable.
    pub(super) next_offset: AtomicU64,
    /// Serializes `sync` calls, so one that returns has covered every earlier append.
    sync_lock: Mutex<()>,
    closed: AtomicBool,
    writes_refused: AtomicBool,
    /// The file whose fsync failed, once one did.
    failed_fsync_path: Mutex<Option<PathBuf>>,
    /// Exclusive advisory lock on the directory's lock file, held from open until close, so a
    /// second writer (another process, or a second `Log` here) cannot open the same directory.
    dir_lock: Mutex<Option<std::fs::File>>,
}

/// A function told every new [`Log::next_offset`] (see [`Log::add_offset_listener`]).
pub(super) type OffsetListener = Box<dyn FnMut(u64) + Send>;

/// What only the writer touches.
#[derive(Default)]
pub(super) struct WriterState {
    /// Scratch buffer for encoded frames (reused across appends).
    frames: Vec<u8>,
    /// Where each frame starts within `frames`.
    frame_starts: Vec<u64>,
    /// A segment file was created or removed since the last sync.
    pub(super) directory_dirty: bool,
    /// Told the new next offset after each append, truncation and reset, under this lock, so
    /// they see the changes in order.
    offset_listeners: Vec<OffsetListener>,
}

impl WriterState {
    /// Tells every listener that the next offset is now `next`.
    pub(super) fn announce(&mut self, next: u64) {
        for listener in &mut self.offset_listeners {
            listener(next);
        }
    }
}

impl std::fmt::Debug for WriterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriterState")
            .field("frames", &self.frames.len())
            .field("directory_dirty", &self.directory_dirty)
            .field("offset_listeners", &self.offset_listeners.len())
            .finish()
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.dir)
            .field("config", &self.config)
            .field("next_offset", &self.next_offset.load(Ordering::Relaxed))
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens the log in `dir` (created if missing), recovering from any crash: see the module
    /// docs. `config.initial_offset` applies only when the directory holds no segments.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        config.validate()?;
        let dir = dir.as_ref().to_path_buf();
        let dir_lock = lock_directory(&dir)?;
        let segments = recovery::open_segments(&dir, &config)?;
        let next = segments
            .last()
            .expect("recovery returns a segment")
            .next_offset();
        Ok(Log {
            dir,
            config,
            writer: Mutex::new(WriterState::default()),
            segments: RwLock::new(segments),
            next_offset: AtomicU64::new(next),
            sync_lock: Mutex::new(()),
            closed: AtomicBool::new(false),
            writes_refused: AtomicBool::new(false),
            failed_fsync_path: Mutex::new(None),
            dir_lock: Mutex::new(Some(dir_lock)),
        })
    }

    /// The directory holding the segment files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Appends one record and returns its offset. Readable on return; durable after
    /// [`Log::sync`].
    pub fn append(&self, record: &[u8]) -> Result<u64> {
        self.append_batch(&[record]).map(|range| range.start)
    }

    /// Appends records in order and returns their offsets. Readable on return; durable after
    /// [`Log::sync`]. Each segment's share is written with one `pwrite`. All or nothing: if
    /// any record is too large nothing is written, and after an I/O error midway the records
    /// already written are taken back.
    pub fn append_batch<B: RecordBytes>(&self, records: &[B]) -> Result<Range<u64>> {
        let max = self.config.effective_max_record_bytes();
        for record in records {
            let size = record.byte_len() as u64;
            if size > max {
                return Err(LogError::RecordTooLarge { size, max });
            }
        }
        let mut writer = self.writer.lock();
        self.check_writable()?;
        let start = self.next_offset.load(Ordering::Acquire);
        let end = start
            .checked_add(records.len() as u64)
            .ok_or(LogError::OffsetOverflow)?;
        if records.is_empty() {
            return Ok(start..start);
        }
        if let Err(err) = self.write_records(&mut writer, records) {
            // Segments may hold part of the batch; nothing was published, so take it back.
            if let Err(rollback) = self.truncate_suffix_locked(&mut writer, start) {
                self.refuse_writes(self.dir.clone());
                tracing::error!(error = %rollback, "could not take back a partly written batch");
            }
            return Err(err);
        }
        self.next_offset.store(end, Ordering::Release);
        writer.announce(end);
        Ok(start..end)
    }

    /// Writes `records` into the active segment, rolling before a record would overflow it.
    fn write_records<B: RecordBytes>(&self, writer: &mut WriterState, records: &[B]) -> Result<()> {
        let mut next = 0;
        while next < records.len() {
            let segments = self.segments.read();
            let active = segments.last().expect("segments are never empty");
            let first_frame = FRAME_HEADER_BYTES + records[next].byte_len() as u64;
            if !active.has_room(first_frame, 1) && !active.is_empty() {
                // An empty segment takes any one record (see below), so this rolls at most once.
                drop(segments);
                self.roll(writer)?;
                continue;
            }
            writer.frames.clear();
            writer.frame_starts.clear();
            let mut count = 0;
            while let Some(record) = records.get(next) {
                let (head, tail) = record.parts();
                let frame = FRAME_HEADER_BYTES + (head.len() + tail.len()) as u64;
                // The store limit is where a segment rolls, not a record limit: a record larger
                // than a whole segment goes alone into an empty one (a Raft node must store
                // every committed record, whatever its segment size is set to today). The index
                // limit always holds: an empty index has room for one entry (validated).
                let oversized_alone = count == 0 && active.is_empty();
                if !oversized_alone
                    && !active.has_room(writer.frames.len() as u64 + frame, count + 1)
                {
                    break;
                }
                writer.frame_starts.push(writer.frames.len() as u64);
                encode_frame_parts(&mut writer.frames, head, tail);
                count += 1;
                next += 1;
            }
            active.append(&writer.frames, &writer.frame_starts)?;
        }
        // A huge batch should not pin a huge scratch buffer.
        if writer.frames.capacity() > 16 * 1024 * 1024 {
            writer.frames = Vec::new();
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at its end.
    fn roll(&self, writer: &mut WriterState) -> Result<()> {
        let (sealed, base) = {
            let segments = self.segments.read();
            let active = segments.last().expect("segments are never empty");
            active.seal()?;
            (active.sync_handles(), active.next_offset())
        };
        // Make the sealed segment (store and cut index) durable before a newer segment can
        // exist on disk: then only the last segment can ever hold unsynced data, which is what
        // lets open trust sealed segments and scan only the last one. One fsync per segment.
        self.sync_segment_files(&sealed, true)?;
        let segment = Segment::create(&self.dir, base, &self.config)?;
        self.segments.write().push(segment);
        writer.directory_dirty = true;
        Ok(())
    }

    /// The lowest offset still in the log (equal to [`Log::next_offset`] when empty).
    pub fn lowest_offset(&self) -> u64 {
        self.segments.read()[0].base()
    }

    /// The offset the next append gets; every offset in `lowest_offset()..next_offset()` is
    /// readable.
    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// Whether the log holds no records.
    pub fn is_empty(&self) -> bool {
        let segments = self.segments.read();
        segments[0].base() == self.next_offset.load(Ordering::Acquire)
    }

    /// Adds a listener told every new [`Log::next_offset`]: after each append (the offset past
    /// the batch), each truncation that changed it, and each reset. It is called once right
    /// away with the current next offset, so a caller that seeds its own notification (the
    /// node's Tokio `watch` channel) with it misses no change in between.
    ///
    /// Listeners run on the appending thread with the log's writer lock held, in the order of
    /// the changes: keep them short and non-blocking (send on a channel), and never call this
    /// log's write methods from one (that would deadlock). They live as long as the log.
    pub fn add_offset_listener(&self, mut listener: impl FnMut(u64) + Send + 'static) {
        let mut writer = self.writer.lock();
        listener(self.next_offset.load(Ordering::Acquire));
        writer.offset_listeners.push(Box::new(listener));
    }

    /// The segments, oldest first; the last one is active.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let segments = self.segments.read();
        let last = segments.len() - 1;
        segments
            .iter()
            .enumerate()
            .map(|(i, segment)| segment.info(i == last))
            .collect()
    }

    /// Makes every record appended before this call durable: fdatasyncs the active store, and
    /// the directory when segment files were created or removed since the last sync. Sealed
    /// segments were synced when they were sealed, and the active index needs no fsync: open
    /// rebuilds it from the store. The fsyncs run without the writer's lock, so appends
    /// continue meanwhile. After a failed fsync this returns [`LogError::FsyncFailed`] and the
    /// log refuses writes.
    pub fn sync(&self) -> Result<()> {
        let _sync = self.sync_lock.lock();
        let (active, directory) = {
            let mut writer = self.writer.lock();
            self.check_writable()?;
            let active = self
                .segments
                .read()
                .last()
                .expect("segments are never empty")
                .sync_handles();
            (active, std::mem::take(&mut writer.directory_dirty))
        };
        self.sync_segment_files(&active, false)?;
        if directory {
            self.sync_directory()?;
        }
        Ok(())
    }

    /// fdatasyncs a segment's store and, with `index`, its index.
    pub(super) fn sync_segment_files(&self, handles: &SyncHandles, index: bool) -> Result<()> {
        self.fsync(&handles.store, &handles.store_path)?;
        if index {
            self.fsync(&handles.index, &handles.index_path)?;
        }
        Ok(())
    }

    /// fsyncs the directory, making file creations and removals durable.
    pub(super) fn sync_directory(&self) -> Result<()> {
        crate::durable_fs::sync_dir(&self.dir).map_err(|e| {
            if let crate::durable_fs::DurableFsError::Fsync { path, source } = &e {
                // fsyncgate, as in `fsync` below.
                self.refuse_writes(path.clone());
                tracing::error!(path = %path.display(), error = %source, "directory fsync failed; the log refuses further writes");
            }
            LogError::from(e)
        })
    }

    fn fsync(&self, file: &File, path: &Path) -> Result<()> {
        crate::durable_fs::sync_file_data(file, path).map_err(|source| {
            // fsyncgate: after a failed fsync the kernel may have dropped the dirty pages and a
            // retry can succeed without the data ever reaching the disk. Never trust this
            // process's view of the files again.
            self.refuse_writes(path.to_path_buf());
            tracing::error!(path = %path.display(), error = %source, "fsync failed; the log refuses further writes");
            LogError::FsyncFailed {
                path: path.to_path_buf(),
                source,
            }
        })
    }

    pub(super) fn refuse_writes(&self, path: PathBuf) {
        self.failed_fsync_path.lock().get_or_insert(path);
        self.writes_refused.store(true, Ordering::Release);
    }

    /// Fails unless the log is open.
    pub(super) fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// Fails unless the log is open and no fsync has failed.
    pub(super) fn check_writable(&self) -> Result<()> {
        self.check_open()?;
        if self.writes_refused.load(Ordering::Acquire) {
            let path = self
                .failed_fsync_path
                .lock()
                .clone()
                .unwrap_or_else(|| self.dir.clone());
            return Err(LogError::WritesRefused { path });
        }
        Ok(())
    }

    /// Syncs, cuts the active index file to its entries and closes the log; every later call
    /// returns [`LogError::Closed`]. Idempotent.
    pub fn close(&self) -> Result<()> {
        let _sync = self.sync_lock.lock();
        let mut writer = self.writer.lock();
        if self.closed.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = self.check_writable().and_then(|()| {
            let segments = self.segments.read();
            let active = segments.last().expect("segments are never empty");
            active.seal()?;
            self.sync_segment_files(&active.sync_handles(), true)?;
            if std::mem::take(&mut writer.directory_dirty) {
                self.sync_directory()?;
            }
            Ok(())
        });
        self.closed.store(true, Ordering::Release);
        // Dropping the file releases the lock: the directory may now be opened again.
        self.dir_lock.lock().take();
        result
    }

    /// Closes the log and deletes its segment files, then the directory if nothing else is in
    /// it (other files in the directory are left alone).
    pub fn remove(&self) -> Result<()> {
        match self.close() {
            Ok(()) | Err(LogError::WritesRefused { .. } | LogError::FsyncFailed { .. }) => {}
            Err(err) => return Err(err),
        }
        let _writer = self.writer.lock();
        for segment in self.segments.read().iter() {
            segment.remove_files()?;
        }
        let lock_path = self.dir.join(LOCK_FILE_NAME);
        if let Err(e) = std::fs::remove_file(&lock_path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(LogError::io(&lock_path, e));
        }
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::DirectoryNotEmpty
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(LogError::io(&self.dir, e)),
        }
    }
}

/// Name of the lock file in a log directory.
pub const LOCK_FILE_NAME: &str = "LOCK";

/// How long [`lock_directory`] keeps trying a lock that is held.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Creates `dir` if needed and takes an exclusive advisory lock (`flock`) on its lock file.
/// The lock dies with the process, so a crash never leaves a stale lock behind.
///
/// A held lock is retried for [`LOCK_WAIT`] before [`LogError::Locked`]: a lock just released by
/// a closed `Log` can still be held for an instant by a child process this process is spawning
/// (between fork and exec the child shares every open file, close-on-exec ones included).
fn lock_directory(dir: &Path) -> Result<File> {
    // Durable in its parent before anything is written in it (a power loss on first boot must
    // not take the directory, and what later fsyncs of it made durable, away).
    crate::durable_fs::create_dir_all(dir)?;
    let lock_path = dir.join(LOCK_FILE_NAME);
    let file = super::store::open_or_create(&lock_path)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    dir: dir.to_path_buf(),
                    lock_path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(LogError::io(&lock_path, e)),
        }
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if !*self.closed.get_mut() {
            // Best effort, no fsync: leave the active index at its real length so the next open
            // need not discover it (it would, from the content, after a crash).
            if let Some(active) = self.segments.get_mut().last()
                && let Err(err) = active.seal()
            {
                tracing::debug!(error = %err, "could not trim the active index on drop");
            }
        }
    }
}
