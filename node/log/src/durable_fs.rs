//! The one place that makes directory changes durable. A new file, directory or rename is only
//! an entry in its parent directory: until that directory is fsynced, a power loss can take the
//! entry away (e.g. the `raft/` directory and the vote written in it on first boot). So every
//! directory creation and every rename of storage or state files goes through this module, which
//! fsyncs the parent after it; `std::fs::create_dir*` and `std::fs::rename` are disallowed
//! elsewhere in this crate and in every crate under `node/` (`node/clippy.toml`).
//!
//! Blocking: call from a dedicated thread, `spawn_blocking`, or while opening storage at start.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// A directory operation that failed, with the path it was about.
#[derive(Debug, thiserror::Error)]
pub enum DurableFsError {
    /// Creating, opening or renaming failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The path the call was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The directory's fsync failed: whether its entries are on disk is unknown (fsyncgate),
    /// so a caller must not assume an earlier change is durable either.
    #[error("fsync of directory {} failed: {source}", path.display())]
    Fsync {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl DurableFsError {
    /// The path the failed call was about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::Fsync { path, .. } => path,
        }
    }

    /// The underlying I/O error.
    pub fn into_io(self) -> io::Error {
        match self {
            Self::Io { source, .. } | Self::Fsync { source, .. } => source,
        }
    }
}

type Result<T> = std::result::Result<T, DurableFsError>;

#[cfg(feature = "failpoints")]
pub mod power_cut;

/// fdatasyncs `file` (opened at `path`): its contents written so far are durable when this
/// returns. Every file fsync of the crate goes through here or [`sync_file_all`], so tests can
/// see them and the fault suite can simulate what a power cut keeps (see `power_cut`).
#[allow(clippy::disallowed_methods, reason = "the one seam for file fsyncs")]
pub fn sync_file_data(file: &File, path: &Path) -> io::Result<()> {
    sync_file_with(file, path, File::sync_data)
}

/// fsyncs `file` (opened at `path`) with its metadata: contents and length are durable.
#[allow(clippy::disallowed_methods, reason = "the one seam for file fsyncs")]
pub fn sync_file_all(file: &File, path: &Path) -> io::Result<()> {
    sync_file_with(file, path, File::sync_all)
}

fn sync_file_with(
    file: &File,
    path: &Path,
    sync: impl FnOnce(&File) -> io::Result<()>,
) -> io::Result<()> {
    #[cfg(any(test, feature = "io-hooks"))]
    hook::record_fsync(path);
    #[cfg(feature = "failpoints")]
    if power_cut::skips(path) {
        return Ok(());
    }
    #[cfg(feature = "failpoints")]
    power_cut::injected_failure()?;
    #[cfg(feature = "failpoints")]
    let pending = power_cut::before_sync(file);
    #[cfg(not(feature = "failpoints"))]
    let _ = path;
    sync(file)?;
    #[cfg(feature = "failpoints")]
    power_cut::after_sync(pending);
    Ok(())
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> DurableFsError + '_ {
    move |source| DurableFsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// fsyncs `dir`, making the creations, removals and renames of its entries durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(any(test, feature = "io-hooks"))]
    hook::record(dir);
    #[cfg(feature = "failpoints")]
    if power_cut::skips(dir) {
        return Ok(());
    }
    let file = File::open(dir).map_err(io_err(dir))?;
    #[cfg(feature = "failpoints")]
    power_cut::injected_failure().map_err(|source| DurableFsError::Fsync {
        path: dir.to_path_buf(),
        source,
    })?;
    #[allow(
        clippy::disallowed_methods,
        reason = "the durable wrapper for directories"
    )]
    file.sync_all().map_err(|source| DurableFsError::Fsync {
        path: dir.to_path_buf(),
        source,
    })
}

/// fsyncs the directory holding `path` (the current directory for a bare name).
pub fn sync_parent(path: &Path) -> Result<()> {
    sync_dir(parent(path))
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `dir` and any missing ancestors, durably: the parent of each directory created is
/// fsynced after it, and the parent of `dir` is fsynced even when `dir` already existed — a crash
/// of an earlier run may have created it without making it durable.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    let mut missing = Vec::new();
    let mut current = dir;
    while !current.as_os_str().is_empty() && !current.exists() {
        missing.push(current);
        match current.parent() {
            Some(p) => current = p,
            None => break,
        }
    }
    for new in missing.iter().rev() {
        match std_create_dir(new) {
            Ok(()) => {}
            // Created concurrently (by another opener): still make it durable below.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && new.is_dir() => {}
            Err(e) => return Err(io_err(new)(e)),
        }
        sync_parent(new)?;
    }
    if missing.is_empty() {
        if !dir.is_dir() {
            return Err(io_err(dir)(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            )));
        }
        sync_parent(dir)?;
    }
    Ok(())
}

/// Renames `from` to `to` (atomically replacing `to`), then fsyncs the parent of `to`, and the
/// parent of `from` when it is another directory: durable when this returns.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    std_rename(from, to).map_err(io_err(to))?;
    sync_parent(to)?;
    if parent(from) != parent(to) {
        sync_parent(from)?;
    }
    Ok(())
}

#[allow(
    clippy::disallowed_methods,
    reason = "the durable wrapper: its caller fsyncs the parent"
)]
fn std_create_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir(dir)
}

#[allow(
    clippy::disallowed_methods,
    reason = "the durable wrapper: its caller fsyncs the parent"
)]
fn std_rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)
}

/// Test seam (this crate's tests, and callers' tests through the `io-hooks` feature): records
/// every directory [`sync_dir`] fsyncs, every file fsync and every read that may wait for the
/// disk with its thread, so tests can check that each path that creates or renames something
/// makes it durable (a power loss cannot be observed in a unit test) and that no fsync and no
/// disk read runs on an async worker thread. It can also make memory-only reads of a directory's
/// files fail as if the page cache had dropped them ([`hook::drop_from_memory`]), so the
/// fallback to a blocking thread runs on every file system. Shared by all tests of the process:
/// a test looks only at its own temp directory. The records are never freed, so no shipped
/// build enables it.
#[cfg(any(test, feature = "io-hooks"))]
pub mod hook {
    use std::path::{Path, PathBuf};
    use std::thread::ThreadId;

    static SYNCED: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::Mutex::new(Vec::new());
    /// Every fsync of a file or directory (the log's, state files', `sync_dir`'s) and the
    /// thread that ran it: tests check none runs on an async runtime's thread.
    static FSYNCS: parking_lot::Mutex<Vec<(PathBuf, ThreadId)>> =
        parking_lot::Mutex::new(Vec::new());

    pub(super) fn record(dir: &Path) {
        SYNCED.lock().push(dir.to_path_buf());
        record_fsync(dir);
    }

    /// Records an fsync of `path` on the current thread.
    pub(super) fn record_fsync(path: &Path) {
        FSYNCS
            .lock()
            .push((path.to_path_buf(), std::thread::current().id()));
    }

    /// How many fsyncs of paths under `root` ran, on any thread.
    pub fn fsyncs_under(root: &Path) -> usize {
        FSYNCS
            .lock()
            .iter()
            .filter(|(path, _)| path.starts_with(root))
            .count()
    }

    /// The fsyncs of paths under `root` that ran on `thread`.
    pub fn fsyncs_on(root: &Path, thread: ThreadId) -> Vec<PathBuf> {
        FSYNCS
            .lock()
            .iter()
            .filter(|(path, on)| *on == thread && path.starts_with(root))
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// Every read that could wait for the disk (`Wait::Disk`) and the thread that made it.
    static DISK_READS: parking_lot::Mutex<Vec<(PathBuf, ThreadId)>> =
        parking_lot::Mutex::new(Vec::new());
    /// Directories whose files memory-only reads treat as not in memory.
    static DROPPED: parking_lot::Mutex<Vec<PathBuf>> = parking_lot::Mutex::new(Vec::new());

    /// Records a read of `path` that may wait for the disk, on the current thread.
    pub(crate) fn record_disk_read(path: &Path) {
        DISK_READS
            .lock()
            .push((path.to_path_buf(), std::thread::current().id()));
    }

    /// The disk reads of files under `root` that ran on `thread`.
    pub fn disk_reads_on(root: &Path, thread: ThreadId) -> Vec<PathBuf> {
        DISK_READS
            .lock()
            .iter()
            .filter(|(path, on)| *on == thread && path.starts_with(root))
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// How many disk reads of files under `root` ran, on any thread.
    pub fn disk_reads_under(root: &Path) -> usize {
        DISK_READS
            .lock()
            .iter()
            .filter(|(path, _)| path.starts_with(root))
            .count()
    }

    /// From now on, memory-only reads of files under `root` fail as if their pages had left
    /// the page cache (what `POSIX_FADV_DONTNEED` does where the file system honours it).
    pub fn drop_from_memory(root: &Path) {
        DROPPED.lock().push(root.to_path_buf());
    }

    /// Whether memory-only reads of `path` must fail ([`drop_from_memory`]).
    pub(crate) fn dropped_from_memory(path: &Path) -> bool {
        DROPPED.lock().iter().any(|root| path.starts_with(root))
    }

    /// How many times `dir` was fsynced so far (by any test; callers use unique temp dirs).
    pub fn sync_count(dir: &Path) -> usize {
        SYNCED.lock().iter().filter(|d| d.as_path() == dir).count()
    }
}

#[cfg(test)]
mod tests {
    use super::hook::sync_count;
    use super::*;

    #[test]
    fn create_dir_all_syncs_the_parent_of_every_directory_it_creates() {
        let root = tempfile::tempdir().unwrap();
        let leaf = root.path().join("a/b/c");
        create_dir_all(&leaf).unwrap();
        assert!(leaf.is_dir());
        for dir in [
            root.path(),
            &root.path().join("a"),
            &root.path().join("a/b"),
        ] {
            assert_eq!(sync_count(dir), 1, "{}", dir.display());
        }
        // Existing: the parent is synced again (an earlier run may have crashed before that).
        create_dir_all(&leaf).unwrap();
        assert_eq!(sync_count(&root.path().join("a/b")), 2);
    }

    #[test]
    fn rename_syncs_both_parents() {
        let root = tempfile::tempdir().unwrap();
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        create_dir_all(&a).unwrap();
        create_dir_all(&b).unwrap();
        std::fs::write(a.join("f"), b"x").unwrap();
        rename(&a.join("f"), &b.join("g")).unwrap();
        assert_eq!(std::fs::read(b.join("g")).unwrap(), b"x");
        assert_eq!(sync_count(&a), 1);
        assert_eq!(sync_count(&b), 1);
    }

    #[test]
    fn errors_name_the_path() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("nope");
        let err = rename(&missing.join("x"), &missing.join("y")).unwrap_err();
        assert_eq!(err.path(), missing.join("y"));
        assert!(matches!(err, DurableFsError::Io { .. }));
    }

    /// Opening a log creates its directory durably: the parent entry is fsynced.
    #[test]
    fn opening_a_log_syncs_the_parent_of_its_directory() {
        let root = tempfile::tempdir().unwrap();
        let plain = root.path().join("plain/log");
        let _log = crate::Log::open(&plain, crate::LogConfig::default()).unwrap();
        assert!(
            sync_count(&root.path().join("plain")) >= 1,
            "log dir not durable"
        );
        assert!(sync_count(root.path()) >= 1, "plain/ not durable");
    }
}
