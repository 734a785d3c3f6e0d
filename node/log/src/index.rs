//! Index files: one fixed-width entry per record of a segment, memory-mapped with `memmap2`.
//!
//! An entry is 12 bytes: `[relative offset: u32 LE][store position: u64 LE]`, entry `i`
//! describing record `base + i`. Lookups are O(1): entry `i` lives at byte `12 * i`.
//!
//! The file is grown ahead of the writer in real zero-filled chunks (not a sparse `set_len`),
//! so a write through the mapping never lands in an unallocated hole (which can SIGBUS when the
//! disk is full), and it is cut to exactly `12 * entries` when the segment is sealed or the log
//! closed. After a crash the file may be longer than its entries (zero padding, or stale
//! entries); the real length is found from the content: entry `i` must carry relative offset
//! `i`, which zero padding does not (see [`Index::entries_from_content`]).
//!
//! This is the only module with `unsafe` code: turning a place in the mapping into a reference,
//! and asking `mincore` whether the mapping's pages are in memory (for reads that must not wait
//! for the disk, see `super::in_memory`).
//! Entries are accessed as three `AtomicU32`s, so the single writer and concurrent readers never
//! race in the language's sense; readers only look at entries below the count published with
//! `Release` after they were written.
#![allow(unsafe_code)]

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use parking_lot::Mutex;

use super::error::{LogError, Result};

/// Bytes of one index entry.
pub(crate) const ENTRY_BYTES: u64 = 12;

/// Entries the file grows by at a time (96 KiB).
const GROW_ENTRIES: u64 = 8192;

/// One segment's index.
#[derive(Debug)]
pub(crate) struct Index {
    path: PathBuf,
    file: Arc<File>,
    map: MmapRaw,
    /// Entries the mapping can hold (fixed for the lifetime of this value).
    map_entries: u64,
    /// Entries the file's length backs; the mapping is never touched at or beyond this.
    file_entries: AtomicU64,
    /// Published entries; readers look only below this.
    entries: AtomicU64,
    /// Serializes writers, so `&self` methods that write are sound on their own.
    write_lock: Mutex<()>,
}

impl Index {
    /// Opens (creating if missing) the index at `path`, mapping room for `capacity` entries
    /// (or more if the file is already longer). The published entry count starts at zero; the
    /// caller sets it from [`Index::entries_from_content`] or [`Index::rebuild`].
    pub(crate) fn open(path: &Path, capacity: u64) -> Result<Index> {
        let file = super::store::open_or_create(path)?;
        let file_len = file.metadata().map_err(|e| LogError::io(path, e))?.len();
        let file_entries = file_len / ENTRY_BYTES;
        let map_entries = capacity.max(file_entries).max(1);
        let map_len = usize::try_from(map_entries * ENTRY_BYTES).map_err(|_| {
            LogError::InvalidConfig(format!(
                "index of {map_entries} entries is too large to map"
            ))
        })?;
        let map = MmapOptions::new()
            .len(map_len)
            .map_raw(&file)
            .map_err(|e| LogError::io(path, e))?;
        Ok(Index {
            path: path.to_path_buf(),
            file: Arc::new(file),
            map,
            map_entries,
            file_entries: AtomicU64::new(file_entries),
            entries: AtomicU64::new(0),
            write_lock: Mutex::new(()),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A handle for fsyncing outside the writer's lock. On Linux an fsync of the file descriptor
    /// also writes back pages dirtied through the shared mapping (`msync(MS_SYNC)` is the same
    /// operation there).
    pub(crate) fn file_handle(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    /// Published entries.
    pub(crate) fn len(&self) -> u64 {
        self.entries.load(Ordering::Acquire)
    }

    /// Entries this index can ever hold.
    pub(crate) fn capacity(&self) -> u64 {
        self.map_entries
    }

    /// Whether the pages holding entries `first .. first + count` are in memory, so reading them
    /// through the mapping cannot fault to the disk (`mincore`; see `super::in_memory`). Entries
    /// past the backed part count as in memory: they are never read.
    pub(crate) fn in_memory(&self, first: u64, count: u64) -> bool {
        #[cfg(any(test, feature = "io-hooks"))]
        if super::durable_fs::hook::dropped_from_memory(&self.path) {
            return false;
        }
        let end = (first + count).min(self.file_entries.load(Ordering::Acquire));
        if first >= end {
            return true;
        }
        let page = rustix::param::page_size();
        let start = (first * ENTRY_BYTES) as usize / page * page;
        let len = (end * ENTRY_BYTES) as usize - start;
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: `start` is page aligned (the mapping starts on a page) and `start .. start + len`
        // lies inside the mapping (`end <= file_entries <= map_entries`), which lives as long as
        // `self`; `resident` has one byte per page of that range, as `mincore` writes. The call
        // only reports on the pages, it does not touch them.
        let failed = unsafe {
            libc::mincore(
                self.map.as_mut_ptr().add(start).cast(),
                len,
                resident.as_mut_ptr(),
            )
        } != 0;
        // A failed call says nothing: take the blocking path.
        !failed && resident.iter().all(|page| page & 1 == 1)
    }

    /// The store position of entry `i`, if published.
    pub(crate) fn position(&self, i: u64) -> Option<u64> {
        (i < self.len()).then(|| self.read_slot(i).1)
    }

    /// The entry count the file's content supports: the longest prefix of entries where entry
    /// `i` has relative offset `i` (entry 0 counts when present; the store check that follows
    /// catches an empty store). Binary search, so O(log n) page touches.
    pub(crate) fn entries_from_content(&self) -> u64 {
        let file_entries = self.file_entries.load(Ordering::Acquire);
        if file_entries == 0 {
            return 0;
        }
        // Invariant: entries [0, lo) are valid; the first invalid one is in [lo, hi].
        let (mut lo, mut hi) = (1, file_entries);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if u64::from(self.read_slot(mid).0) == mid {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// Publishes `count` entries already present in the file (sealed-segment open).
    pub(crate) fn set_len_from_content(&self, count: u64) {
        let _writer = self.write_lock.lock();
        assert!(count <= self.file_entries.load(Ordering::Acquire));
        self.entries.store(count, Ordering::Release);
    }

    /// Appends entries for the records at `positions`, then publishes them all at once.
    /// Fails (publishing nothing) if they do not fit or the file cannot grow.
    pub(crate) fn append(&self, positions: &[u64]) -> Result<()> {
        let _writer = self.write_lock.lock();
        let start = self.entries.load(Ordering::Acquire);
        let end = start + positions.len() as u64;
        self.ensure_file_entries(end)?;
        for (i, &position) in (start..end).zip(positions) {
            self.write_slot(i, position);
        }
        self.entries.store(end, Ordering::Release);
        Ok(())
    }

    /// Makes the index describe exactly the records at `positions` (recovery), rewriting only
    /// entries that differ and cutting anything beyond.
    pub(crate) fn rebuild(&self, positions: &[u64]) -> Result<()> {
        let _writer = self.write_lock.lock();
        let count = positions.len() as u64;
        self.entries.store(0, Ordering::Release);
        self.shrink_file(count)?;
        self.ensure_file_entries(count)?;
        for (i, &position) in (0..count).zip(positions) {
            if self.read_slot(i) != (i as u32, position) {
                self.write_slot(i, position);
            }
        }
        self.entries.store(count, Ordering::Release);
        Ok(())
    }

    /// Drops entries at and beyond `count`, zeroing them so a later content scan cannot take
    /// them for live entries. The log excludes readers while it truncates.
    pub(crate) fn truncate(&self, count: u64) -> Result<()> {
        let _writer = self.write_lock.lock();
        let old = self.entries.load(Ordering::Acquire);
        if count >= old {
            return Ok(());
        }
        self.entries.store(count, Ordering::Release);
        for i in count..old {
            self.zero_slot(i);
        }
        Ok(())
    }

    /// Cuts the file to exactly its entries (segment sealed or log closed).
    pub(crate) fn trim_file(&self) -> Result<()> {
        let _writer = self.write_lock.lock();
        self.shrink_file(self.entries.load(Ordering::Acquire))
    }

    fn shrink_file(&self, count: u64) -> Result<()> {
        if self.file_entries.load(Ordering::Acquire) > count {
            // Stop touching the tail before the file stops backing it.
            self.file_entries.store(count, Ordering::Release);
            self.file
                .set_len(count * ENTRY_BYTES)
                .map_err(|e| LogError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// Grows the file with real zeros until it backs `needed` entries (in chunks).
    fn ensure_file_entries(&self, needed: u64) -> Result<()> {
        let have = self.file_entries.load(Ordering::Acquire);
        if needed <= have {
            return Ok(());
        }
        if needed > self.map_entries {
            return Err(LogError::InvalidConfig(format!(
                "index {} is full ({} entries)",
                self.path.display(),
                self.map_entries
            )));
        }
        let target = (needed + GROW_ENTRIES).min(self.map_entries);
        let zeros = vec![0; ((target - have) * ENTRY_BYTES) as usize];
        self.file
            .write_all_at(&zeros, have * ENTRY_BYTES)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.file_entries.store(target, Ordering::Release);
        Ok(())
    }

    /// The three words of entry `i`.
    fn slot(&self, i: u64) -> &[AtomicU32; 3] {
        assert!(
            i < self.file_entries.load(Ordering::Acquire) && i < self.map_entries,
            "index entry {i} outside the backed part of {}",
            self.path.display()
        );
        // SAFETY: `i < map_entries`, so the 12 bytes at `12 * i` lie inside the mapping, which
        // lives as long as `self`. The mapping is page aligned and 12 is a multiple of 4, so the
        // place is aligned for `AtomicU32` (same size and layout as `u32`; any bit pattern is
        // valid). `i < file_entries` means the file backs the page, so access cannot fault with
        // SIGBUS (the file only shrinks after `file_entries` was lowered, and only this module
        // changes its length). Shared mutation through atomics is allowed from any thread.
        unsafe {
            &*self
                .map
                .as_ptr()
                .add((i * ENTRY_BYTES) as usize)
                .cast::<[AtomicU32; 3]>()
        }
    }

    fn read_slot(&self, i: u64) -> (u32, u64) {
        let [rel, low, high] = self.slot(i);
        // The file format is little-endian; atomics use native order, hence `from_le`.
        let position = u64::from(u32::from_le(low.load(Ordering::Relaxed)))
            | (u64::from(u32::from_le(high.load(Ordering::Relaxed))) << 32);
        (u32::from_le(rel.load(Ordering::Relaxed)), position)
    }

    fn write_slot(&self, i: u64, position: u64) {
        let [rel, low, high] = self.slot(i);
        let rel_offset = u32::try_from(i).expect("index capacity is checked to fit u32");
        rel.store(rel_offset.to_le(), Ordering::Relaxed);
        low.store((position as u32).to_le(), Ordering::Relaxed);
        high.store(((position >> 32) as u32).to_le(), Ordering::Relaxed);
    }

    fn zero_slot(&self, i: u64) {
        for word in self.slot(i) {
            word.store(0, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_index_has_no_entries() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.index"), 4).unwrap();
        assert_eq!(index.len(), 0);
        assert_eq!(index.position(0), None);
        assert_eq!(index.entries_from_content(), 0);
    }

    #[test]
    fn append_read_and_reopen_from_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        {
            let index = Index::open(&path, 100).unwrap();
            index.append(&[0, 10]).unwrap();
            index.append(&[25]).unwrap();
            assert_eq!(index.position(1), Some(10));
            assert_eq!(index.position(2), Some(25));
            assert_eq!(index.position(3), None);
            // Dropped without trimming, as after a crash: the file is longer than 3 entries.
        }
        assert!(std::fs::metadata(&path).unwrap().len() > 3 * ENTRY_BYTES);
        let index = Index::open(&path, 100).unwrap();
        let count = index.entries_from_content();
        assert_eq!(count, 3);
        index.set_len_from_content(count);
        assert_eq!(index.position(2), Some(25));
    }

    #[test]
    fn trim_cuts_file_to_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let index = Index::open(&path, 100).unwrap();
        index.append(&[0, 9, 18]).unwrap();
        index.trim_file().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * ENTRY_BYTES);
        assert_eq!(index.position(2), Some(18));
    }

    #[test]
    fn full_index_rejects_append() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.index"), 2).unwrap();
        index.append(&[0, 9]).unwrap();
        assert!(index.append(&[18]).is_err());
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn truncate_zeroes_dropped_entries() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.index"), 10).unwrap();
        index.append(&[0, 9, 18, 27]).unwrap();
        index.truncate(2).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.entries_from_content(), 2);
        index.append(&[18]).unwrap();
        assert_eq!(index.position(2), Some(18));
    }

    #[test]
    fn rebuild_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let index = Index::open(&dir.path().join("i.index"), 10).unwrap();
        index.append(&[0, 5, 6, 7, 8]).unwrap();
        index.rebuild(&[0, 9]).unwrap();
        assert_eq!(index.len(), 2);
        assert_eq!(index.position(1), Some(9));
        assert_eq!(index.entries_from_content(), 2);
    }

    #[test]
    fn on_disk_format_is_little_endian() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.index");
        let index = Index::open(&path, 10).unwrap();
        index.append(&[0, 0x0102_0304_0506]).unwrap();
        index.trim_file().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[12..16], &1u32.to_le_bytes());
        assert_eq!(&bytes[16..24], &0x0102_0304_0506u64.to_le_bytes());
    }
}
