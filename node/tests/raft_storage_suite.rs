//! openraft's official storage test suite against ProgLog's Raft log storage (on the segmented
//! log) and state machine (the user-visible log), each built fresh in a temporary directory.

use std::sync::Arc;

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use proglog_log::LogConfig;
use proglog_node::metrics::Metrics;
use proglog_node::raft::TypeConfig;
use proglog_node::raft::durable_index::RaftDurable;
use proglog_node::raft::log_store::RaftLogStore;
use proglog_node::raft::state_machine::UserLogStateMachine;
use proglog_node::raft::user_log::UserLog;
use tempfile::TempDir;

struct SegmentedLogStoreBuilder;

impl StoreBuilder<TypeConfig, RaftLogStore, UserLogStateMachine, TempDir>
    for SegmentedLogStoreBuilder
{
    async fn build(
        &self,
    ) -> Result<(TempDir, RaftLogStore, UserLogStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        // Tiny segments so that purging really deletes segment files and reads must hide
        // purged entries that still sit in a kept segment.
        let raft_log = LogConfig {
            max_store_bytes: 256,
            ..LogConfig::default()
        };
        // Both halves share the user log (one write per record), as on a node. The suite
        // applies entries to the state machine that it never appended to the Raft log, so the
        // state machine does not wait for the Raft log's durability here (a node's does:
        // `raft::durable_gate_tests`).
        let raft_dir = dir.path().join("raft");
        let user = UserLog::open(&raft_dir.join("user-log"), LogConfig::default())
            .expect("opening the user log");
        let store =
            RaftLogStore::open(&raft_dir, raft_log, user.clone()).expect("opening the raft log");
        let sm = UserLogStateMachine::open_with_metrics(
            &dir.path().join("sm"),
            user,
            Arc::new(Metrics::new()),
            RaftDurable::always(),
            None,
        )
        .expect("opening the state machine");
        let (applied, applied_end) = sm.applied_position();
        store
            .reconcile(applied, applied_end)
            .expect("reconciling the two logs");
        Ok((dir, store, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(SegmentedLogStoreBuilder)
        .await
        .expect("openraft storage suite");
}
