//! The storage engine opening arbitrary bytes as a segment (store + index, split where the
//! first two bytes say): it must refuse or recover, and every record it then serves must read
//! back without a panic. Covers the store frame decoder, the index and recovery.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proglog_log::{Log, LogConfig};

fuzz_target!(|data: &[u8]| {
    let (split, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let split = split.min(rest.len());
    let dir = tempfile::tempdir().expect("temp dir");
    let log_dir = dir.path().join("log");
    std::fs::create_dir(&log_dir).expect("log dir");
    let name = "00000000000000000000";
    std::fs::write(log_dir.join(format!("{name}.store")), &rest[..split]).expect("store");
    std::fs::write(log_dir.join(format!("{name}.index")), &rest[split..]).expect("index");
    let Ok(log) = Log::open(&log_dir, LogConfig::default()) else {
        return;
    };
    for offset in log.lowest_offset()..log.next_offset() {
        let _ = log.read(offset);
    }
    // Appending after recovery works or fails cleanly.
    let _ = log.append(b"after");
});
