//! Dropping records from either end of a [`Log`], and resetting it to an empty log at any
//! offset. Each step leaves the directory in a state that recovery opens as a contiguous log
//! (the old one, the new one, or one in between that holds only records of the old one).

use std::sync::atomic::Ordering;

use super::error::{LogError, Result};
use super::segment::Segment;
use super::segmented_log::{Log, WriterState};

impl Log {
    /// Deletes whole segments whose records are all below `before` (segment granularity; the
    /// active segment is never deleted, so records may stay below `before`). Use
    /// [`Log::reset`] to drop everything. Readers of deleted records get
    /// [`LogError::OffsetBelowStart`].
    pub fn truncate_prefix(&self, before: u64) -> Result<()> {
        self.remove_segments_before(before).map(|_| ())
    }

    /// Removes sealed segments entirely below `before`; returns how many and their bytes.
    pub(super) fn remove_segments_before(&self, before: u64) -> Result<(usize, u64)> {
        self.check_writable()?;
        let removed: Vec<Segment> = {
            let mut segments = self.segments.write();
            let last = segments.len() - 1;
            let count = segments[..last]
                .iter()
                .take_while(|s| s.next_offset() <= before)
                .count();
            segments.drain(..count).collect()
        };
        if removed.is_empty() {
            return Ok((0, 0));
        }
        self.writer.lock().directory_dirty = true;
        // Unlink outside the lock so readers are not held up by the file system. Oldest first:
        // a crash midway leaves a contiguous suffix of the log on disk.
        let mut bytes = 0;
        for segment in &removed {
            let info = segment.info(false);
            segment.remove_files()?;
            bytes += info.store_bytes + info.index_bytes;
        }
        Ok((removed.len(), bytes))
    }

    /// Drops every record at or after `from` (Raft uses this to drop a conflicting tail).
    /// `from == next_offset()` is a no-op. Removed segment files are gone durably on return;
    /// the cut of the remaining last segment becomes durable with the next [`Log::sync`].
    pub fn truncate_suffix(&self, from: u64) -> Result<()> {
        let mut writer = self.writer.lock();
        self.check_writable()?;
        let next = self.next_offset.load(Ordering::Acquire);
        if from > next {
            return Err(LogError::OffsetPastEnd { offset: from, next });
        }
        let lowest = self.segments.read()[0].base();
        if from < lowest {
            return Err(LogError::OffsetBelowStart {
                offset: from,
                lowest,
            });
        }
        if from == next {
            return Ok(());
        }
        self.truncate_suffix_locked(&mut writer, from)
    }

    /// Truncation with the writer's lock held; also takes back a partly written batch (when the
    /// published `next_offset` is already `from`).
    pub(super) fn truncate_suffix_locked(&self, writer: &mut WriterState, from: u64) -> Result<()> {
        // What the listeners were last told (the published next offset).
        let before = self.next_offset.load(Ordering::Acquire);
        let mut segments = self.segments.write();
        let mut removed_any = false;
        // Newest first, so a crash midway leaves a contiguous (longer) log.
        while segments.len() > 1 && segments.last().is_some_and(|s| s.base() >= from) {
            segments.last().expect("checked").remove_files()?;
            segments.pop();
            removed_any = true;
        }
        if removed_any {
            // The later segments must be gone on disk before the earlier one is cut, or a power
            // loss could leave a gap between them.
            self.sync_directory()?;
        }
        let last = segments.last().expect("segments are never empty");
        if let Err(err) = last.truncate(from.max(last.base())) {
            // The index may be cut and the store not: appends would then interleave old frames.
            self.refuse_writes(last.store_path().to_path_buf());
            return Err(err);
        }
        let next = last.next_offset();
        drop(segments);
        self.next_offset.store(next, Ordering::Release);
        if next != before {
            writer.announce(next);
        }
        Ok(())
    }

    /// Drops every record; the next append gets offset `next` (Raft uses this after installing
    /// a snapshot). Durable on return.
    pub fn reset(&self, next: u64) -> Result<()> {
        let mut writer = self.writer.lock();
        self.check_writable()?;
        let mut segments = self.segments.write();
        if let Err(err) = self.replace_segments_for_reset(&mut segments, next) {
            // The files and the segment list may now disagree; only a reopen can reconcile them.
            self.refuse_writes(self.dir.clone());
            return Err(err);
        }
        let handles = segments[0].sync_handles();
        drop(segments);
        writer.directory_dirty = false;
        self.next_offset.store(next, Ordering::Release);
        writer.announce(next);
        self.sync_segment_files(&handles, true)?;
        self.sync_directory()
    }

    /// The file operations of [`Log::reset`]: leaves exactly one, empty segment at `next`.
    fn replace_segments_for_reset(&self, segments: &mut Vec<Segment>, next: u64) -> Result<()> {
        // An empty active segment behind full ones adds nothing; dropping it first means that
        // after this, only a lone segment can be empty, so recovery can recognise the empty
        // segment created below as the mark of an interrupted reset.
        if segments.len() > 1 && segments.last().is_some_and(Segment::is_empty) {
            segments.last().expect("checked").remove_files()?;
            segments.pop();
        }
        if segments.iter().any(|s| s.base() == next) {
            // Keep the segment that already starts at `next`: delete older ones oldest first and
            // newer ones newest first (each step leaves a contiguous log), then empty it.
            while segments[0].base() != next {
                segments[0].remove_files()?;
                segments.remove(0);
            }
            while segments.len() > 1 {
                segments.last().expect("checked").remove_files()?;
                segments.pop();
            }
            segments[0].truncate(next)?;
        } else if segments.len() == 1 && segments[0].is_empty() {
            // A lone empty segment is moved by renaming its store (atomic): a crash leaves
            // either the old empty log or the new one, never both or neither. Its index is
            // empty and rebuilt on open.
            let old_store = segments[0].store_path().to_path_buf();
            let new_store = super::segment::store_path(&self.dir, next);
            segments[0].remove_index_file()?;
            crate::durable_fs::rename(&old_store, &new_store)?;
            segments[0] = Segment::open_active(&self.dir, next, &self.config)?;
        } else {
            // Create the new, empty segment first and make it durable: recovery treats an empty
            // segment among full ones as an interrupted reset and finishes it.
            let fresh = Segment::create(&self.dir, next, &self.config)?;
            self.sync_directory()?;
            for segment in segments.iter() {
                segment.remove_files()?;
            }
            *segments = vec![fresh];
        }
        Ok(())
    }
}
