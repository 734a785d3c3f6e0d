//! Concurrency tests of the Raft state files: the background writers (`sm-state.json`'s
//! persister, `raft-committed.json`'s writer) race the foreground paths (snapshot install,
//! `persist_now` on shutdown, `close_log`) while a checker reads the file after every step. The
//! file must always parse (never torn) and never go back to an older state than one already
//! observed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use openraft::storage::{RaftLogStorage, RaftStateMachine};
use proglog_log::{Log, LogConfig};

use super::log_store::RaftLogStore;
use super::snapshot::UserLogSnapshot;
use super::state_machine::UserLogStateMachine;
use super::types::{LogId, SnapshotMeta, StoredMembership};

const HAMMER_FOR: Duration = Duration::from_secs(2);

fn log_id(index: u64) -> LogId {
    super::types::test_log_id(1, 1, index)
}

/// What a state file says: its version (0 for a file without one) and the Raft index it
/// stands for, found at `index_of` in the state. `Err` when the file is torn or unreadable.
fn observe(path: &Path, index_of: &[&str]) -> Result<Option<(u64, u64)>, String> {
    // Read as the node reads it (checksum line verified): a torn file is an error.
    let value: serde_json::Value = match super::durable_file::read_json(path) {
        Ok(Some(value)) => value,
        Ok(None) => return Ok(None),
        Err(e) => return Err(format!("torn or unreadable file: {e}")),
    };
    let (version, mut state) = match value.get("version") {
        Some(v) => (v.as_u64().unwrap_or(0), value["state"].clone()),
        None => (0, value),
    };
    for key in index_of {
        state = state[*key].clone();
    }
    Ok(Some((version, state["index"].as_u64().unwrap_or(0))))
}

/// Reads `path` until `stop`, asserting every observation is valid and not older than the last.
fn check_monotonic(path: PathBuf, index_of: &'static [&'static str], stop: Arc<AtomicBool>) {
    let mut last = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        match observe(&path, index_of) {
            Ok(Some(seen)) => {
                assert!(
                    seen.0 >= last.0 && seen.1 >= last.1,
                    "{} went back from (version, index) {last:?} to {seen:?}",
                    path.display()
                );
                last = seen;
            }
            Ok(None) => assert_eq!(last, (0, 0), "{} disappeared", path.display()),
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sm_state_never_goes_back_while_install_and_persist_race() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let sm_dir = dir.path().join("sm");
    let mut sm = UserLogStateMachine::open(&sm_dir, config.clone()).unwrap();
    let source = Arc::new(Log::open(dir.path().join("source"), config).unwrap());
    for i in 0..3u8 {
        source.append(&[i]).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (path, stop) = (sm_dir.join("sm-state.json"), stop.clone());
        std::thread::spawn(move || check_monotonic(path, &["last_applied"], stop))
    };
    // Foreground persists (as on shutdown), racing the installs and the background persister.
    let mut persisters = Vec::new();
    for _ in 0..3 {
        let (sm, stop) = (sm.clone(), stop.clone());
        persisters.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                sm.persist_now().await.expect("persist_now");
            }
        }));
    }
    let started = Instant::now();
    let mut index = 0;
    while started.elapsed() < HAMMER_FOR {
        index += 10;
        let meta = SnapshotMeta {
            last_log_id: Some(log_id(index)),
            last_membership: StoredMembership::default(),
        };
        let snapshot = UserLogSnapshot {
            log: source.clone(),
            first_offset: 0,
            next_offset: 3,
            staging: None,
        };
        sm.install_snapshot(&meta, snapshot).await.unwrap();
        // Once install returns, its state (or a newer one) is what the file says.
        let seen = observe(&sm_dir.join("sm-state.json"), &["last_applied"]).unwrap();
        assert!(
            seen.unwrap().1 >= index,
            "install of {index} not durable: {seen:?}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for p in persisters {
        p.await.unwrap();
    }
    checker
        .join()
        .expect("sm-state.json stayed valid and monotonic");
    assert!(leftover_temps(&sm_dir).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_committed_never_goes_back_while_writer_and_close_race() {
    let dir = tempfile::tempdir().unwrap();
    let user =
        super::user_log::UserLog::open(&dir.path().join("user-log"), LogConfig::default()).unwrap();
    let mut store = RaftLogStore::open(dir.path(), LogConfig::default(), user).unwrap();
    let reader = store.reader();
    let stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let (path, stop) = (dir.path().join("raft-committed.json"), stop.clone());
        std::thread::spawn(move || check_monotonic(path, &[], stop))
    };
    let mut closers = Vec::new();
    for _ in 0..3 {
        let (reader, stop) = (reader.clone(), stop.clone());
        closers.push(tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                // The log is closed after the first call; the committed id is written each time.
                let _ = reader.close_log();
            }
        }));
    }
    let started = Instant::now();
    let mut index = 0;
    while started.elapsed() < HAMMER_FOR {
        index += 1;
        store.save_committed(Some(log_id(index))).await.unwrap();
        if index % 64 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    // The newest committed id is on disk after a final close.
    let _ = reader.close_log();
    let seen = observe(&dir.path().join("raft-committed.json"), &[]).unwrap();
    assert_eq!(seen.map(|s| s.1), Some(index));
    stop.store(true, Ordering::Relaxed);
    for c in closers {
        c.await.unwrap();
    }
    checker
        .join()
        .expect("raft-committed.json stayed valid and monotonic");
}

/// Temporary files left in `dir` (a crash mid-write leaves one; open removes them).
fn leftover_temps(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|name| name.contains(".tmp"))
        .collect()
}
