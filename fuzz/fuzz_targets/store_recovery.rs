//! The storage engine opening arbitrary bytes as a segment (store + index, split where the
//! first two bytes say): it must refuse or recover, and every record it then serves must read
//! back without a panic. Covers the store frame decoder, the index and recovery.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("temp dir");
    proglog_log::fuzz_support::open_bytes_as_segment(dir.path(), data);
});
