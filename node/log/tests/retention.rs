//! Retention tests: deleting the oldest sealed segments by total size and by age, never the
//! active one. (The node's periodic task is tested in the node crate.)

use std::fs::File;
use std::time::{Duration, SystemTime};

use proglog_log::{Log, LogConfig, RetentionOutcome, RetentionPolicy};

const ENTRY: u64 = 12;
const FRAME_WITH_RECORD: u64 = 8 + 20;
/// Bytes of one full segment of this test's configuration (4 records).
const SEGMENT_BYTES: u64 = 4 * (FRAME_WITH_RECORD + ENTRY);

fn config() -> LogConfig {
    LogConfig {
        max_store_bytes: 1024,
        max_index_bytes: 4 * ENTRY,
        ..LogConfig::default()
    }
}

/// A log of `count` 20-byte records, 4 per segment.
fn filled_log(dir: &std::path::Path, count: u64) -> Log {
    let log = Log::open(dir, config()).unwrap();
    for i in 0..count {
        log.append(format!("{i:0>20}").as_bytes()).unwrap();
    }
    log
}

#[test]
fn retention_by_bytes_removes_oldest_sealed_segments() {
    let dir = tempfile::tempdir().unwrap();
    // Segments [0,4) [4,8) [8,12) [12,14): 3 full ones and a half-full active one.
    let log = filled_log(dir.path(), 14);
    let total: u64 = log
        .segments()
        .iter()
        .map(|s| s.store_bytes + s.index_bytes)
        .sum();
    assert_eq!(total, 3 * SEGMENT_BYTES + SEGMENT_BYTES / 2);
    let policy = RetentionPolicy {
        max_bytes: Some(2 * SEGMENT_BYTES),
        max_age: None,
    };
    let outcome = log.apply_retention(&policy).unwrap();
    assert_eq!(
        outcome,
        RetentionOutcome {
            segments_removed: 2,
            bytes_removed: 2 * SEGMENT_BYTES,
            lowest_offset: 8,
        }
    );
    assert!(
        !log.segments()[0]
            .store_path
            .ends_with("00000000000000000000.store")
    );
    assert!(!dir.path().join("00000000000000000000.store").exists());
    // Nothing more to do.
    assert_eq!(log.apply_retention(&policy).unwrap().segments_removed, 0);
}

#[test]
fn retention_never_removes_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled_log(dir.path(), 10);
    let policy = RetentionPolicy {
        max_bytes: Some(0),
        max_age: Some(Duration::ZERO),
    };
    let outcome = log.apply_retention(&policy).unwrap();
    assert_eq!(outcome.segments_removed, 2);
    assert_eq!(outcome.lowest_offset, 8);
    assert_eq!(log.segments().len(), 1);
    assert_eq!(log.read(9).unwrap(), format!("{:0>20}", 9).as_bytes());
}

#[test]
fn retention_by_age_uses_last_modification() {
    let dir = tempfile::tempdir().unwrap();
    let segments = filled_log(dir.path(), 14).segments();
    // Age the first two segments by a day (as if written then), keep the third recent.
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    for segment in &segments[..2] {
        File::options()
            .write(true)
            .open(&segment.store_path)
            .unwrap()
            .set_modified(day_ago)
            .unwrap();
    }
    let log = Log::open(dir.path(), config()).unwrap();
    let policy = RetentionPolicy {
        max_bytes: None,
        max_age: Some(Duration::from_secs(3600)),
    };
    let outcome = log.apply_retention(&policy).unwrap();
    assert_eq!(outcome.segments_removed, 2);
    assert_eq!(outcome.lowest_offset, 8);
    // An empty policy keeps everything.
    let keep_all = log.apply_retention(&RetentionPolicy::default()).unwrap();
    assert_eq!(keep_all.segments_removed, 0);
}

#[test]
fn retention_stops_at_first_kept_segment() {
    // Only a prefix is ever removed: an old segment after a recent one stays.
    let dir = tempfile::tempdir().unwrap();
    let segments = filled_log(dir.path(), 14).segments();
    let day_ago = SystemTime::now() - Duration::from_secs(24 * 3600);
    File::options()
        .write(true)
        .open(&segments[1].store_path)
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    let outcome = log
        .apply_retention(&RetentionPolicy {
            max_bytes: None,
            max_age: Some(Duration::from_secs(3600)),
        })
        .unwrap();
    assert_eq!(outcome.segments_removed, 0);
    assert_eq!(log.lowest_offset(), 0);
}
