//! Small state files replaced atomically: write a temporary file, fsync it, rename it over the
//! old one and fsync the directory. A crash leaves either the old or the new content, never a mix
//! — which is what the Raft vote and the state machine's applied position need.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::RaftStoreError;

fn file_err(path: &Path) -> impl FnOnce(std::io::Error) -> RaftStoreError + '_ {
    move |source| RaftStoreError::File {
        path: path.to_path_buf(),
        source,
    }
}

/// Atomically replaces `path` with the JSON of `value` (durable when this returns).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RaftStoreError> {
    let bytes = serde_json::to_vec_pretty(value)?;
    write_bytes(path, &bytes)
}

/// Atomically replaces `path` with `bytes` (durable when this returns).
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<(), RaftStoreError> {
    let tmp = tmp_path(path);
    {
        let mut file = File::create(&tmp).map_err(file_err(&tmp))?;
        file.write_all(bytes).map_err(file_err(&tmp))?;
        file.sync_all().map_err(file_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(file_err(path))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a JSON file written by [`write_json`]; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, RaftStoreError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RaftStoreError::Corrupt(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_err(path)(e)),
    }
}

/// Creates `dir` and its parents if missing (the directory a state file lives in).
pub fn create_dir(dir: &Path) -> Result<(), RaftStoreError> {
    fs::create_dir_all(dir).map_err(file_err(dir))
}

/// fsyncs a directory so that renames and new files in it survive a crash.
pub fn sync_dir(dir: &Path) -> Result<(), RaftStoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(file_err(dir))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        assert_eq!(read_json::<Vec<u64>>(&path).unwrap(), None);
        write_json(&path, &vec![1u64, 2]).unwrap();
        write_json(&path, &vec![3u64]).unwrap();
        assert_eq!(read_json::<Vec<u64>>(&path).unwrap(), Some(vec![3]));
        assert!(!tmp_path(&path).exists());
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
}
