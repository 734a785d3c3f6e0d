//! Unit tests of segments: naming, appends and reads, room checks, sealed and active reopen
//! (index rebuild, torn tail, corruption), truncation and removal.

use super::*;
use crate::store::encode_frame;

fn config(max_store_bytes: u64, max_index_entries: u64) -> LogConfig {
    LogConfig {
        max_store_bytes,
        max_index_bytes: max_index_entries * ENTRY_BYTES,
        ..LogConfig::default()
    }
}

fn append(segment: &Segment, records: &[&[u8]]) {
    let mut frames = Vec::new();
    let mut starts = Vec::new();
    for record in records {
        starts.push(frames.len() as u64);
        encode_frame(&mut frames, record);
    }
    segment.append(&frames, &starts).unwrap();
}

#[test]
fn file_names_sort_and_parse() {
    let dir = Path::new("/d");
    assert_eq!(
        store_path(dir, 42),
        Path::new("/d/00000000000000000042.store")
    );
    assert_eq!(
        parse_file_name("00000000000000000042.index"),
        Some((42, INDEX_EXTENSION))
    );
    assert_eq!(parse_file_name("42.store"), None);
    assert_eq!(parse_file_name("00000000000000000042.tmp"), None);
    assert_eq!(parse_file_name("0000000000000000004x.store"), None);
}

#[test]
fn append_read_and_room() {
    let dir = tempfile::tempdir().unwrap();
    let segment = Segment::create(dir.path(), 10, &config(40, 3)).unwrap();
    assert!(segment.is_empty());
    append(&segment, &[b"abc", b"defg"]);
    assert_eq!(segment.next_offset(), 12);
    assert_eq!(segment.read(10, Wait::Disk).unwrap(), &b"abc"[..]);
    assert_eq!(segment.read(11, Wait::Disk).unwrap(), &b"defg"[..]);
    // 23 bytes used: 17 more fit exactly, 18 do not.
    assert!(segment.has_room(17, 1));
    assert!(!segment.has_room(18, 1));
    // Index holds 3 entries.
    assert!(!segment.has_room(1, 2));
}

#[test]
fn read_run_returns_consecutive_records() {
    let dir = tempfile::tempdir().unwrap();
    let segment = Segment::create(dir.path(), 0, &config(1 << 20, 100)).unwrap();
    append(&segment, &[b"a", b"bb", b"ccc", b"dddd"]);
    let run = segment.read_run(1, 3, 1 << 20, Wait::Disk).unwrap();
    assert_eq!(
        run,
        vec![
            (1, Bytes::from_static(b"bb")),
            (2, Bytes::from_static(b"ccc"))
        ]
    );
    // A chunk too small for even one frame still returns that record.
    let run = segment.read_run(3, 4, 2, Wait::Disk).unwrap();
    assert_eq!(run, vec![(3, Bytes::from_static(b"dddd"))]);
}

#[test]
fn sealed_reopen_trusts_consistent_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, 100);
    {
        let segment = Segment::create(dir.path(), 5, &cfg).unwrap();
        append(&segment, &[b"x", b"yy"]);
        segment.seal().unwrap();
    }
    let segment = Segment::open_sealed(dir.path(), 5, &cfg).unwrap();
    assert_eq!(segment.next_offset(), 7);
    assert_eq!(segment.read(6, Wait::Disk).unwrap(), &b"yy"[..]);
}

#[test]
fn sealed_reopen_rebuilds_missing_index() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, 100);
    {
        let segment = Segment::create(dir.path(), 0, &cfg).unwrap();
        append(&segment, &[b"x", b"yy", b"zzz"]);
    }
    std::fs::remove_file(index_path(dir.path(), 0)).unwrap();
    let segment = Segment::open_sealed(dir.path(), 0, &cfg).unwrap();
    assert_eq!(segment.next_offset(), 3);
    assert_eq!(segment.read(2, Wait::Disk).unwrap(), &b"zzz"[..]);
}

#[test]
fn sealed_segment_with_cut_store_is_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, 100);
    {
        let segment = Segment::create(dir.path(), 0, &cfg).unwrap();
        append(&segment, &[b"x", b"yy", b"zzz"]);
        segment.seal().unwrap();
    }
    let path = store_path(dir.path(), 0);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    let err = Segment::open_sealed(dir.path(), 0, &cfg).unwrap_err();
    assert!(
        matches!(&err, LogError::Corruption { path: p, position: 19, .. } if *p == path),
        "{err}"
    );
}

#[test]
fn active_reopen_cuts_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, 100);
    {
        let segment = Segment::create(dir.path(), 0, &cfg).unwrap();
        append(&segment, &[b"x", b"yy"]);
        // Half a frame, as a crash in the middle of a write leaves.
        segment.store.append_frames(&[5, 0, 0, 0, 1, 2]).unwrap();
    }
    let segment = Segment::open_active(dir.path(), 0, &cfg).unwrap();
    assert_eq!(segment.next_offset(), 2);
    assert_eq!(segment.store.size(), 2 * FRAME_HEADER_BYTES + 3);
    append(&segment, &[b"zzz"]);
    assert_eq!(segment.read(2, Wait::Disk).unwrap(), &b"zzz"[..]);
}

#[test]
fn truncate_and_info() {
    let dir = tempfile::tempdir().unwrap();
    let segment = Segment::create(dir.path(), 100, &config(1 << 20, 100)).unwrap();
    append(&segment, &[b"a", b"b", b"c"]);
    segment.truncate(101).unwrap();
    let info = segment.info(true);
    assert_eq!(info.base_offset, 100);
    assert_eq!(info.next_offset, 101);
    assert_eq!(info.store_bytes, FRAME_HEADER_BYTES + 1);
    assert_eq!(info.index_bytes, ENTRY_BYTES);
    assert!(matches!(
        segment.read(101, Wait::Disk),
        Err(LogError::OffsetPastEnd { .. })
    ));
    segment.remove_files().unwrap();
    assert!(!info.store_path.exists() && !info.index_path.exists());
}
