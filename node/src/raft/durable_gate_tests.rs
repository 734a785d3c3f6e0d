//! The state machine never persists a position (`sm-state.json`, or a snapshot) beyond what the
//! node's Raft log holds durably. A leader applies entries its followers made durable while its
//! own fsync of them may still run; had the state machine persisted that position and the power
//! gone before that fsync finished, the node would find its state machine ahead of its Raft log
//! and refuse to start (`startup_check`) although no acknowledged data was lost.

use futures::StreamExt;
use openraft::EntryPayload;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftSnapshotBuilder, RaftStateMachine};
use proglog_log::LogConfig;
use proglog_proto::log::v1::Record;

use super::durable_index::DurableIndex;
use super::log_store::RaftLogStore;
use super::state_machine::UserLogStateMachine;
use super::types::{Entry, LogId, ProduceBatch};
use super::user_log::UserLog;
use crate::metrics::Metrics;

/// A Raft log store in `raft_dir` with its user log beside it (blocking).
fn open_store(raft_dir: &std::path::Path) -> RaftLogStore {
    let user = UserLog::open(&raft_dir.join("user-log"), LogConfig::default()).unwrap();
    RaftLogStore::open(raft_dir, LogConfig::default(), user).unwrap()
}

fn log_id(index: u64) -> LogId {
    super::types::test_log_id(1, 1, index)
}

fn entry(index: u64) -> Entry {
    entry_of_term(1, index)
}

fn entry_of_term(term: u64, index: u64) -> Entry {
    Entry {
        log_id: super::types::test_log_id(term, 1, index),
        payload: EntryPayload::Normal(ProduceBatch::new(vec![Record {
            value: vec![index as u8; 100].into(),
            ..Record::default()
        }])),
    }
}

async fn apply(sm: &mut UserLogStateMachine, indexes: std::ops::RangeInclusive<u64>) {
    let entries = indexes.map(|i| Ok((entry(i), None)));
    sm.apply(futures::stream::iter(entries).boxed())
        .await
        .unwrap();
}

/// The last applied index `sm-state.json` holds (None before any).
fn persisted_applied(dir: &std::path::Path) -> Option<u64> {
    let value: serde_json::Value = super::durable_file::read_json(&dir.join("sm-state.json"))
        .unwrap()
        .unwrap_or_default();
    value["state"]["last_applied"]["index"].as_u64()
}

#[tokio::test(flavor = "current_thread")]
async fn the_state_machine_persists_no_position_its_raft_log_does_not_hold() {
    let dir = tempfile::tempdir().unwrap();
    // Entries 1..=5 are applied, but the Raft log has made none of them durable yet.
    let durable = DurableIndex::new(1);
    let user = UserLog::open(&dir.path().join("user-log"), LogConfig::default()).unwrap();
    // The records of entries 1..=8, as the Raft log store appends them with the entries.
    let records: Vec<Vec<u8>> = (1..=8u8).map(|i| vec![i; 100]).collect();
    user.log().append_batch(&records).unwrap();
    let mut sm = UserLogStateMachine::open_with_metrics(
        dir.path(),
        user,
        std::sync::Arc::new(Metrics::new()),
        durable.subscribe(),
        None,
    )
    .unwrap();
    apply(&mut sm, 1..=5).await;
    sm.persist_now().await.unwrap();
    assert_eq!(
        persisted_applied(dir.path()),
        None,
        "persisted an applied position the Raft log does not hold"
    );

    // The Raft log's fsync covers them: the position may be persisted now.
    durable.synced(durable.before_sync(|| 6));
    sm.persist_now().await.unwrap();
    assert_eq!(persisted_applied(dir.path()), Some(5));

    // A snapshot waits for its entries too.
    apply(&mut sm, 6..=8).await;
    let mut builder = sm.get_snapshot_builder().await;
    let building = tokio::spawn(async move { builder.build_snapshot().await });
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    assert!(
        !building.is_finished(),
        "built a snapshot of entries the Raft log does not hold"
    );
    assert_eq!(persisted_applied(dir.path()), Some(5));
    durable.synced(durable.before_sync(|| 9));
    let snapshot = building.await.unwrap().unwrap();
    assert_eq!(snapshot.meta.last_log_id.map(|id| id.index), Some(8));
    assert_eq!(persisted_applied(dir.path()), Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_raft_log_store_counts_entries_durable_after_its_fsync_and_not_after_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let mut store = {
        let raft_dir = raft_dir.clone();
        tokio::task::spawn_blocking(move || open_store(&raft_dir))
            .await
            .unwrap()
    };
    let durable = store.durable();
    assert_eq!(durable.below(), 0);
    store
        .append((0..=5).map(entry), IOFlushed::noop())
        .await
        .unwrap();
    // The flusher thread syncs and then counts them.
    assert!(durable.covers(5).await);

    // A conflicting suffix from index 3 on is gone: only 0..=2 stay durable.
    store.truncate_after(Some(log_id(2))).await.unwrap();
    assert_eq!(durable.below(), 3);
    store
        .append((3..=4).map(|i| entry_of_term(2, i)), IOFlushed::noop())
        .await
        .unwrap();
    assert!(durable.covers(4).await);
    assert!(
        durable.below() <= 5,
        "index 5 was truncated, not re-appended"
    );

    // Purged entries are covered by a snapshot: they count as durable.
    store
        .purge(super::types::test_log_id(2, 1, 9))
        .await
        .unwrap();
    assert_eq!(durable.below(), 10);
    drop(store);

    // Reopened: what is on disk is synced at open and counts.
    let store = tokio::task::spawn_blocking(move || open_store(&raft_dir))
        .await
        .unwrap();
    assert_eq!(store.durable().below(), 10);
}
