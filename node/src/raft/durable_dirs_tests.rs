//! Every directory the Raft storage creates is made durable in its parent (a power loss must
//! not take away `raft/` with the vote written in it on first boot). A power loss cannot be
//! observed in a unit test, so this checks the parent fsyncs `proglog_log::durable_fs::hook`
//! records in test builds.

use proglog_log::LogConfig;
use proglog_log::durable_fs::hook::sync_count;

use super::NodeIdentity;
use super::storage_pair::open_storage;

#[tokio::test]
async fn storage_paths_sync_the_parents_of_what_they_create() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    NodeIdentity::load_or_create(&data, 0).unwrap();
    assert!(sync_count(root.path()) >= 1, "data dir not durable");
    let raft = data.join("raft");
    let config = LogConfig::default();
    let _storage = open_storage(
        &raft,
        config.clone(),
        config,
        std::sync::Arc::new(crate::metrics::Metrics::new()),
    )
    .unwrap();
    assert!(sync_count(&data) >= 1, "raft/ not durable in the data dir");
    assert!(sync_count(&raft) >= 1, "raft/log and raft/sm not durable");
    assert!(sync_count(&raft.join("sm")) >= 1, "sm/user-log not durable");
}
