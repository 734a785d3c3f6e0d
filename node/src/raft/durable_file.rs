//! Small state files replaced atomically: write a temporary file with a name of its own, fsync
//! it, rename it over the old one and fsync the directory ([`proglog_log::durable_fs::rename`]). A
//! crash leaves either the old or the new content, never a mix — which is what the Raft vote and
//! the state machine's applied position need.
//!
//! A file replaced repeatedly by several paths (a background writer and a foreground one) is a
//! [`StateFile`]: it carries a version (`{"version": N, "state": …}`) that only grows, and one
//! writer at a time per file refuses any version not newer than the one on disk, so a slow
//! writer holding an older state can never overwrite a newer one. See "Failure semantics: state
//! files" in docs/ARCHITECTURE.md.
//!
//! Every file ends with a checksum line, `// crc32c xxxxxxxx`, over the JSON before it: a flipped
//! bit in a vote or an applied position would otherwise often still be valid JSON (a digit for
//! another digit) and be believed. Reading fails loudly on a mismatch; a file without the line
//! (written before checksums existed) is read as it is and gains one at its next write.

use std::fs::{self, File};
use std::io::Write;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use proglog_log::durable_fs::{self, DurableFsError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::RaftStoreError;

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> RaftStoreError + '_ {
    move |source| RaftStoreError::File {
        path: path.to_path_buf(),
        source,
    }
}

impl From<DurableFsError> for RaftStoreError {
    fn from(e: DurableFsError) -> Self {
        RaftStoreError::File {
            path: e.path().to_path_buf(),
            source: e.into_io(),
        }
    }
}

/// Atomically replaces `path` with the JSON of `value` (durable when this returns). Concurrent
/// calls for one path each use their own temporary file, so neither is torn; which one wins is
/// unspecified — use a [`StateFile`] for a file with more than one writer.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RaftStoreError> {
    let bytes = serde_json::to_vec_pretty(value)?;
    write_bytes(path, &bytes)
}

/// Atomically replaces `path` with the JSON `bytes` and their checksum line (durable when this
/// returns).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), RaftStoreError> {
    let tmp = unique_tmp_path(path);
    let written = (|| {
        let mut file = File::create(&tmp).map_err(file_err(&tmp))?;
        file.write_all(&seal(bytes)).map_err(file_err(&tmp))?;
        durable_fs::sync_file_all(&file, &tmp).map_err(file_err(&tmp))?;
        drop(file);
        Ok(durable_fs::rename(&tmp, path)?)
    })();
    if written.is_err() {
        // Best effort; a crash instead leaves it for `remove_temp_files` on the next open.
        let _ = fs::remove_file(&tmp);
    }
    written
}

/// Starts the checksum line that ends every state file.
const CHECKSUM_LINE: &[u8] = b"\n// crc32c ";

/// `json` followed by its checksum line.
fn seal(json: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(json.len() + 24);
    bytes.extend_from_slice(json);
    bytes.extend_from_slice(CHECKSUM_LINE);
    bytes.extend_from_slice(format!("{:08x}\n", crc32c::crc32c(json)).as_bytes());
    bytes
}

/// The JSON of a state file, its checksum verified (a file from before checksums: all of it).
fn unseal<'a>(path: &Path, bytes: &'a [u8]) -> Result<&'a [u8], RaftStoreError> {
    let Some(at) = bytes
        .windows(CHECKSUM_LINE.len())
        .rposition(|w| w == CHECKSUM_LINE)
    else {
        return Ok(bytes);
    };
    let (json, line) = (&bytes[..at], &bytes[at + CHECKSUM_LINE.len()..]);
    let computed = crc32c::crc32c(json);
    // Compared as text, exactly as written: any changed byte of the line is damage too.
    let stored_matches = line == format!("{computed:08x}\n").as_bytes();
    if !stored_matches {
        return Err(RaftStoreError::Corrupt(format!(
            "{}: checksum mismatch (the file says {}, its content has {computed:08x}): the disk \
             damaged it",
            path.display(),
            String::from_utf8_lossy(line).trim_end()
        )));
    }
    Ok(json)
}

/// Reads a JSON file written by [`write_json`]; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RaftStoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(unseal(path, &bytes)?)
            .map(Some)
            .map_err(|e| RaftStoreError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_err(path)(e)),
    }
}

/// Creates `dir` and its parents if missing, durably (the directory a state file lives in).
pub fn create_dir(dir: &Path) -> Result<(), RaftStoreError> {
    Ok(durable_fs::create_dir_all(dir)?)
}

/// Removes the temporary files that writes of `path` interrupted by a crash left behind (each
/// write has a temporary name of its own, so they would accumulate). Call before writing.
pub fn remove_temp_files(path: &Path) -> Result<(), RaftStoreError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let prefix = tmp_prefix(path);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(file_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(file_err(dir))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(&prefix))
        {
            let leftover = entry.path();
            tracing::info!(path = %leftover.display(), "removing a state file write interrupted by a crash");
            match fs::remove_file(&leftover) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(file_err(&leftover)(e));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `<name>.tmp`: every temporary name of `path` starts with it (older versions used exactly it).
fn tmp_prefix(path: &Path) -> String {
    format!(
        "{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// `<name>.tmp.<pid>.<n>`: unique per write, so two writes never share (and tear) a temp file.
fn unique_tmp_path(path: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!("{}.{}.{n}", tmp_prefix(path), std::process::id()))
}

/// The on-disk form of a [`StateFile`].
#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    version: u64,
    state: T,
}

/// A state file with more than one writer; see the module docs. Blocking: use it from
/// `spawn_blocking` or a dedicated thread.
#[derive(Debug)]
pub struct StateFile<T> {
    path: PathBuf,
    /// The newest version durably on disk. Held through a whole write: one writer at a time.
    written: Mutex<u64>,
    _state: PhantomData<fn(&T)>,
}

impl<T: Serialize + DeserializeOwned> StateFile<T> {
    /// Opens `path`: removes temporary files left by crashed writes, then reads the state and
    /// its version (`None` and version 0 when there is no file yet; a file written before
    /// versions existed is read as version 0).
    pub fn open(path: PathBuf) -> Result<(Self, Option<T>), RaftStoreError> {
        remove_temp_files(&path)?;
        let (version, state) = match read_json::<serde_json::Value>(&path)? {
            None => (0, None),
            Some(value) => {
                let corrupt = |e: serde_json::Error| {
                    RaftStoreError::Corrupt(format!("{}: {e}", path.display()))
                };
                // Decided by the key, never by trying both: a damaged versioned state must be
                // an error, not an old-format file whose fields all default to "none".
                if value.get("version").is_some() {
                    let v: Versioned<T> = serde_json::from_value(value).map_err(corrupt)?;
                    (v.version, Some(v.state))
                } else {
                    (0, Some(serde_json::from_value(value).map_err(corrupt)?))
                }
            }
        };
        let file = StateFile {
            path,
            written: Mutex::new(version),
            _state: PhantomData,
        };
        Ok((file, state))
    }

    /// The newest version on disk (the version the state read by [`StateFile::open`] had).
    pub fn version(&self) -> u64 {
        *self.written.lock()
    }

    /// Durably replaces the file with `state` as `version`, unless the file already holds
    /// `version` or a newer one: then nothing is written (that newer state is durable already)
    /// and this returns `false`.
    pub fn store(&self, version: u64, state: &T) -> Result<bool, RaftStoreError> {
        let mut written = self.written.lock();
        if version <= *written {
            return Ok(false);
        }
        let bytes = serde_json::to_vec_pretty(&Versioned { version, state })?;
        write_bytes(&self.path, &bytes)?;
        *written = version;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temps(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().into_string().ok())
            .filter(|n| n.contains(".tmp"))
            .collect()
    }

    #[test]
    fn replaces_content_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read_json::<Vec<u64>>(&path).unwrap(), None);
        write_json(&path, &vec![1u64, 2]).unwrap();
        write_json(&path, &vec![3u64]).unwrap();
        assert_eq!(read_json::<Vec<u64>>(&path).unwrap(), Some(vec![3]));
        assert!(temps(dir.path()).is_empty());
        // The rename is durable: the directory was fsynced after it.
        assert!(proglog_log::durable_fs::hook::sync_count(dir.path()) >= 2);
    }

    #[test]
    fn every_flipped_bit_of_a_state_file_is_refused() {
        // Before checksums, flips that kept the JSON valid (e.g. `5` -> `7` in a term or an
        // index) were read back as a different state.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (file, _) = StateFile::<Vec<u64>>::open(path.clone()).unwrap();
        assert!(file.store(5, &vec![15, 250]).unwrap());
        let good = fs::read(&path).unwrap();
        assert_eq!(
            read_json::<Versioned<Vec<u64>>>(&path)
                .unwrap()
                .unwrap()
                .state,
            [15, 250]
        );
        for byte in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[byte] ^= 1 << bit;
                fs::write(&path, &bad).unwrap();
                match StateFile::<Vec<u64>>::open(path.clone()) {
                    Err(RaftStoreError::Corrupt(_)) => {}
                    other => panic!(
                        "bit {bit} of byte {byte} ({bad:?}): {:?}",
                        other.map(|r| r.1)
                    ),
                }
            }
        }
    }

    #[test]
    fn a_file_from_before_checksums_is_read_and_gains_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, br#"{"version": 3, "state": [7]}"#).unwrap();
        let (file, state) = StateFile::<Vec<u64>>::open(path.clone()).unwrap();
        assert_eq!((state, file.version()), (Some(vec![7]), 3));
        assert!(file.store(4, &vec![8]).unwrap());
        assert!(fs::read_to_string(&path).unwrap().contains("\n// crc32c "));
        assert_eq!(StateFile::<Vec<u64>>::open(path).unwrap().1, Some(vec![8]));
    }

    #[test]
    fn corrupt_content_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{not json").unwrap();
        assert!(matches!(
            read_json::<Vec<u64>>(&path),
            Err(RaftStoreError::Corrupt(_))
        ));
    }

    #[test]
    fn state_file_versions_only_grow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let (file, state) = StateFile::<Vec<u64>>::open(path.clone()).unwrap();
        assert_eq!((state, file.version()), (None, 0));
        assert!(file.store(2, &vec![2]).unwrap());
        // An older or equal version (a slow writer's) is not written over the newer one.
        assert!(!file.store(1, &vec![1]).unwrap());
        assert!(!file.store(2, &vec![9]).unwrap());
        let (file, state) = StateFile::<Vec<u64>>::open(path.clone()).unwrap();
        assert_eq!((state, file.version()), (Some(vec![2]), 2));
        assert!(!file.store(2, &vec![9]).unwrap());
        assert!(file.store(3, &vec![3]).unwrap());
    }

    #[test]
    fn state_file_reads_the_unversioned_format_and_refuses_a_damaged_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"[7]").unwrap();
        let (file, state) = StateFile::<Vec<u64>>::open(path.clone()).unwrap();
        assert_eq!((state, file.version()), (Some(vec![7]), 0));
        fs::write(&path, br#"{"version": 4, "state": "not a list"}"#).unwrap();
        assert!(matches!(
            StateFile::<Vec<u64>>::open(path),
            Err(RaftStoreError::Corrupt(_))
        ));
    }

    #[test]
    fn open_removes_temp_files_left_by_crashed_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let other = dir.path().join("other.json.tmp.1.1");
        for leftover in [
            "state.json.tmp",
            "state.json.tmp.123.0",
            "state.json.tmp.123.1",
        ] {
            fs::write(dir.path().join(leftover), b"{\"version\": 9, \"sta").unwrap();
        }
        fs::write(&other, b"x").unwrap();
        let (file, state) = StateFile::<Vec<u64>>::open(path.clone()).unwrap();
        assert_eq!(state, None);
        assert_eq!(temps(dir.path()), vec!["other.json.tmp.1.1".to_string()]);
        file.store(1, &vec![1]).unwrap();
        assert_eq!(temps(dir.path()).len(), 1);
    }
}
