//! Inputs the `store_recovery` fuzz target (fuzz/fuzz_targets/store_recovery.rs) found to crash
//! the storage engine, replayed the way the target uses them: the first two bytes (little
//! endian) split the rest into a segment's `.store` and `.index` files; opening must refuse or
//! recover, every offset then served must read without a panic, and an append must work or fail
//! cleanly.

use proglog_log::{Log, LogConfig};

fn replay(data: &[u8]) {
    let (split, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let split = split.min(rest.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let log_dir = dir.path().join("log");
    proglog_log::durable_fs::create_dir_all(&log_dir).expect("log dir");
    let name = "00000000000000000000";
    std::fs::write(log_dir.join(format!("{name}.store")), &rest[..split]).expect("store");
    std::fs::write(log_dir.join(format!("{name}.index")), &rest[split..]).expect("index");
    let Ok(log) = Log::open(&log_dir, LogConfig::default()) else {
        return;
    };
    for offset in log.lowest_offset()..log.next_offset() {
        let _ = log.read(offset);
    }
    let _ = log.append(b"after");
}

/// Found by CI's fuzz smoke run on 2026-12-01 (artifact crash-9312aa8baa14cfdb).
#[test]
fn crash_9312aa8b() {
    replay(&[
        10, 0, 0, 199, 28, 113, 199, 28, 113, 199, 0, 10, 33, 7, 0, 0, 0, 0, 0, 0, 0, 33, 1, 10, 1,
        0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 64, 0, 1, 2, 0, 0, 10, 1,
    ]);
}
