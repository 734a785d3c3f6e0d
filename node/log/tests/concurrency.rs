//! Concurrency test of the storage engine: a writer appending through many rolls, a retention
//! thread deleting old segments, a syncing thread and readers at random offsets all at once.
//! Every successful read must return the record written at that offset; the only errors allowed
//! are offsets that retention removed or that are not written yet.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use proglog_log::{Log, LogConfig, LogError};
use rand::Rng;

const RECORDS: u64 = 20_000;

fn record(offset: u64) -> Vec<u8> {
    // Variable length so frame positions differ between segments.
    let len = 8 + (offset % 50) as usize;
    let mut bytes = offset.to_le_bytes().to_vec();
    bytes.resize(len, (offset % 251) as u8);
    bytes
}

#[test]
fn readers_writer_retention_and_sync_run_together() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_store_bytes: 4096,
        max_index_bytes: 64 * 12,
        ..LogConfig::default()
    };
    let log = Arc::new(Log::open(dir.path(), config.clone()).unwrap());
    let done = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for _ in 0..2 {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        threads.push(std::thread::spawn(move || {
            let mut rng = rand::rng();
            let mut verified = 0u64;
            while !done.load(Ordering::Acquire) {
                let next = log.next_offset();
                if next == 0 {
                    continue;
                }
                let offset = rng.random_range(0..next);
                match log.read(offset) {
                    Ok(bytes) => {
                        assert_eq!(bytes, record(offset), "offset {offset}");
                        verified += 1;
                    }
                    Err(LogError::OffsetBelowStart { .. }) => {}
                    Err(err) => panic!("read {offset}: {err}"),
                }
                // Stream a little from the current start too.
                let start = log.lowest_offset();
                for item in log.reader(start).take(20) {
                    match item {
                        Ok((offset, bytes)) => assert_eq!(bytes, record(offset)),
                        Err(LogError::OffsetBelowStart { .. }) => break,
                        Err(err) => panic!("reader: {err}"),
                    }
                }
            }
            verified
        }));
    }
    let retention = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                // Keep roughly the newest 2 000 records.
                log.truncate_prefix(log.next_offset().saturating_sub(2_000))
                    .unwrap();
                std::thread::yield_now();
            }
        })
    };
    let syncer = {
        let (log, done) = (Arc::clone(&log), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Acquire) {
                log.sync().unwrap();
            }
        })
    };
    let mut offset = 0;
    while offset < RECORDS {
        let batch: Vec<Vec<u8>> = (offset..(offset + 7).min(RECORDS)).map(record).collect();
        let range = log.append_batch(&batch).unwrap();
        assert_eq!(range.start, offset);
        offset = range.end;
    }
    done.store(true, Ordering::Release);
    let verified: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    retention.join().unwrap();
    syncer.join().unwrap();
    assert!(verified > 0, "readers verified records");
    assert!(log.segments().len() > 1);
    let lowest = log.lowest_offset();
    assert!(lowest > 0, "retention removed segments");
    log.close().unwrap();
    let log = Log::open(dir.path(), config).unwrap();
    assert_eq!((log.lowest_offset(), log.next_offset()), (lowest, RECORDS));
    for offset in lowest..RECORDS {
        assert_eq!(log.read(offset).unwrap(), record(offset));
    }
}
