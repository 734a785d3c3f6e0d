//! The fault suite's history parser and checker on arbitrary JSON lines: a parse error with a
//! line number, or a report, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(history) = proglog_faults::parse_history(data) {
        let _ = proglog_faults::check(&history);
    }
});
