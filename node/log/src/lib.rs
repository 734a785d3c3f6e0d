//! ProgLog's storage engine: a segmented commit log on local files — store files,
//! memory-mapped indexes, segments, recovery and retention — and [`durable_fs`], the one place
//! that makes file and directory changes durable. [`Log`] is the entry point.
//!
//! The engine is synchronous and runtime-agnostic: every call may block on file I/O or fsync,
//! so async callers run it on blocking threads (`spawn_blocking`), and learn of new records
//! through [`Log::add_offset_listener`] (the node forwards it into a Tokio `watch` channel).
//! Retention is a policy applied by [`Log::apply_retention`]; scheduling passes is the caller's
//! job.
//!
//! ```
//! use proglog_log::{Log, LogConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogConfig::default())?;
//! let first = log.append(b"hello")?;
//! let rest = log.append_batch(&[b"a", b"b"])?; // offsets 1..3
//! log.sync()?; // one fsync makes all three durable
//! assert_eq!(log.read(first)?, &b"hello"[..]);
//! assert_eq!(log.reader(rest.start).count(), 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout on disk
//! A log is a directory of segments. Segment `B` (its first offset, zero-padded to 20 digits so
//! names sort by offset) is `B.store`, the record frames `[len u32][crc32c u32][bytes]` (the
//! checksum covers the length and the bytes), and `B.index`, 12-byte entries `[relative offset
//! u32][store position u64]` (little-endian), memory-mapped. A segment rolls *before* an append
//! would take its store past `max_store_bytes` or its index past `max_index_bytes`; a record
//! larger than `max_store_bytes` is stored alone in a segment of its own (records are limited
//! only by `max_record_bytes`). Offsets are contiguous from the first segment's base to
//! [`Log::next_offset`].
//!
//! # Durability guarantee
//! - [`Log::append`]/[`Log::append_batch`] return once the records are written to the files
//!   (the OS page cache): they are readable by every reader and survive the *process* crashing
//!   (`kill -9`), but not a power loss or kernel crash.
//! - [`Log::sync`] returns once every record appended *before the call* is on stable storage:
//!   one fdatasync of the active store, plus one of the directory when segments were created or
//!   removed. Group commit is many appends, then one `sync`. A roll fsyncs the segment it seals
//!   (store and index) before creating the next, so sealed segments are always complete on
//!   disk and only the last segment can hold unsynced data; the last segment's index is never
//!   trusted (open rebuilds it from the store), so it needs no fsync of its own.
//! - [`Log::reset`] is durable on return. [`Log::truncate_suffix`] removes later segment files
//!   durably on return; the cut of the remaining segment is durable after the next `sync`.
//!   [`Log::truncate_prefix`] deletions are durable after the next `sync` (a deleted segment
//!   reappearing after a crash is harmless: it is an older prefix of the log).
//! - The index is synced by fsyncing its file descriptor, which on Linux also writes back pages
//!   dirtied through the shared mapping. Files must not be modified by other processes while
//!   the log is open.
//!
//! # One owner per directory
//! [`Log::open`] takes an exclusive `flock` on the directory's `LOCK` file and holds it until
//! [`Log::close`] (or drop); a second open — from another process or this one — fails with
//! [`LogError::Locked`] instead of letting two writers interleave frames. The kernel drops the
//! lock when a process dies, so a crash never leaves a stale lock.
//!
//! # Failure semantics
//! - **Torn tail** (a crash during an append): when opening, the last segment's store is
//!   scanned; an incomplete or checksum-failing frame at its end — with no valid frame after
//!   it — is cut away with a `tracing` warning, and the index is rebuilt to match. Only records
//!   that were never synced can be lost this way.
//! - **Corruption** (bytes changed at rest, files missing): a damaged frame followed by valid
//!   ones, a sealed segment whose index and store disagree and whose store does not scan
//!   cleanly, or a gap between segments fails [`Log::open`] with [`LogError::Corruption`] naming
//!   the file and byte position. Damage inside a sealed segment that open does not look at
//!   (open only checks each sealed segment's last record, so it takes the same time however
//!   long the log is) is found by the checksum on read: that read (or reader) returns
//!   `Corruption`. Nothing is ever silently skipped.
//! - **fsync failure**: the kernel may already have dropped the dirty pages it could not write,
//!   and a later fsync can succeed without them ("fsyncgate"). So the failing `sync` returns
//!   [`LogError::FsyncFailed`] and every later write or sync returns
//!   [`LogError::WritesRefused`]; reads keep working. Reopening the log re-reads what actually
//!   reached the disk and is the only way to write again.
//! - An I/O error during an append (for example a full disk) publishes nothing: the partly
//!   written batch is taken back and the append can be retried. A truncation or reset that
//!   fails halfway (or a batch that cannot be taken back) may leave the files and the log's view
//!   of them apart, so it also makes the log refuse writes until reopened; every step on disk
//!   still leaves a directory that opens as a contiguous log.

#![warn(missing_docs)]

mod config;
pub mod durable_fs;
mod error;
#[doc(hidden)]
pub mod fuzz_support;
mod in_memory;
mod index;
#[cfg(test)]
mod log_tests;
#[cfg(test)]
mod read_tests;
mod reader;
mod record_bytes;
mod recovery;
mod retention;
mod segment;
mod segmented_log;
mod store;
mod truncation;

pub use config::LogConfig;
pub use error::{LogError, Result};
pub use in_memory::Wait;
pub use reader::LogReader;
pub use record_bytes::{Joined, RecordBytes};
pub use retention::{RetentionOutcome, RetentionPolicy};
pub use segment::SegmentInfo;
pub use segmented_log::{LOCK_FILE_NAME, Log};
