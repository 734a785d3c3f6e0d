//! No fsync on an async runtime's thread (issue 10, item 9): the Raft storage paths openraft
//! drives from its tasks — log `append` (whose segment rolls fsync the sealed segment),
//! `truncate_after`, `purge`, `save_vote`, and the state machine's `apply` — must do their file
//! I/O on blocking threads. On a current-thread runtime every async task runs on the test's own
//! thread, so an fsync recorded on that thread (`durable_fs::hook`, test builds) is one that
//! would have stalled every other task of a worker thread.

use futures::StreamExt;
use openraft::EntryPayload;
use openraft::storage::{IOFlushed, RaftLogStorage, RaftStateMachine};
use proglog_log::LogConfig;
use proglog_log::durable_fs::hook::{fsyncs_on, fsyncs_under};
use proglog_proto::log::v1::Record;

use super::log_store::RaftLogStore;
use super::state_machine::UserLogStateMachine;
use super::types::{Entry, LogId, ProduceBatch, Vote};

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(
        openraft::impls::leader_id_adv::LeaderId { term, node_id: 1 },
        index,
    )
}

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(ProduceBatch::new(vec![Record {
            value: vec![index as u8; 700].into(),
            ..Record::default()
        }])),
    }
}

/// Segments of about two entries, so appending and applying roll (and fsync) segments.
fn tiny_segments() -> LogConfig {
    LogConfig {
        max_store_bytes: 2048,
        ..LogConfig::default()
    }
}

/// Opens the Raft storage in `raft_dir` on a blocking thread: opening is recovery, which the node
/// runs on one too (`RaftNode::start`).
async fn open(raft_dir: std::path::PathBuf) -> (RaftLogStore, UserLogStateMachine) {
    tokio::task::spawn_blocking(move || {
        crate::raft::storage_pair::open_storage(
            &raft_dir,
            tiny_segments(),
            tiny_segments(),
            std::sync::Arc::new(crate::metrics::Metrics::new()),
        )
        .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn raft_storage_does_no_fsync_on_the_runtime_thread() {
    let runtime_thread = std::thread::current().id();
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let (mut store, mut sm) = open(raft_dir.clone()).await;

    let after_open = fsyncs_under(dir.path());
    store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    store
        .append((1..=20).map(|i| entry(1, i)), IOFlushed::noop())
        .await
        .unwrap();
    // A new leader's conflicting suffix: truncated, then replaced.
    store.truncate_after(Some(log_id(1, 15))).await.unwrap();
    store.save_vote(&Vote::new_committed(2, 1)).await.unwrap();
    store
        .append((16..=24).map(|i| entry(2, i)), IOFlushed::noop())
        .await
        .unwrap();
    let entries = (1..=24).map(|i| Ok((entry(if i <= 15 { 1 } else { 2 }, i), None)));
    sm.apply(futures::stream::iter(entries).boxed())
        .await
        .unwrap();
    store.purge(log_id(1, 10)).await.unwrap();

    let on_runtime = fsyncs_on(dir.path(), runtime_thread);
    assert!(
        on_runtime.is_empty(),
        "fsyncs on the runtime's thread: {on_runtime:?}"
    );
    // The paths above did fsync (on blocking threads): the check is not vacuous.
    assert!(
        fsyncs_under(dir.path()) > after_open + 4,
        "the paths fsynced"
    );
    assert_eq!(sm.user_log().log().next_offset(), 24);
    assert_eq!(sm.user_log().applied_end(), 24);
    assert!(sm.user_log().log().segments().len() > 2, "segments rolled");
}

/// Replicating to a follower that fell behind reads entries the tail cache no longer holds;
/// those file reads must run on blocking threads too, or one lagging follower stalls the
/// leader's runtime thread (with one worker per node: the whole leader) on the disk.
#[tokio::test(flavor = "current_thread")]
async fn raft_log_reads_past_the_tail_cache_run_off_the_runtime_thread() {
    use openraft::storage::RaftLogReader;
    use proglog_log::durable_fs::hook::{disk_reads_on, disk_reads_under};

    let runtime_thread = std::thread::current().id();
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let (mut store, sm) = open(raft_dir.clone()).await;
    store.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
    store
        .append((1..=12).map(|i| entry(1, i)), IOFlushed::noop())
        .await
        .unwrap();
    drop((store, sm));
    // Reopened: the tail cache starts empty, so every entry comes from the files.
    let (mut store, _sm) = open(raft_dir).await;
    let before = disk_reads_under(dir.path());
    let entries = store
        .get_log_reader()
        .await
        .try_get_log_entries(2..9)
        .await
        .unwrap();
    assert_eq!(
        entries.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
        (2..9).collect::<Vec<_>>()
    );
    let on_runtime = disk_reads_on(dir.path(), runtime_thread);
    assert!(
        on_runtime.is_empty(),
        "disk reads on the runtime's thread: {on_runtime:?}"
    );
    assert!(
        disk_reads_under(dir.path()) > before,
        "the entries were read from the files"
    );
}
