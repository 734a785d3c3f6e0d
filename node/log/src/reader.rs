//! [`LogReader`]: a streaming iterator over records from any offset, reading the store in large
//! chunks instead of one read per record. Raft snapshots are sent and installed with it
//! (`raft::snapshot::for_each_chunk`); consumers read record by record today.

use std::collections::VecDeque;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

use super::error::{LogError, Result};
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
        let log = &*self.log;
        log.check_open()?;
        let segments = log.segments.read();
        let end = log.next_offset();
        if self.next > end {
            return Err(LogError::OffsetPastEnd {
                offset: self.next,
                next: end,
            });
        }
        if self.next == end {
            return Ok(());
        }
        let lowest = segments[0].base();
        if self.next < lowest {
            return Err(LogError::OffsetBelowStart {
                offset: self.next,
                lowest,
            });
        }
        let at = segments.partition_point(|s| s.base() <= self.next) - 1;
        let records = segments[at].read_run(self.next, end, CHUNK_BYTES)?;
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
