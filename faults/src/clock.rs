//! Clock faults. Nodes run with libfaketime preloaded (Debian's `libfaketime`, installed by
//! `make test-faults`), reading their clock offset from a file the nemesis rewrites
//! (`nI.faketime`, re-read at most every second): `CLOCK_REALTIME` and `CLOCK_MONOTONIC` both
//! move, as in a VM that was suspended and resumed. Offsets only ever grow — a monotonic clock
//! that went back would be a fault no real machine has — and survive the node's restarts.
//! - a jump: the offset grows by 1–10 minutes at once, so every timer of the node is overdue;
//! - skew: the offset grows by one second every two seconds for a while, so the node's clocks
//!   run 1.5 times as fast as the others' (election timeouts and heartbeats too).
//!
//! Raft must not need synchronized clocks for safety: no read is served from a lease, and a
//! linearizable read always confirms the leadership with a quorum (ARCHITECTURE, read index).
//! Without libfaketime the two kinds are skipped, and the run says so.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The multithreaded build of libfaketime (Debian's path).
pub const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
/// The clock fault kinds, skipped without libfaketime.
pub const CLOCK_KINDS: [&str; 2] = ["clock-jump", "clock-skew"];

/// Whether libfaketime is installed.
pub fn available() -> bool {
    Path::new(LIBFAKETIME).is_file()
}

/// The environment that puts a node's clocks under `spec` (empty without libfaketime).
pub fn node_env(spec: &Path) -> Vec<(String, String)> {
    if !available() {
        return Vec::new();
    }
    vec![
        ("LD_PRELOAD".into(), LIBFAKETIME.into()),
        ("FAKETIME_TIMESTAMP_FILE".into(), spec.display().to_string()),
        ("FAKETIME_CACHE_DURATION".into(), "1".into()),
    ]
}

/// One node's clock offset, in whole seconds ahead of the machine's.
#[derive(Debug, Clone)]
pub struct NodeClock {
    spec: PathBuf,
}

impl NodeClock {
    pub fn new(spec: PathBuf) -> Self {
        Self { spec }
    }

    /// The file libfaketime reads (`FAKETIME_TIMESTAMP_FILE`).
    pub fn spec(&self) -> &Path {
        &self.spec
    }

    /// Writes the zero offset unless the file exists (a restarted node keeps its offset).
    pub fn init(&self) -> Result<()> {
        if !self.spec.exists() {
            fs::write(&self.spec, "+0\n")?;
        }
        Ok(())
    }

    /// The current offset in seconds.
    pub fn offset(&self) -> Result<u64> {
        let text = fs::read_to_string(&self.spec)?;
        text.trim()
            .trim_start_matches('+')
            .parse()
            .with_context(|| format!("{}: not `+SECONDS`: {text:?}", self.spec.display()))
    }

    /// Moves the clock `secs` seconds forward; returns the new offset.
    pub fn advance(&self, secs: u64) -> Result<u64> {
        let offset = self.offset()? + secs;
        // A whole file, replaced: libfaketime never reads half of it.
        let tmp = self.spec.with_extension("faketime.tmp");
        fs::write(&tmp, format!("+{offset}\n"))?;
        fs::rename(&tmp, &self.spec)?;
        Ok(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_only_grow_and_survive_a_new_handle() {
        let dir = tempfile::tempdir().unwrap();
        let clock = NodeClock::new(dir.path().join("n0.faketime"));
        clock.init().unwrap();
        assert_eq!(clock.offset().unwrap(), 0);
        assert_eq!(clock.advance(90).unwrap(), 90);
        assert_eq!(clock.advance(1).unwrap(), 91);
        let again = NodeClock::new(dir.path().join("n0.faketime"));
        again.init().unwrap();
        assert_eq!(again.offset().unwrap(), 91);
        assert_eq!(
            fs::read_to_string(dir.path().join("n0.faketime")).unwrap(),
            "+91\n"
        );
    }
}
