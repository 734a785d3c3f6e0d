//! One write per record: a produce entry's records are written to the user log only, the Raft
//! log keeps where they are, an entry reads back whole after a restart, the two logs agree again
//! after a crash between their writes, and a snapshot install whose entry the Raft log holds
//! keeps the records of the entries after it.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{EntryPayload, RaftLogReader};
use proglog_log::{Log, LogConfig};
use proglog_proto::log::v1::Record;

use super::log_store::RaftLogStore;
use super::snapshot::UserLogSnapshot;
use super::state_machine::UserLogStateMachine;
use super::storage_pair::open_storage;
use super::types::{Entry, LogId, ProduceBatch, SnapshotMeta, StoredMembership, Vote};
use crate::metrics::Metrics;

const VALUE_BYTES: usize = 1000;

fn log_id(term: u64, index: u64) -> LogId {
    super::types::test_log_id(term, 1, index)
}

/// Entry `index` of `term` with `records` records of [`VALUE_BYTES`].
fn produce(term: u64, index: u64, records: usize) -> Entry {
    let records = (0..records)
        .map(|i| Record {
            value: vec![(index as u8).wrapping_add(i as u8); VALUE_BYTES].into(),
            ..Record::default()
        })
        .collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(ProduceBatch::new(records)),
    }
}

async fn try_open(
    raft_dir: &Path,
) -> Result<(RaftLogStore, UserLogStateMachine), super::error::RaftStoreError> {
    let raft_dir = raft_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        open_storage(
            &raft_dir,
            LogConfig::default(),
            LogConfig::default(),
            Arc::new(Metrics::new()),
        )
    })
    .await
    .unwrap()
}

async fn open(raft_dir: &Path) -> (RaftLogStore, UserLogStateMachine) {
    try_open(raft_dir).await.unwrap()
}

/// Why opening the storage in `raft_dir` fails (it must).
async fn open_refused(raft_dir: &Path) -> String {
    match try_open(raft_dir).await {
        Ok(_) => panic!("the storage opened"),
        Err(e) => e.to_string(),
    }
}

/// Appends `entries` and waits until both logs made them durable.
async fn append_durably(store: &mut RaftLogStore, entries: Vec<Entry>) {
    let last = entries.last().unwrap().log_id.index;
    store.append(entries, IOFlushed::noop()).await.unwrap();
    assert!(store.durable().covers(last).await);
}

/// Fresh storage in `raft_dir` holding `count` durable entries of term 1, each of
/// `records_per_entry` records, none applied yet.
async fn open_with_entries(
    raft_dir: &Path,
    count: u64,
    records_per_entry: usize,
) -> (RaftLogStore, UserLogStateMachine, Vec<Entry>) {
    let (mut store, sm) = open(raft_dir).await;
    store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    let entries: Vec<Entry> = (1..=count)
        .map(|i| produce(1, i, records_per_entry))
        .collect();
    append_durably(&mut store, entries.clone()).await;
    (store, sm, entries)
}

async fn apply(sm: &mut UserLogStateMachine, entries: Vec<Entry>) {
    let entries = entries.into_iter().map(|e| Ok((e, None)));
    sm.apply(futures::stream::iter(entries).boxed())
        .await
        .unwrap();
}

/// Closes both logs (releasing their directory locks) as a node's shutdown does.
fn close(store: RaftLogStore, sm: UserLogStateMachine) {
    store.reader().close_log().unwrap();
    sm.user_log().log().close().unwrap();
}

/// Total bytes of the store files (records and their framing) in a log directory.
fn store_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "store"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_written_once_and_entries_read_back_whole_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let (store, mut sm, entries) = open_with_entries(&raft_dir, 50, 4).await;
    apply(&mut sm, entries.clone()).await;
    assert_eq!(sm.user_log().applied_end(), 200);

    let record_bytes = 200 * VALUE_BYTES as u64;
    let user_bytes = store_bytes(&raft_dir.join("sm/user-log"));
    let raft_bytes = store_bytes(&raft_dir.join("log"));
    println!(
        "200 records of {VALUE_BYTES} bytes: user log {user_bytes} bytes, raft log {raft_bytes}"
    );
    assert!(
        user_bytes >= record_bytes,
        "the records are in the user log"
    );
    assert!(
        raft_bytes < 50 * 100,
        "the raft log holds the records again ({raft_bytes} bytes for 50 entries)"
    );
    close(store, sm);

    // Reopened (no tail cache): every entry is rebuilt from both logs, records included.
    let (store, sm) = open(&raft_dir).await;
    assert_eq!(sm.user_log().applied_end(), 200);
    let read = store.reader().try_get_log_entries(1..51).await.unwrap();
    assert_eq!(read, entries);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_between_the_two_writes_the_logs_agree_again() {
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let user_dir = raft_dir.join("sm/user-log");
    let (store, mut sm, entries) = open_with_entries(&raft_dir, 10, 1).await;
    apply(&mut sm, entries[..4].to_vec()).await;
    sm.persist_now().await.unwrap();
    close(store, sm);

    // Records whose entry never reached the Raft log: dropped.
    let user = Log::open(&user_dir, LogConfig::default()).unwrap();
    user.append_batch(&[b"orphan".as_slice(), b"orphan"])
        .unwrap();
    user.close().unwrap();
    let (store, sm) = open(&raft_dir).await;
    assert_eq!(sm.user_log().log().next_offset(), 10);
    assert_eq!(
        store.reader().try_get_log_entries(1..11).await.unwrap(),
        entries
    );
    close(store, sm);

    // Entries whose records never reached the user log: dropped (never acknowledged).
    let user = Log::open(&user_dir, LogConfig::default()).unwrap();
    user.truncate_suffix(7).unwrap();
    user.close().unwrap();
    let (mut store, sm) = open(&raft_dir).await;
    let state = store.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.map(|id| id.index), Some(7));
    assert_eq!(sm.user_log().log().next_offset(), 7);
    assert_eq!(sm.user_log().applied_end(), 4);
    close(store, sm);

    // Applied records gone: lost data, refused.
    let user = Log::open(&user_dir, LogConfig::default()).unwrap();
    user.truncate_suffix(3).unwrap();
    user.close().unwrap();
    let refused = open_refused(&raft_dir).await;
    assert!(refused.contains("records were applied"), "{refused}");
}

/// A snapshot of the first `next` records (from a log of their own, as a received snapshot).
fn snapshot_of(dir: &Path, entries: &[Entry], next: u64) -> UserLogSnapshot {
    let log = Arc::new(Log::open(dir, LogConfig::default()).unwrap());
    for entry in entries {
        let EntryPayload::Normal(batch) = &entry.payload else {
            unreachable!()
        };
        for record in batch.records().unwrap().iter() {
            let mut record = record.clone();
            record.offset = log.next_offset();
            record.term = entry.log_id.leader_id.term;
            log.append(&prost::Message::encode_to_vec(&record)).unwrap();
        }
    }
    UserLogSnapshot {
        log,
        first_offset: 0,
        next_offset: next,
        staging: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installing_a_snapshot_of_an_entry_the_raft_log_holds_keeps_the_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let (store, mut sm, entries) = open_with_entries(&raft_dir, 10, 1).await;
    apply(&mut sm, entries[..5].to_vec()).await;

    // The leader's snapshot up to entry 7, which this Raft log holds, with entries after it.
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(1, 7)),
        last_membership: StoredMembership::default(),
    };
    let snapshot = snapshot_of(&dir.path().join("leader"), &entries[..7], 7);
    sm.install_snapshot(&meta, snapshot).await.unwrap();
    assert_eq!(sm.user_log().applied_end(), 7);
    assert_eq!(
        sm.user_log().log().next_offset(),
        10,
        "the records of entries 8..=10 were cut off"
    );
    let later = store.reader().try_get_log_entries(8..11).await.unwrap();
    assert_eq!(later, entries[7..]);
    apply(&mut sm, entries[7..].to_vec()).await;
    assert_eq!(sm.user_log().applied_end(), 10);

    // A snapshot of an entry this Raft log does not hold replaces the records.
    let other: Vec<Entry> = (1..=12).map(|i| produce(2, i, 1)).collect();
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 12)),
        last_membership: StoredMembership::default(),
    };
    let snapshot = snapshot_of(&dir.path().join("other"), &other, 12);
    sm.install_snapshot(&meta, snapshot).await.unwrap();
    assert_eq!(sm.user_log().applied_end(), 12);
    assert_eq!(sm.user_log().log().next_offset(), 12);
    let term = |offset| {
        let bytes = sm
            .user_log()
            .read_applied(offset, proglog_log::Wait::Disk)
            .unwrap();
        super::state_machine::decode_record(&bytes).unwrap().term
    };
    assert_eq!((term(0), term(11)), (2, 2), "the snapshot's records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_of_the_two_log_layout_is_refused_with_the_way_out() {
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let (mut store, sm) = open(&raft_dir).await;
    store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    close(store, sm);
    // What an earlier version left: the same state file without the layout.
    let path = raft_dir.join("raft-state.json");
    let mut file: serde_json::Value = super::durable_file::read_json(&path).unwrap().unwrap();
    let state = file.get_mut("state").expect("a versioned state file");
    state.as_object_mut().unwrap().remove("layout").unwrap();
    super::durable_file::write_json(&path, &file).unwrap();

    let refused = open_refused(&raft_dir).await;
    assert!(refused.contains("stored every record twice"), "{refused}");
    assert!(refused.contains("wipe its data directory"), "{refused}");
}
