//! Reads that never wait for the disk, so an async runtime's worker thread may make them.
//!
//! A positional read of data the kernel has in its page cache is a copy; of data it has not, a
//! sleep until the disk answers, and on an async worker that sleep stalls every task of the
//! thread (with one worker per node: the whole node, Raft heartbeats included). `preadv2` with
//! `RWF_NOWAIT` asks for the first kind only: the kernel copies from the page cache or refuses
//! with `EAGAIN` at once. Callers read with [`Wait::MemoryOnly`] on the worker and move to a
//! blocking thread ([`Wait::Disk`]) only when that fails with [`LogError::NotInMemory`]. The
//! index is memory-mapped, so its pages are checked with `mincore` first (`Index::in_memory`):
//! touching a page that is not resident would fault, which is the same sleep.
//!
//! [`LogError::NotInMemory`]: super::LogError::NotInMemory

use std::fs::File;
use std::io::{self, IoSliceMut};

use rustix::io::{Errno, ReadWriteFlags};

/// Whether a read may wait for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// Reads from the disk what is not in memory: a blocking call, for blocking threads.
    Disk,
    /// Only what is in memory; anything else fails at once with
    /// [`LogError::NotInMemory`](super::LogError::NotInMemory). Never sleeps on the disk.
    MemoryOnly,
}

/// Fills `buf` from `position` of `file` if all of it is in the page cache: `Ok(false)` when any
/// of it is not, or when the file system cannot say (then every read takes the blocking path,
/// which is slower but correct).
pub(crate) fn read_exact_in_memory(file: &File, buf: &mut [u8], position: u64) -> io::Result<bool> {
    if buf.is_empty() {
        return Ok(true);
    }
    let wanted = buf.len();
    match rustix::io::preadv2(
        file,
        &mut [IoSliceMut::new(buf)],
        position,
        ReadWriteFlags::NOWAIT,
    ) {
        // A short count: the kernel stopped at the first page it does not hold (or the end of
        // the file, which the blocking read reports properly).
        Ok(read) => Ok(read == wanted),
        Err(Errno::AGAIN | Errno::OPNOTSUPP | Errno::NOSYS | Errno::INTR) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}
