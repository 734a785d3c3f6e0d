//! Test-only evidence for simulated power cuts (cargo feature `failpoints`; shipped binaries do
//! not contain this module). A `kill -9` keeps everything the process wrote in the page cache, so
//! it cannot show what a power cut loses: the writes no fsync covered. With
//! [`JOURNAL_ENV`] set, every successful file fsync appends one line to that journal — the
//! file's device and inode and the length it had when the fsync began, with a sequence number —
//! and the fault harness (`faults/src/power_cut.rs`) later cuts each file of a killed node back
//! to its last fsynced length, as the disk would hold it after the power went.
//!
//! Keyed by inode, not path, so a temporary file fsynced and then renamed over a state file
//! keeps its record. The length is read *before* the fsync: bytes written while it runs may or
//! may not be durable, so they count as lost (the harsher, still legal, outcome). Concurrent
//! fsyncs of one file can finish out of order; the sequence number, taken when the length is
//! read, says which record is the newest view of the file.
//!
//! `PROGLOG_FAILPOINT=skip-fsync:<text>` makes every fsync of a path containing `<text>` a
//! no-op that records nothing: the negative control of the fault suite (a node that does not
//! fsync its Raft log must lose acknowledged records in a power cut of all nodes, and the
//! history checker must say so).
//!
//! While the file named by [`FAIL_FILE_ENV`] exists, every fsync fails with `EIO` without
//! syncing, as a failing disk's would: the fault suite's `fsync-error` creates it on a running
//! node and removes it before the restart.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the journal file (append-only; created if missing).
pub const JOURNAL_ENV: &str = "PROGLOG_SYNC_JOURNAL";
/// While the file this variable names exists, fsyncs fail with `EIO`.
pub const FAIL_FILE_ENV: &str = "PROGLOG_FSYNC_FAIL_FILE";
/// The failpoint variable (shared with `raft::failpoint`); `skip-fsync:<text>` entries are ours.
const FAILPOINT_ENV: &str = "PROGLOG_FAILPOINT";

struct Journal {
    file: parking_lot::Mutex<File>,
    seq: AtomicU64,
}

fn journal() -> Option<&'static Journal> {
    static JOURNAL: OnceLock<Option<Journal>> = OnceLock::new();
    JOURNAL
        .get_or_init(|| {
            let path = std::env::var_os(JOURNAL_ENV)?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .unwrap_or_else(|e| panic!("{JOURNAL_ENV}={path:?}: {e}"));
            Some(Journal {
                file: parking_lot::Mutex::new(file),
                // Continue after the records of earlier runs of the node (the harness keeps
                // one journal per data directory): the newest record must win.
                seq: AtomicU64::new(wall_clock_ns()),
            })
        })
        .as_ref()
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn skipped_paths() -> &'static [String] {
    static SKIPPED: OnceLock<Vec<String>> = OnceLock::new();
    SKIPPED.get_or_init(|| {
        std::env::var(FAILPOINT_ENV)
            .unwrap_or_default()
            .split(',')
            .filter_map(|s| s.trim().strip_prefix("skip-fsync:").map(str::to_owned))
            .collect()
    })
}

/// Whether the `skip-fsync` failpoint covers `path`.
pub(super) fn skips(path: &Path) -> bool {
    let skipped = skipped_paths();
    !skipped.is_empty() && {
        let path = path.to_string_lossy();
        skipped.iter().any(|text| path.contains(text.as_str()))
    }
}

/// `EIO` when the fsync-failure trigger file exists.
pub(super) fn injected_failure() -> std::io::Result<()> {
    static FAIL_FILE: OnceLock<Option<std::path::PathBuf>> = OnceLock::new();
    match FAIL_FILE.get_or_init(|| std::env::var_os(FAIL_FILE_ENV).map(Into::into)) {
        Some(trigger) if trigger.exists() => Err(std::io::Error::from_raw_os_error(5)),
        _ => Ok(()),
    }
}

/// What an fsync that is about to start will make durable (`None` without a journal).
pub(super) struct Pending {
    seq: u64,
    dev: u64,
    ino: u64,
    len: u64,
}

/// Reads `file`'s identity and length before its fsync.
pub(super) fn before_sync(file: &File) -> Option<Pending> {
    let journal = journal()?;
    let meta = file.metadata().ok()?;
    Some(Pending {
        seq: journal.seq.fetch_add(1, Ordering::Relaxed),
        dev: meta.dev(),
        ino: meta.ino(),
        len: meta.len(),
    })
}

/// Records that the fsync of `pending` succeeded.
pub(super) fn after_sync(pending: Option<Pending>) {
    let (Some(p), Some(journal)) = (pending, journal()) else {
        return;
    };
    let line = format!("{} {} {} {}\n", p.seq, p.dev, p.ino, p.len);
    // One write per line on an O_APPEND file: lines of concurrent fsyncs never interleave.
    // A failure here would make the harness cut durable data, so it is not ignorable.
    journal
        .file
        .lock()
        .write_all(line.as_bytes())
        .unwrap_or_else(|e| panic!("writing the sync journal: {e}"));
}
