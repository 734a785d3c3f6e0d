//! Unit tests of [`Log`] through its public API: bounds, rolling, reopening, truncation, reset,
//! the reader and notifications.

use std::sync::Arc;

use super::*;

const FRAME: u64 = 8;
const ENTRY: u64 = 12;

/// Segments of ten small records (also used by `read_tests`).
pub(super) fn small_config() -> LogConfig {
    LogConfig {
        max_store_bytes: 1024,
        max_index_bytes: 10 * ENTRY,
        ..LogConfig::default()
    }
}

pub(super) fn record(i: u64) -> Vec<u8> {
    format!("record-{i}").into_bytes()
}

#[test]
fn empty_log_reads_are_out_of_range() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert!(log.is_empty());
    assert_eq!(log.lowest_offset(), 0);
    assert_eq!(log.next_offset(), 0);
    assert!(matches!(
        log.read(0),
        Err(LogError::OffsetPastEnd { offset: 0, next: 0 })
    ));
    assert_eq!(log.reader(0).count(), 0);
}

#[test]
fn initial_offset_applies_to_new_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        initial_offset: 16,
        ..small_config()
    };
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!(log.append(b"a").unwrap(), 16);
    assert_eq!(log.read(16).unwrap(), &b"a"[..]);
    assert!(matches!(
        log.read(15),
        Err(LogError::OffsetBelowStart {
            offset: 15,
            lowest: 16
        })
    ));
    assert!(matches!(
        log.read(17),
        Err(LogError::OffsetPastEnd {
            offset: 17,
            next: 17
        })
    ));
}

#[test]
fn append_batch_returns_contiguous_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.append_batch(&[b"a", b"b", b"c"]).unwrap(), 0..3);
    assert_eq!(log.append_batch::<&[u8]>(&[]).unwrap(), 3..3);
    assert_eq!(log.append(b"d").unwrap(), 3);
    for (i, want) in [b"a", b"b", b"c", b"d"].iter().enumerate() {
        assert_eq!(log.read(i as u64).unwrap(), &want[..]);
    }
}

#[test]
fn reopen_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_config()).unwrap();
        for i in 0..25 {
            log.append(&record(i)).unwrap();
        }
        log.close().unwrap();
        assert!(matches!(log.read(0), Err(LogError::Closed)));
        assert!(matches!(log.append(b"x"), Err(LogError::Closed)));
    }
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.next_offset(), 25);
    assert!(log.segments().len() >= 3);
    for i in 0..25 {
        assert_eq!(log.read(i).unwrap(), record(i));
    }
    assert_eq!(log.append(b"more").unwrap(), 25);
}

#[test]
fn reopen_after_drop_without_close_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = Log::open(dir.path(), small_config()).unwrap();
        for i in 0..15 {
            log.append(&record(i)).unwrap();
        }
    }
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.next_offset(), 15);
    assert_eq!(log.read(14).unwrap(), record(14));
}

#[test]
fn rolls_exactly_at_store_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Two frames of 8 + 12 bytes fill the store exactly.
    let config = LogConfig {
        max_store_bytes: 2 * (FRAME + 12),
        ..small_config()
    };
    let log = Log::open(dir.path(), config).unwrap();
    log.append_batch(&[[1u8; 12], [2u8; 12]]).unwrap();
    assert_eq!(
        log.segments().len(),
        1,
        "an exactly full segment does not roll"
    );
    assert_eq!(log.segments()[0].store_bytes, 2 * (FRAME + 12));
    log.append(&[3u8; 1]).unwrap();
    let segments = log.segments();
    assert_eq!(segments.len(), 2, "rolled before the overflowing append");
    assert_eq!(segments[1].base_offset, 2);
    assert_eq!(log.read(2).unwrap(), &[3u8][..]);
}

#[test]
fn rolls_exactly_at_index_limit() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_index_bytes: 3 * ENTRY + 5,
        ..small_config()
    };
    let log = Log::open(dir.path(), config).unwrap();
    log.append_batch(&[b"a", b"b", b"c", b"d", b"e", b"f", b"g"])
        .unwrap();
    let segments = log.segments();
    let bases: Vec<u64> = segments.iter().map(|s| s.base_offset).collect();
    assert_eq!(bases, vec![0, 3, 6]);
    assert!(segments.iter().all(|s| s.index_bytes <= 3 * ENTRY));
    assert_eq!(
        std::fs::metadata(&segments[0].index_path).unwrap().len(),
        3 * ENTRY,
        "a sealed index is cut to its entries"
    );
    for (i, want) in [b"a", b"b", b"c", b"d", b"e", b"f", b"g"]
        .iter()
        .enumerate()
    {
        assert_eq!(log.read(i as u64).unwrap(), &want[..]);
    }
}

#[test]
fn too_large_record_is_rejected_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_record_bytes: 100,
        ..small_config()
    };
    let log = Log::open(dir.path(), config).unwrap();
    let err = log
        .append_batch(&[vec![0u8; 10], vec![0u8; 101]])
        .unwrap_err();
    assert!(matches!(
        err,
        LogError::RecordTooLarge {
            size: 101,
            max: 100
        }
    ));
    assert!(log.is_empty());
}

/// The segment size is where a segment rolls, not a record limit: a record larger than a whole
/// segment goes alone into a segment of its own (a Raft node must store every committed record,
/// whatever its segment size is configured to today).
#[test]
fn record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let huge = vec![7u8; 3000];
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(b"small").unwrap();
    let range = log
        .append_batch(&[huge.clone(), b"after".to_vec(), huge.clone()])
        .unwrap();
    assert_eq!(range, 1..4);
    log.append(b"last").unwrap();
    let spans: Vec<(u64, u64)> = log
        .segments()
        .iter()
        .map(|s| (s.base_offset, s.next_offset))
        .collect();
    assert_eq!(spans, vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
    assert_eq!(log.segments()[1].store_bytes, FRAME + 3000);
    log.sync().unwrap();
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.read(1).unwrap(), huge);
    assert_eq!(log.read(2).unwrap(), &b"after"[..]);
    assert_eq!(log.read(3).unwrap(), huge);
    let all: Vec<u64> = log.reader(0).map(|r| r.unwrap().0).collect();
    assert_eq!(all, vec![0, 1, 2, 3, 4]);
    // An oversized last segment is still appended to after a reopen: it rolls first.
    assert_eq!(log.append(b"again").unwrap(), 5);
}

#[test]
fn invalid_config_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for config in [
        LogConfig {
            max_index_bytes: 11,
            ..LogConfig::default()
        },
        LogConfig {
            max_store_bytes: 8,
            ..LogConfig::default()
        },
        LogConfig {
            max_record_bytes: 0,
            ..LogConfig::default()
        },
    ] {
        assert!(matches!(
            Log::open(dir.path(), config),
            Err(LogError::InvalidConfig(_))
        ));
    }
}

#[test]
fn truncate_prefix_removes_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_index_bytes: 3 * ENTRY,
        ..small_config()
    };
    let log = Log::open(dir.path(), config).unwrap();
    for i in 0..8 {
        log.append(&record(i)).unwrap();
    }
    // Segments [0,3) [3,6) [6,8): before=5 removes only the first.
    log.truncate_prefix(5).unwrap();
    assert_eq!(log.lowest_offset(), 3);
    assert!(matches!(
        log.read(2),
        Err(LogError::OffsetBelowStart {
            offset: 2,
            lowest: 3
        })
    ));
    assert_eq!(log.read(3).unwrap(), record(3));
    // Far past the end: never deletes the active segment.
    log.truncate_prefix(100).unwrap();
    assert_eq!(log.lowest_offset(), 6);
    assert_eq!(log.next_offset(), 8);
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.lowest_offset(), 6);
    assert_eq!(log.read(7).unwrap(), record(7));
}

#[test]
fn truncate_suffix_drops_tail_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_index_bytes: 3 * ENTRY,
        ..small_config()
    };
    let log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..8 {
        log.append(&record(i)).unwrap();
    }
    log.truncate_suffix(4).unwrap();
    assert_eq!(log.next_offset(), 4);
    assert_eq!(log.segments().len(), 2);
    assert!(matches!(log.read(4), Err(LogError::OffsetPastEnd { .. })));
    assert_eq!(log.append(b"new-4").unwrap(), 4);
    assert_eq!(log.append(b"new-5").unwrap(), 5);
    assert_eq!(log.append(b"new-6").unwrap(), 6);
    assert_eq!(log.read(3).unwrap(), record(3));
    assert_eq!(log.read(5).unwrap(), &b"new-5"[..]);
    // Out of range both sides, and the no-op at the end.
    assert!(matches!(
        log.truncate_suffix(8),
        Err(LogError::OffsetPastEnd { offset: 8, next: 7 })
    ));
    log.truncate_prefix(3).unwrap();
    assert!(matches!(
        log.truncate_suffix(2),
        Err(LogError::OffsetBelowStart {
            offset: 2,
            lowest: 3
        })
    ));
    log.truncate_suffix(7).unwrap();
    log.sync().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.lowest_offset(), log.next_offset()), (3, 7));
    assert_eq!(log.read(6).unwrap(), &b"new-6"[..]);
}

#[test]
fn truncate_suffix_to_lowest_empties_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append_batch(&[b"a", b"b"]).unwrap();
    log.truncate_suffix(0).unwrap();
    assert!(log.is_empty());
    assert_eq!(log.append(b"c").unwrap(), 0);
}

#[test]
fn reset_drops_everything_and_moves_next_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_index_bytes: 3 * ENTRY,
        ..small_config()
    };
    let log = Log::open(dir.path(), config.clone()).unwrap();
    for i in 0..7 {
        log.append(&record(i)).unwrap();
    }
    for next in [100, 3, 3, 50, 0] {
        log.reset(next).unwrap();
        assert!(log.is_empty());
        assert_eq!((log.lowest_offset(), log.next_offset()), (next, next));
        assert_eq!(log.segments().len(), 1);
        assert_eq!(log.append(b"after").unwrap(), next);
        assert_eq!(log.read(next).unwrap(), &b"after"[..]);
        log.truncate_suffix(next).unwrap();
    }
    log.reset(42).unwrap();
    log.append(b"x").unwrap();
    drop(log);
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.lowest_offset(), log.next_offset()), (42, 43));
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name() != crate::LOCK_FILE_NAME)
        .count();
    assert_eq!(files, 2, "only the new segment's two files remain");
}

#[test]
fn reader_round_trip_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    let records: Vec<Vec<u8>> = (0..100).map(record).collect();
    log.append_batch(&records).unwrap();
    assert!(log.segments().len() > 5);
    let read: Vec<(u64, Vec<u8>)> = log
        .reader(0)
        .map(|r| r.map(|(o, b)| (o, b.to_vec())))
        .collect::<Result<_>>()
        .unwrap();
    let want: Vec<(u64, Vec<u8>)> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (i as u64, r))
        .collect();
    assert_eq!(read, want);
    let tail: Vec<u64> = log.reader(97).map(|r| r.unwrap().0).collect();
    assert_eq!(tail, vec![97, 98, 99]);
}

#[test]
fn reader_resumes_after_new_appends_and_reports_range_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_config()).unwrap());
    log.append(b"a").unwrap();
    let mut reader = log.reader_owned(0);
    assert_eq!(reader.next().unwrap().unwrap().1, &b"a"[..]);
    assert!(reader.next().is_none());
    log.append(b"b").unwrap();
    assert_eq!(
        reader.next().unwrap().unwrap(),
        (1, bytes::Bytes::from_static(b"b"))
    );
    assert!(matches!(
        log.reader(5).next(),
        Some(Err(LogError::OffsetPastEnd { offset: 5, next: 2 }))
    ));
    log.reset(10).unwrap();
    let mut below = log.reader(0);
    assert!(matches!(
        below.next(),
        Some(Err(LogError::OffsetBelowStart {
            offset: 0,
            lowest: 10
        }))
    ));
    assert!(below.next().is_none(), "iteration ends after an error");
}

#[test]
fn offset_listeners_see_appends_truncations_and_resets_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_config()).unwrap());
    log.append(b"first").unwrap();
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    log.add_offset_listener(move |next| sink.lock().push(next));
    assert_eq!(*seen.lock(), [1], "told the current next offset when added");
    let writer = Arc::clone(&log);
    std::thread::spawn(move || writer.append_batch(&[b"a", b"b"]).unwrap())
        .join()
        .unwrap();
    log.append_batch::<&[u8]>(&[]).unwrap(); // no change, no call
    log.truncate_suffix(2).unwrap();
    log.truncate_suffix(2).unwrap(); // already there: no call
    log.reset(10).unwrap();
    log.reset(10).unwrap(); // a reset is always announced
    assert_eq!(*seen.lock(), [1, 3, 2, 10, 10]);
}

#[test]
fn sync_and_concurrent_readers() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), small_config()).unwrap());
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                let mut seen = 0;
                while seen < 200 {
                    let next = log.next_offset();
                    for offset in seen..next {
                        assert_eq!(log.read(offset).unwrap(), record(offset));
                    }
                    seen = next;
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    for i in 0..200 {
        log.append(&record(i)).unwrap();
        if i % 10 == 0 {
            log.sync().unwrap();
        }
    }
    for reader in readers {
        reader.join().unwrap();
    }
}

#[test]
fn segments_report_sizes_and_active_flag() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_index_bytes: 2 * ENTRY,
        ..small_config()
    };
    let log = Log::open(dir.path(), config).unwrap();
    log.append_batch(&[&b"aa"[..], b"bbb", b"c"]).unwrap();
    let segments = log.segments();
    assert_eq!(segments.len(), 2);
    assert!(!segments[0].active && segments[1].active);
    assert_eq!(segments[0].store_bytes, 2 * FRAME + 5);
    assert_eq!(segments[0].index_bytes, 2 * ENTRY);
    assert_eq!((segments[1].base_offset, segments[1].next_offset), (2, 3));
    assert!(
        segments[1]
            .store_path
            .ends_with("00000000000000000002.store")
    );
}

#[test]
fn remove_deletes_files_and_directory() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let log = Log::open(&dir, small_config()).unwrap();
    log.append(b"a").unwrap();
    log.remove().unwrap();
    assert!(!dir.exists());
    assert!(matches!(log.append(b"b"), Err(LogError::Closed)));
}

#[test]
fn after_fsync_failure_writes_are_refused_but_reads_work() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config()).unwrap();
    log.append(b"a").unwrap();
    // What `sync` does when an fsync fails (a failing disk cannot be provoked portably here).
    let failed = log.segments()[0].store_path.clone();
    log.refuse_writes(failed.clone());
    for result in [
        log.append(b"b").map(|_| ()),
        log.sync(),
        log.truncate_suffix(0),
        log.truncate_prefix(1),
        log.reset(5),
        log.apply_retention(&RetentionPolicy::default()).map(|_| ()),
    ] {
        assert!(
            matches!(&result, Err(LogError::WritesRefused { path }) if *path == failed),
            "{result:?}"
        );
    }
    assert_eq!(log.read(0).unwrap(), &b"a"[..]);
    assert!(matches!(log.close(), Err(LogError::WritesRefused { .. })));
    drop(log);
    let log = Log::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.append(b"b").unwrap(), 1, "reopening clears the refusal");
}

#[test]
fn open_on_a_file_path_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, b"x").unwrap();
    match Log::open(&file, small_config()) {
        Err(LogError::Io { path, .. }) => assert_eq!(path, file),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}
