//! The node's periodic retention task (`storage::spawn_retention`): it applies the storage
//! engine's policy on the blocking pool and stops once the log is dropped or closed. (The
//! policy itself is tested in `proglog-log`.)

use std::sync::Arc;
use std::time::Duration;

use proglog_log::{Log, LogConfig, RetentionPolicy};
use proglog_node::storage::spawn_retention;

const ENTRY: u64 = 12;
const FRAME_WITH_RECORD: u64 = 8 + 20;
/// Bytes of one full segment of this test's configuration (4 records).
const SEGMENT_BYTES: u64 = 4 * (FRAME_WITH_RECORD + ENTRY);

/// A log of `count` 20-byte records, 4 per segment.
fn filled_log(dir: &std::path::Path, count: u64) -> Log {
    let config = LogConfig {
        max_store_bytes: 1024,
        max_index_bytes: 4 * ENTRY,
        ..LogConfig::default()
    };
    let log = Log::open(dir, config).unwrap();
    for i in 0..count {
        log.append(format!("{i:0>20}").as_bytes()).unwrap();
    }
    log
}

#[tokio::test]
async fn background_retention_applies_policy_and_stops_with_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(filled_log(dir.path(), 14));
    let task = spawn_retention(
        Arc::clone(&log),
        RetentionPolicy {
            max_bytes: Some(SEGMENT_BYTES * 2),
            max_age: None,
        },
        Duration::from_millis(5),
    );
    tokio::time::timeout(Duration::from_secs(30), async {
        while log.lowest_offset() != 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("retention ran");
    drop(log);
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("task ends once the log is dropped")
        .unwrap();
}

#[tokio::test]
async fn background_retention_stops_when_log_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(filled_log(dir.path(), 3));
    log.close().unwrap();
    let task = spawn_retention(
        Arc::clone(&log),
        RetentionPolicy::default(),
        Duration::from_millis(1),
    );
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("task ends once the log is closed")
        .unwrap();
}
