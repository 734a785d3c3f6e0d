//! Memory-only reads (`Wait::MemoryOnly`) against the kernel itself: a record whose pages the
//! page cache dropped is refused at once, not read, and becomes readable from memory again once
//! a blocking read brought it back. The log lives under `CARGO_TARGET_TMPDIR` (a disk-backed file
//! system, where `RWF_NOWAIT` and `POSIX_FADV_DONTNEED` work; the test fails, naming why, where
//! they do not, rather than pass without checking).

use proglog_log::{Log, LogConfig, LogError, Wait};

fn record(i: u64) -> Vec<u8> {
    format!("record-{i}-{}", "x".repeat(1000)).into_bytes()
}

#[test]
fn a_record_the_page_cache_dropped_is_refused_then_read_from_the_disk() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let records: Vec<Vec<u8>> = (0..64).map(record).collect();
    log.append_batch(&records).unwrap();
    log.sync().unwrap();
    assert_eq!(
        log.read_with(40, Wait::MemoryOnly)
            .expect("a record just written is in the page cache; this file system does not answer RWF_NOWAIT reads")
            .as_ref(),
        record(40).as_slice()
    );

    // Written back by the sync, so the kernel may drop the store's pages when asked. (The index
    // is mapped by the log, so its pages stay.) The kernel may keep a page it was asked to drop
    // for a moment (still in a CPU's batch of pages being added to its lists, or held by
    // someone else's lookup): asked again until the read is refused, for at most two seconds.
    let mut dropped = false;
    for _ in 0..200 {
        drop_store_pages(dir.path());
        if matches!(
            log.read_with(40, Wait::MemoryOnly),
            Err(LogError::NotInMemory)
        ) {
            dropped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        dropped,
        "a record whose pages were dropped was still read memory-only after 200 tries (or \
         POSIX_FADV_DONTNEED does not drop pages on this file system)"
    );
    assert!(matches!(
        log.read_run(30, 64, 1 << 20, Wait::MemoryOnly),
        Err(LogError::NotInMemory)
    ));

    assert_eq!(log.read(40).unwrap().as_ref(), record(40).as_slice());
    assert_eq!(
        log.read_with(40, Wait::MemoryOnly).unwrap().as_ref(),
        record(40).as_slice(),
        "the blocking read brought the page back"
    );
}

/// Asks the kernel to drop the page cache of every store file of the log in `dir`.
fn drop_store_pages(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "store") {
            let file = std::fs::File::open(&path).unwrap();
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
        }
    }
}
