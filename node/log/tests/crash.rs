//! Crash and corruption tests of the storage engine: torn tails cut at every byte, missing,
//! short and over-long indexes, damaged sealed segments, missing segments, an interrupted
//! reset, and a writer process killed with SIGKILL.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};

use proglog_log::{Log, LogConfig, LogError, SegmentInfo};

const FRAME: u64 = 8;
const ENTRY: u64 = 12;
/// Every test record is this long, so positions are easy to compute.
const RECORD: u64 = 20;

fn config() -> LogConfig {
    LogConfig {
        max_store_bytes: 1024,
        max_index_bytes: 4 * ENTRY,
        ..LogConfig::default()
    }
}

fn record(i: u64) -> Vec<u8> {
    format!("{i:0>20}").into_bytes()
}

/// A log of `count` records (4 per segment), dropped without `close` like a crashed process
/// (whose writes reached the page cache).
fn write_log(dir: &Path, count: u64) -> Vec<SegmentInfo> {
    let log = Log::open(dir, config()).unwrap();
    for i in 0..count {
        assert_eq!(log.append(&record(i)).unwrap(), i);
    }
    log.segments()
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn flip_byte(path: &Path, position: u64) {
    flip_byte_with(path, position, 0x5a);
}

fn flip_byte_with(path: &Path, position: u64, mask: u8) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut byte = [0u8];
    file.read_exact_at(&mut byte, position).unwrap();
    file.write_all_at(&[byte[0] ^ mask], position).unwrap();
}

fn assert_records(log: &Log, range: std::ops::Range<u64>) {
    assert_eq!(log.next_offset(), range.end);
    for i in range.clone() {
        assert_eq!(log.read(i).unwrap(), record(i), "record {i}");
    }
    let offsets: Vec<u64> = log.reader(range.start).map(|r| r.unwrap().0).collect();
    assert_eq!(offsets, range.collect::<Vec<_>>());
}

#[test]
fn torn_last_record_is_cut_at_every_byte() {
    let frame = FRAME + RECORD;
    for cut in 0..frame {
        let dir = tempfile::tempdir().unwrap();
        // 10 records: segments [0,4) [4,8) [8,10); the last record is 9.
        let segments = write_log(dir.path(), 10);
        let active = segments.last().unwrap();
        set_len(&active.store_path, active.store_bytes - frame + cut);
        let log = Log::open(dir.path(), config()).unwrap();
        assert_records(&log, 0..9);
        // The log keeps working where the torn record was.
        assert_eq!(log.append(&record(9)).unwrap(), 9);
        drop(log);
        let log = Log::open(dir.path(), config()).unwrap();
        assert_records(&log, 0..10);
    }
}

#[test]
fn torn_first_record_of_active_segment_leaves_it_empty() {
    for cut in [0, 3, FRAME, FRAME + RECORD - 1] {
        let dir = tempfile::tempdir().unwrap();
        let segments = write_log(dir.path(), 9);
        set_len(&segments.last().unwrap().store_path, cut);
        let log = Log::open(dir.path(), config()).unwrap();
        assert_records(&log, 0..8);
        assert_eq!(log.segments().len(), 3);
    }
}

#[test]
fn checksum_failure_in_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    let active = segments.last().unwrap();
    flip_byte(&active.store_path, active.store_bytes - 1);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..9);
}

#[test]
fn damage_before_valid_records_of_active_segment_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 11);
    let active = segments.last().unwrap();
    // Record 9 (second of the active segment) is followed by record 10.
    let position = FRAME + RECORD;
    flip_byte(&active.store_path, position + FRAME + 2);
    let err = Log::open(dir.path(), config()).unwrap_err();
    match err {
        LogError::Corruption {
            path, position: p, ..
        } => {
            assert_eq!(path, active.store_path);
            assert_eq!(p, position);
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn damaged_length_before_valid_records_of_active_segment_is_corruption() {
    // A flipped bit in a length field makes the frame claim more bytes than the file holds,
    // which alone looks like a torn tail; the index still knows where record 10 starts, and
    // it is intact, so cutting here would drop a durable record.
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 11);
    let active = segments.last().unwrap();
    let position = FRAME + RECORD;
    flip_byte_with(&active.store_path, position + 3, 0x40);
    let err = Log::open(dir.path(), config()).unwrap_err();
    match err {
        LogError::Corruption {
            path,
            position: p,
            reason,
        } => {
            assert_eq!(path, active.store_path);
            assert_eq!(p, position);
            assert!(reason.contains("valid records follow"), "{reason}");
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn missing_active_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    std::fs::remove_file(&segments.last().unwrap().index_path).unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..10);
}

#[test]
fn short_active_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 11);
    set_len(&segments.last().unwrap().index_path, ENTRY + 5);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..11);
}

#[test]
fn index_ahead_of_store_is_rebuilt() {
    // The store lost whole records the index still lists (index ahead).
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 11);
    let active = segments.last().unwrap();
    set_len(&active.store_path, FRAME + RECORD);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..9);
    assert_eq!(log.append(&record(9)).unwrap(), 9);
    assert_eq!(log.read(9).unwrap(), record(9));
}

#[test]
fn zero_padded_index_after_crash_is_measured_from_content() {
    // A crash leaves the active index preallocated beyond its entries; and a sealed index
    // whose trim did not reach the disk is padded too.
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    set_len(&segments[0].index_path, 4096);
    set_len(&segments[2].index_path, 4096);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..10);
    assert_eq!(
        std::fs::metadata(&segments[0].index_path).unwrap().len(),
        4096,
        "a consistent sealed index is trusted, not rewritten"
    );
}

#[test]
fn sealed_index_missing_or_short_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    std::fs::remove_file(&segments[0].index_path).unwrap();
    set_len(&segments[1].index_path, 2 * ENTRY);
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..10);
    assert_eq!(
        std::fs::metadata(&segments[1].index_path).unwrap().len(),
        4 * ENTRY
    );
}

#[test]
fn corrupt_byte_in_sealed_segment_is_reported_with_location() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    let sealed = &segments[1];
    // Offset 5 is the second record of segment [4,8).
    let position = FRAME + RECORD;
    flip_byte(&sealed.store_path, position + FRAME + 7);
    let log = Log::open(dir.path(), config()).expect("open does not scan sealed segments");
    match log.read(5).unwrap_err() {
        LogError::Corruption {
            path, position: p, ..
        } => {
            assert_eq!(path, sealed.store_path);
            assert_eq!(p, position);
        }
        other => panic!("expected corruption, got {other}"),
    }
    // Neighbours are intact; the reader stops at the damage instead of skipping it.
    assert_eq!(log.read(4).unwrap(), record(4));
    assert_eq!(log.read(6).unwrap(), record(6));
    let results: Vec<_> = log.reader(0).collect();
    assert_eq!(results.len(), 6);
    assert!(results[..5].iter().all(Result::is_ok));
    let last = results[5].as_ref().unwrap_err();
    assert!(
        matches!(last, LogError::Corruption { path, position: p, .. } if *path == sealed.store_path && *p == position),
        "{last}"
    );
    let message = last.to_string();
    assert!(message.contains("00000000000000000004.store"), "{message}");
}

#[test]
fn corrupt_length_in_sealed_segment_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    flip_byte(&segments[0].store_path, FRAME + RECORD);
    let log = Log::open(dir.path(), config()).unwrap();
    assert!(matches!(
        log.read(1),
        Err(LogError::Corruption { position: 28, .. })
    ));
}

#[test]
fn sealed_store_cut_short_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    set_len(&segments[0].store_path, segments[0].store_bytes - 3);
    match Log::open(dir.path(), config()).unwrap_err() {
        LogError::Corruption { path, .. } => assert_eq!(path, segments[0].store_path),
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn missing_middle_segment_fails_open() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    std::fs::remove_file(&segments[1].store_path).unwrap();
    std::fs::remove_file(&segments[1].index_path).unwrap();
    match Log::open(dir.path(), config()).unwrap_err() {
        LogError::Corruption { path, reason, .. } => {
            assert_eq!(path, segments[2].store_path);
            assert!(reason.contains("starts at offset 8"), "{reason}");
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn orphan_index_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let segments = write_log(dir.path(), 10);
    let orphan = dir.path().join("00000000000000000100.index");
    std::fs::copy(&segments[0].index_path, &orphan).unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..10);
    assert!(!orphan.exists());
}

#[test]
fn interrupted_reset_is_finished() {
    // `reset` creates the new empty segment before deleting the old ones.
    for marker in [100u64, 1] {
        let dir = tempfile::tempdir().unwrap();
        write_log(dir.path(), 10);
        std::fs::File::create(dir.path().join(format!("{marker:020}.store"))).unwrap();
        let log = Log::open(dir.path(), config()).unwrap();
        assert!(log.is_empty());
        assert_eq!(log.next_offset(), marker);
        assert_eq!(log.segments().len(), 1);
        assert_eq!(log.append(b"x").unwrap(), marker);
    }
}

#[test]
fn unrelated_files_are_ignored() {
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), 5);
    std::fs::write(dir.path().join("raft-vote.json"), b"{}").unwrap();
    std::fs::write(dir.path().join("1.store"), b"junk").unwrap();
    let log = Log::open(dir.path(), config()).unwrap();
    assert_records(&log, 0..5);
}

/// Role of the child process in `sigkill_during_appends_recovers`: append until killed,
/// printing each offset after `append` returned.
#[test]
#[ignore = "helper process for sigkill_during_appends_recovers"]
fn sigkill_writer_child() {
    let Ok(dir) = std::env::var("PROGLOG_CRASH_DIR") else {
        return;
    };
    let log = Log::open(&dir, config()).unwrap();
    let start = log.next_offset();
    let mut out = std::io::stdout();
    for i in start.. {
        let offset = log.append(&record(i)).unwrap();
        if i % 7 == 0 {
            log.sync().unwrap();
        }
        use std::io::Write;
        writeln!(out, "{offset}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_during_appends_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = 0;
    for round in 0..3 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sigkill_writer_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PROGLOG_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        for line in stdout.lines() {
            let Ok(offset) = line.unwrap().trim().parse::<u64>() else {
                continue;
            };
            acknowledged = offset + 1;
            seen += 1;
            if seen == 200 + round * 37 {
                break;
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let log = Log::open(dir.path(), config()).unwrap();
        // Every append that returned survived the kill (it reached the page cache).
        assert!(log.next_offset() >= acknowledged, "round {round}");
        for i in 0..log.next_offset() {
            assert_eq!(log.read(i).unwrap(), record(i), "round {round} record {i}");
        }
    }
}
