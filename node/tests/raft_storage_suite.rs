//! openraft's official storage test suite against ProgLog's Raft log storage (on the segmented
//! log) and state machine (the user-visible log), each built fresh in a temporary directory.

use openraft::StorageError;
use openraft::testing::log::{StoreBuilder, Suite};
use proglog_log::LogConfig;
use proglog_node::raft::TypeConfig;
use proglog_node::raft::log_store::RaftLogStore;
use proglog_node::raft::state_machine::UserLogStateMachine;
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
        let store =
            RaftLogStore::open(&dir.path().join("raft"), raft_log).expect("opening the raft log");
        let sm = UserLogStateMachine::open(&dir.path().join("sm"), LogConfig::default())
            .expect("opening the state machine");
        Ok((dir, store, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes() {
    Suite::test_all(SegmentedLogStoreBuilder)
        .await
        .expect("openraft storage suite");
}
