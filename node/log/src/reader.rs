//! Reading the log: [`Log::read`] (one record), [`Log::read_run`] (consecutive records in one
//! positional read), both also in a memory-only form for async callers (see
//! [`super::in_memory`]), and [`LogReader`], a streaming iterator over records from any offset
//! that reads the store in large chunks instead of one read per record. Raft snapshots are sent
//! and installed with it (`raft::snapshot::for_each_chunk`); `ConsumeStream` reads runs.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use super::error::{LogError, Result};
use super::in_memory::Wait;
use super::segmented_log::Log;

/// Bytes of store read per positional read.
const CHUNK_BYTES: u64 = 256 * 1024;

/// An iterator of `(offset, record)` from a starting offset up to the log's end at the time
/// each chunk is read. It returns `None` at the end; calling `next` again later yields records
/// appended since. Errors (offset out of range, corruption, closed log) end the iteration.
///
/// It holds no lock between chunks, so it never blocks the writer; a concurrent
/// `truncate_suffix` may make it yield records that were dropped after it read them.
#[derive(Debug)]
pub struct LogReader<L: Deref<Target = Log>> {
    log: L,
    next: u64,
    buffered: VecDeque<(u64, Bytes)>,
    failed: bool,
}

impl Log {
    /// Reads the record at `offset`: an O(1) index lookup and a positional read, never waiting
    /// for appends or fsyncs. Verifies the record's checksum. May wait for the disk: call it on
    /// a blocking thread, or try [`Log::read_with`] and [`Wait::MemoryOnly`] first.
    pub fn read(&self, offset: u64) -> Result<Bytes> {
        self.read_with(offset, Wait::Disk)
    }

    /// [`Log::read`], or with [`Wait::MemoryOnly`] a read that fails with
    /// [`LogError::NotInMemory`] rather than wait for the disk.
    pub fn read_with(&self, offset: u64, wait: Wait) -> Result<Bytes> {
        self.check_open()?;
        let segments = self.segments.read();
        let next = self.next_offset();
        if offset >= next {
            return Err(LogError::OffsetPastEnd { offset, next });
        }
        let lowest = segments[0].base();
        if offset < lowest {
            return Err(LogError::OffsetBelowStart { offset, lowest });
        }
        let at = segments.partition_point(|s| s.base() <= offset) - 1;
        segments[at].read(offset, wait)
    }

    /// Consecutive records from `from`, below `end` (clamped to the log's end), in one positional
    /// read of at most `max_bytes` of frames (more if the first record alone is larger) and
    /// never past its segment: at least one record when `from < end`, none when `from == end`.
    /// Every record's checksum is verified. `from` past the end or below the start is an error,
    /// as for [`Log::read`].
    pub fn read_run(
        &self,
        from: u64,
        end: u64,
        max_bytes: u64,
        wait: Wait,
    ) -> Result<Vec<(u64, Bytes)>> {
        self.check_open()?;
        let segments = self.segments.read();
        let end = end.min(self.next_offset());
        if from > end {
            return Err(LogError::OffsetPastEnd {
                offset: from,
                next: end,
            });
        }
        if from == end {
            return Ok(Vec::new());
        }
        let lowest = segments[0].base();
        if from < lowest {
            return Err(LogError::OffsetBelowStart {
                offset: from,
                lowest,
            });
        }
        let at = segments.partition_point(|s| s.base() <= from) - 1;
        segments[at].read_run(from, end, max_bytes, wait)
    }

    /// A reader of the records from `from` on, borrowing the log.
    pub fn reader(&self, from: u64) -> LogReader<&Log> {
        LogReader::new(self, from)
    }

    /// A reader of the records from `from` on that owns a handle to the log (for tasks).
    pub fn reader_owned(self: &Arc<Self>, from: u64) -> LogReader<Arc<Log>> {
        LogReader::new(Arc::clone(self), from)
    }
}

impl<L: Deref<Target = Log>> LogReader<L> {
    fn new(log: L, from: u64) -> Self {
        LogReader {
            log,
            next: from,
            buffered: VecDeque::new(),
            failed: false,
        }
    }

    /// The offset the next record yielded will have.
    pub fn position(&self) -> u64 {
        self.buffered
            .front()
            .map_or(self.next, |(offset, _)| *offset)
    }

    fn fill(&mut self) -> Result<()> {
        let records = self
            .log
            .read_run(self.next, u64::MAX, CHUNK_BYTES, Wait::Disk)?;
        self.next += records.len() as u64;
        self.buffered.extend(records);
        Ok(())
    }
}

impl<L: Deref<Target = Log>> Iterator for LogReader<L> {
    type Item = Result<(u64, Bytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.buffered.is_empty()
            && let Err(err) = self.fill()
        {
            self.failed = true;
            return Some(Err(err));
        }
        self.buffered.pop_front().map(Ok)
    }
}
