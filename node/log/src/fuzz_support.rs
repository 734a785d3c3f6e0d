//! The `store_recovery` fuzz target's body, shared with the regression tests that replay its
//! findings (`tests/fuzz_regressions.rs`), so a replay is exactly what the fuzzer ran. Not part
//! of the API the node uses.

use std::path::Path;

use crate::{Log, LogConfig};

/// Opens arbitrary bytes as a segment in `dir` (an empty directory): the first two bytes (little
/// endian) split the rest into the `.store` and `.index` files. Opening must refuse or recover,
/// every offset then served must read without a panic, and an append must work or fail cleanly.
pub fn open_bytes_as_segment(dir: &Path, data: &[u8]) {
    let (split, rest) = match data {
        [a, b, rest @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), rest),
        _ => return,
    };
    let split = split.min(rest.len());
    let log_dir = dir.join("log");
    crate::durable_fs::create_dir_all(&log_dir).expect("log dir");
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
