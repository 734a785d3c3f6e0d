//! Every directory the Raft storage creates is made durable in its parent (a power loss must
//! not take away `raft/` with the vote written in it on first boot). A power loss cannot be
//! observed in a unit test, so this checks the parent fsyncs `proglog_log::durable_fs::hook`
//! records in test builds.

use proglog_log::LogConfig;
use proglog_log::durable_fs::hook::sync_count;

use super::NodeIdentity;
use super::log_store::RaftLogStore;
use super::state_machine::UserLogStateMachine;

#[tokio::test]
async fn storage_paths_sync_the_parents_of_what_they_create() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    NodeIdentity::load_or_create(&data, 0).unwrap();
    assert!(sync_count(root.path()) >= 1, "data dir not durable");
    let raft = data.join("raft");
    let config = LogConfig::default();
    let _store = RaftLogStore::open(&raft, config.clone()).unwrap();
    assert!(sync_count(&data) >= 1, "raft/ not durable in the data dir");
    assert!(sync_count(&raft) >= 1, "raft/log not durable");
    let sm = raft.join("sm");
    let _sm = UserLogStateMachine::open(&sm, config).unwrap();
    assert!(sync_count(&sm) >= 1, "sm/user-log not durable");
}
