//! Inputs the `store_recovery` fuzz target (fuzz/fuzz_targets/store_recovery.rs) found to crash
//! the storage engine, replayed the way the target uses them: the first two bytes (little
//! endian) split the rest into a segment's `.store` and `.index` files; opening must refuse or
//! recover, every offset then served must read without a panic, and an append must work or fail
//! cleanly.

fn replay(data: &[u8]) {
    let dir = tempfile::tempdir().expect("temp dir");
    proglog_log::fuzz_support::open_bytes_as_segment(dir.path(), data);
}

/// Found by CI's fuzz smoke run on 2026-12-01 (artifact crash-9312aa8baa14cfdb).
#[test]
fn crash_9312aa8b() {
    replay(&[
        10, 0, 0, 199, 28, 113, 199, 28, 113, 199, 0, 10, 33, 7, 0, 0, 0, 0, 0, 0, 0, 33, 1, 10, 1,
        0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255, 0, 64, 0, 1, 2, 0, 0, 10, 1,
    ]);
}
