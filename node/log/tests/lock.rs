//! A log directory has one owner at a time: a second `Log::open` of the same directory is
//! refused while the first is open (two writers would interleave frames and corrupt it), and
//! allowed again once the first is closed or dropped.

use proglog_log::{Log, LogConfig, LogError};

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = Log::open(dir.path(), LogConfig::default()).unwrap();
    first.append(b"kept").unwrap();

    let err = Log::open(dir.path(), LogConfig::default()).unwrap_err();
    match &err {
        LogError::Locked { dir: locked, .. } => assert_eq!(locked, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().contains("already open"),
        "message names the problem: {err}"
    );
    // The refused open changed nothing.
    assert_eq!(first.read(0).unwrap(), &b"kept"[..]);
}

#[test]
fn close_and_drop_release_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(b"a").unwrap();
    log.close().unwrap();
    let reopened = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(reopened.read(0).unwrap(), &b"a"[..]);
    drop(log);
    drop(reopened);
    let again = Log::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(again.next_offset(), 1);
}

#[test]
fn remove_deletes_the_lock_file_and_the_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let log = Log::open(&dir, LogConfig::default()).unwrap();
    log.append(b"gone").unwrap();
    log.remove().unwrap();
    assert!(!dir.exists(), "directory still there: {dir:?}");
}
