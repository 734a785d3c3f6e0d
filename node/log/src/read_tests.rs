//! Unit tests of the reading API: runs of records below a bound, and memory-only reads that
//! refuse instead of waiting for the disk (see `in_memory`).

use super::durable_fs::hook::{disk_reads_under, drop_from_memory};
use super::log_tests::{record, small_config as small_segments};
use super::*;

#[test]
fn a_run_stops_at_its_bound_its_byte_budget_and_its_segment() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    let records: Vec<Vec<u8>> = (0..30).map(record).collect();
    log.append_batch(&records).unwrap();
    // Ten entries per segment: a run from 3 ends at the segment's end (10).
    let run = log.read_run(3, u64::MAX, 1 << 20, Wait::Disk).unwrap();
    let offsets: Vec<u64> = run.iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, (3..10).collect::<Vec<_>>());
    for (offset, bytes) in &run {
        assert_eq!(bytes.as_ref(), record(*offset).as_slice());
    }
    // Below the bound only (the Raft backend passes the applied end).
    let run = log.read_run(12, 15, 1 << 20, Wait::Disk).unwrap();
    assert_eq!(run.len(), 3);
    assert_eq!(run[2].0, 14);
    // The byte budget: two 16-byte frames fit in 40 bytes, not three.
    let run = log.read_run(20, 30, 40, Wait::Disk).unwrap();
    assert_eq!(run.len(), 2);
    // Smaller than one record: that record still comes back.
    let run = log.read_run(20, 30, 1, Wait::Disk).unwrap();
    assert_eq!(run.len(), 1);
    // At the bound: nothing; past the end or below the start: the range errors.
    assert!(
        log.read_run(30, 30, 1 << 20, Wait::Disk)
            .unwrap()
            .is_empty()
    );
    assert!(
        log.read_run(15, 15, 1 << 20, Wait::Disk)
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        log.read_run(31, u64::MAX, 1 << 20, Wait::Disk),
        Err(LogError::OffsetPastEnd {
            offset: 31,
            next: 30
        })
    ));
    log.reset(40).unwrap();
    assert!(matches!(
        log.read_run(0, u64::MAX, 1 << 20, Wait::Disk),
        Err(LogError::OffsetBelowStart {
            offset: 0,
            lowest: 40
        })
    ));
}

#[test]
fn memory_only_reads_answer_from_memory_or_refuse_without_touching_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    let records: Vec<Vec<u8>> = (0..25).map(record).collect();
    log.append_batch(&records).unwrap();
    log.sync().unwrap();
    // Just written: in the page cache, so memory-only reads answer (where the file system
    // supports them; elsewhere they refuse, which callers handle the same way).
    let supported = match log.read_with(3, Wait::MemoryOnly) {
        Ok(bytes) => {
            assert_eq!(bytes.as_ref(), record(3).as_slice());
            let run = log.read_run(10, 25, 1 << 20, Wait::MemoryOnly).unwrap();
            assert_eq!(run.len(), 10);
            true
        }
        Err(LogError::NotInMemory) => false,
        Err(other) => panic!("unexpected error: {other}"),
    };
    let before = disk_reads_under(dir.path());
    drop_from_memory(dir.path());
    assert!(matches!(
        log.read_with(3, Wait::MemoryOnly),
        Err(LogError::NotInMemory)
    ));
    assert!(matches!(
        log.read_run(10, 25, 1 << 20, Wait::MemoryOnly),
        Err(LogError::NotInMemory)
    ));
    // Range errors are answered from memory, before any read.
    assert!(matches!(
        log.read_with(99, Wait::MemoryOnly),
        Err(LogError::OffsetPastEnd { .. })
    ));
    assert_eq!(
        disk_reads_under(dir.path()),
        before,
        "a memory-only read went to the disk"
    );
    // The blocking form still reads, and is recorded as a disk read.
    assert_eq!(log.read(3).unwrap().as_ref(), record(3).as_slice());
    assert_eq!(log.read_run(10, 25, 1 << 20, Wait::Disk).unwrap().len(), 10);
    assert_eq!(disk_reads_under(dir.path()), before + 2);
    eprintln!("memory-only reads answered by this file system: {supported}");
}
