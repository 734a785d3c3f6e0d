//! Segments: one store file plus its index, covering offsets `[base, base + entries)`.
//!
//! Owns file naming (`<20-digit zero-padded base>.store/.index`, so names sort by offset), the
//! two ways of opening (sealed: an O(1) consistency check; active: a full scan that repairs a
//! torn tail and rebuilds the index), appending, O(1) reads, sealing, truncation and removal.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::config::LogConfig;
use super::error::{LogError, Result};
use super::in_memory::Wait;
use super::index::{ENTRY_BYTES, Index};
use super::store::{FRAME_HEADER_BYTES, FrameDecode, Store, StoreScan, decode_frame};

/// File name extension of store files.
pub(crate) const STORE_EXTENSION: &str = "store";
/// File name extension of index files.
pub(crate) const INDEX_EXTENSION: &str = "index";

/// A description of one segment, for metrics and retention.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Offset of the segment's first record.
    pub base_offset: u64,
    /// Offset after the segment's last record (`base_offset` when empty).
    pub next_offset: u64,
    /// Path of the store file.
    pub store_path: PathBuf,
    /// Path of the index file.
    pub index_path: PathBuf,
    /// Bytes of complete record frames in the store.
    pub store_bytes: u64,
    /// Bytes of live index entries (the active index file is preallocated beyond this).
    pub index_bytes: u64,
    /// When a record was last appended (or the store's modification time from before opening).
    pub modified: SystemTime,
    /// Whether this is the segment appends go to (never removed by retention).
    pub active: bool,
}

/// File handles to fsync, taken under the writer's lock and synced outside it.
#[derive(Debug, Clone)]
pub(crate) struct SyncHandles {
    pub(crate) store: Arc<File>,
    pub(crate) store_path: PathBuf,
    pub(crate) index: Arc<File>,
    pub(crate) index_path: PathBuf,
}

/// The store path of the segment starting at `base`.
pub(crate) fn store_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.{STORE_EXTENSION}"))
}

/// The index path of the segment starting at `base`.
pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.{INDEX_EXTENSION}"))
}

/// The base offset and extension of a segment file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<(u64, &str)> {
    let (stem, extension) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if extension != STORE_EXTENSION && extension != INDEX_EXTENSION {
        return None;
    }
    Some((stem.parse().ok()?, extension))
}

/// A store and its index.
#[derive(Debug)]
pub(crate) struct Segment {
    base: u64,
    store: Store,
    index: Index,
    max_store_bytes: u64,
    /// Nanoseconds since the Unix epoch of the last append (for age-based retention).
    modified_nanos: AtomicU64,
}

impl Segment {
    /// Creates the files of a new, empty segment.
    pub(crate) fn create(dir: &Path, base: u64, config: &LogConfig) -> Result<Segment> {
        let store = Store::create(&store_path(dir, base))?;
        let index = Index::open(&index_path(dir, base), config.index_capacity())?;
        index.rebuild(&[])?;
        Ok(Segment::assemble(
            base,
            store,
            index,
            config,
            SystemTime::now(),
        ))
    }

    /// Opens a sealed segment in O(1): the index's length comes from its content and its last
    /// entry must frame the store's last record exactly. When that check fails (index missing,
    /// short or ahead) the index is rebuilt from a scan of this one store; damage found by that
    /// scan is [`LogError::Corruption`], since a sealed segment has no torn tail to forgive.
    pub(crate) fn open_sealed(dir: &Path, base: u64, config: &LogConfig) -> Result<Segment> {
        let store = Store::open(&store_path(dir, base))?;
        let index = Index::open(&index_path(dir, base), config.index_capacity())?;
        let count = index.entries_from_content();
        index.set_len_from_content(count);
        if !Self::index_matches_store(&store, &index)? {
            tracing::warn!(
                index = %index.path().display(),
                "index of sealed segment does not match its store; rebuilding it from the store"
            );
            let scan = store.scan()?;
            if let Some(damage) = scan.damage {
                return Err(LogError::corruption(
                    store.path(),
                    scan.valid_len,
                    format!("sealed segment: {}", damage.reason),
                ));
            }
            index.rebuild(&scan.positions)?;
            index.trim_file()?;
        }
        let modified = store.modified()?;
        Ok(Segment::assemble(base, store, index, config, modified))
    }

    /// Opens the last segment: scans the whole store, cuts a torn or checksum-failing tail
    /// (with a warning) and rebuilds the index to match. A damaged frame *followed by* a valid
    /// one is not a torn tail but corruption, and is reported rather than cut away.
    pub(crate) fn open_active(dir: &Path, base: u64, config: &LogConfig) -> Result<Segment> {
        let store = Store::open(&store_path(dir, base))?;
        let index = Index::open(&index_path(dir, base), config.index_capacity())?;
        let scan = store.scan()?;
        let indexed = index.entries_from_content();
        if let Some(damage) = &scan.damage {
            if damage.followed_by_valid_frame {
                return Err(LogError::corruption(
                    store.path(),
                    scan.valid_len,
                    format!("{} (valid records follow it)", damage.reason),
                ));
            }
            if let Some(next) = Self::indexed_frame_after(&store, &index, indexed, &scan)? {
                return Err(LogError::corruption(
                    store.path(),
                    scan.valid_len,
                    format!(
                        "{} (valid records follow it: the index has one at {next})",
                        damage.reason
                    ),
                ));
            }
            tracing::warn!(
                store = %store.path().display(),
                position = scan.valid_len,
                cut_bytes = store.size() - scan.valid_len,
                reason = %damage.reason,
                "truncating torn tail of the last segment"
            );
            store.truncate(scan.valid_len)?;
        }
        if indexed != scan.positions.len() as u64 {
            tracing::warn!(
                index = %index.path().display(),
                index_entries = indexed,
                store_records = scan.positions.len(),
                "index does not match the store; rebuilding it"
            );
        }
        index.rebuild(&scan.positions)?;
        let modified = store.modified()?;
        Ok(Segment::assemble(base, store, index, config, modified))
    }

    /// The position of a valid frame that the index places after the damaged one, if any.
    ///
    /// The scan walks frame by frame, so when the damage is in a length field it cannot find
    /// the next frame and the damage looks like a torn tail. The index (written on every
    /// append, not fsynced for the active segment) may still hold where the later records
    /// start: a valid frame there means records were written after the damaged one, so the
    /// damage is not a torn tail and cutting it could drop durable records.
    fn indexed_frame_after(
        store: &Store,
        index: &Index,
        indexed: u64,
        scan: &StoreScan,
    ) -> Result<Option<u64>> {
        index.set_len_from_content(indexed);
        let file_len = store.size();
        for i in scan.positions.len() as u64 + 1..indexed {
            let Some(position) = index.position(i) else {
                break;
            };
            if position > scan.valid_len && store.valid_frame_at(position, file_len)? {
                return Ok(Some(position));
            }
        }
        Ok(None)
    }

    fn assemble(
        base: u64,
        store: Store,
        index: Index,
        config: &LogConfig,
        modified: SystemTime,
    ) -> Segment {
        Segment {
            base,
            store,
            index,
            max_store_bytes: config.max_store_bytes,
            modified_nanos: AtomicU64::new(nanos_since_epoch(modified)),
        }
    }

    /// Whether the index's last entry frames the store's last record exactly.
    fn index_matches_store(store: &Store, index: &Index) -> Result<bool> {
        let count = index.len();
        let size = store.size();
        let Some(last) = count.checked_sub(1) else {
            return Ok(size == 0);
        };
        let last_position = index.position(last).expect("published entry");
        // A damaged index can hold any position: checked arithmetic, never an overflow.
        let header_fits = last_position
            .checked_add(FRAME_HEADER_BYTES)
            .is_some_and(|end| end <= size);
        if index.position(0) != Some(0) || !header_fits {
            return Ok(false);
        }
        Ok(last_position.checked_add(store.frame_len_at(last_position)?) == Some(size))
    }

    pub(crate) fn base(&self) -> u64 {
        self.base
    }

    /// Offset after the last record.
    pub(crate) fn next_offset(&self) -> u64 {
        self.base + self.index.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    pub(crate) fn store_path(&self) -> &Path {
        self.store.path()
    }

    /// Whether `records` more records taking `frame_bytes` fit without crossing either limit.
    pub(crate) fn has_room(&self, frame_bytes: u64, records: u64) -> bool {
        self.store.size() + frame_bytes <= self.max_store_bytes
            && self.index.len() + records <= self.index.capacity()
    }

    /// Appends encoded `frames`; `frame_starts` are where each frame begins within `frames`.
    /// Publishes the store bytes, then the index entries. On failure nothing is published.
    pub(crate) fn append(&self, frames: &[u8], frame_starts: &[u64]) -> Result<()> {
        let start = self.store.append_frames(frames)?;
        let positions: Vec<u64> = frame_starts.iter().map(|rel| start + rel).collect();
        if let Err(err) = self.index.append(&positions) {
            // Take the frames back so the store never holds records the index does not.
            self.store.truncate(start)?;
            return Err(err);
        }
        self.modified_nanos
            .store(nanos_since_epoch(SystemTime::now()), Ordering::Relaxed);
        Ok(())
    }

    /// Reads the record at `offset` (which the caller checked is in this segment): one index
    /// lookup and one positional read (two for the last record, whose length is not indexed).
    /// With [`Wait::MemoryOnly`] it fails with `NotInMemory` instead of touching the disk.
    pub(crate) fn read(&self, offset: u64, wait: Wait) -> Result<Bytes> {
        let rel = offset - self.base;
        if wait == Wait::MemoryOnly && !self.index.in_memory(rel, 2) {
            return Err(LogError::NotInMemory);
        }
        let position = self.index.position(rel).ok_or(LogError::OffsetPastEnd {
            offset,
            next: self.next_offset(),
        })?;
        let expected = self
            .index
            .position(rel + 1)
            .map(|next_position| next_position.saturating_sub(position));
        self.store.read_record(position, expected, wait)
    }

    /// Reads consecutive records from `offset` (inside this segment) up to `end_offset`, in one
    /// positional read of at most `max_bytes` (more if the first record alone is larger).
    pub(crate) fn read_run(
        &self,
        offset: u64,
        end_offset: u64,
        max_bytes: u64,
        wait: Wait,
    ) -> Result<Vec<(u64, Bytes)>> {
        let end_offset = end_offset.min(self.next_offset());
        let rel = offset - self.base;
        if wait == Wait::MemoryOnly && !self.index.in_memory(rel, 1) {
            return Err(LogError::NotInMemory);
        }
        let Some(position) = self.index.position(rel) else {
            return Ok(Vec::new());
        };
        let chunk = self.store.read_chunk(position, max_bytes, wait)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        let mut next = offset;
        while next < end_offset {
            match decode_frame(&chunk[at..]) {
                FrameDecode::Complete { frame_len } => {
                    let frame_len = frame_len as usize;
                    records.push((
                        next,
                        chunk.slice(at + FRAME_HEADER_BYTES as usize..at + frame_len),
                    ));
                    at += frame_len;
                    next += 1;
                }
                FrameDecode::Incomplete { .. } => break,
                // Yield the good records first; the next call starts at the damaged one.
                FrameDecode::BadChecksum { .. } if !records.is_empty() => break,
                FrameDecode::BadChecksum { .. } => {
                    return Err(LogError::corruption(
                        self.store.path(),
                        position + at as u64,
                        "record checksum mismatch",
                    ));
                }
            }
        }
        if records.is_empty() && next < end_offset {
            // The first record is larger than the chunk.
            records.push((next, self.read(next, wait)?));
        }
        Ok(records)
    }

    /// Cuts the index file to its entries; called when the segment stops being active.
    pub(crate) fn seal(&self) -> Result<()> {
        self.index.trim_file()
    }

    /// Drops every record at or after `from` (which is within `[base, next_offset]`). The log
    /// excludes readers and the writer while this runs.
    pub(crate) fn truncate(&self, from: u64) -> Result<()> {
        let rel = from - self.base;
        let Some(position) = self.index.position(rel) else {
            return Ok(());
        };
        self.index.truncate(rel)?;
        self.store.truncate(position)
    }

    /// Deletes the files: the index first, so a crash in between leaves a store whose index
    /// is rebuilt, never an index without its store.
    pub(crate) fn remove_files(&self) -> Result<()> {
        remove_file_if_present(self.index.path())?;
        remove_file_if_present(self.store.path())
    }

    /// Deletes only the index file (before moving an empty store).
    pub(crate) fn remove_index_file(&self) -> Result<()> {
        remove_file_if_present(self.index.path())
    }

    pub(crate) fn sync_handles(&self) -> SyncHandles {
        SyncHandles {
            store: self.store.file_handle(),
            store_path: self.store.path().to_path_buf(),
            index: self.index.file_handle(),
            index_path: self.index.path().to_path_buf(),
        }
    }

    pub(crate) fn modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.modified_nanos.load(Ordering::Relaxed))
    }

    pub(crate) fn info(&self, active: bool) -> SegmentInfo {
        SegmentInfo {
            base_offset: self.base,
            next_offset: self.next_offset(),
            store_path: self.store.path().to_path_buf(),
            index_path: self.index.path().to_path_buf(),
            store_bytes: self.store.size(),
            index_bytes: self.index.len() * ENTRY_BYTES,
            modified: self.modified(),
            active,
        }
    }
}

/// Deletes `path`; a file that is already gone is fine.
pub(crate) fn remove_file_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(LogError::io(path, e)),
    }
}

fn nanos_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[cfg(test)]
#[path = "segment_tests.rs"]
mod tests;
