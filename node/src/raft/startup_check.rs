//! The check a node runs on its storage before it starts Raft: the Raft log must reach the
//! state machine's applied point, or a snapshot must cover it.
//!
//! Both logs are fsynced before anything depends on them, so on a disk that keeps fsynced data
//! the Raft log always holds every entry the state machine applied, unless a snapshot covers
//! them (after an install, or behind a purge). If it does not, this disk lost entries after they
//! were acknowledged — the disk or file system does not keep fsynced writes, or the binary skips
//! fsync. openraft would then "clean the hole" by purging up to the applied point and go on
//! (or panic, when an older snapshot exists): a member that may have acknowledged entries it no
//! longer has, and may vote with a log it no longer has, would look healthy. It refuses to
//! start instead, with a storage error (exit 74) that names the lost range and the remedy.

use super::error::RaftStoreError;
use super::types::LogId;

/// Fails when entries up to `applied` are neither in the Raft log (which ends at `log_last`,
/// counting purged entries) nor covered by the snapshot (`snapshot`).
pub fn log_covers_applied(
    log_last: Option<LogId>,
    applied: Option<LogId>,
    snapshot: Option<LogId>,
) -> Result<(), RaftStoreError> {
    let index = |id: Option<LogId>| id.map(|id| id.index);
    let Some(applied_index) = index(applied) else {
        return Ok(());
    };
    let covered = index(log_last).max(index(snapshot));
    if covered >= Some(applied_index) {
        return Ok(());
    }
    let shown = |i: Option<u64>| i.map_or("nothing".to_owned(), |i| format!("index {i}"));
    let lost_from = index(log_last).map_or(0, |i| i + 1);
    Err(RaftStoreError::Corrupt(format!(
        "the Raft log ends before entries the state machine already applied: the log ends at {}, \
         the state machine applied up to index {applied_index}, its snapshot covers {}; entries \
         {lost_from}..={applied_index} were lost from this disk after they were written and \
         fsynced (a disk or file system that does not keep fsynced data, or a build without \
         fsync). This member's Raft state cannot be trusted: remove it from the cluster, wipe \
         its data directory and add it back",
        shown(index(log_last)),
        shown(index(snapshot)),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(index: u64) -> Option<LogId> {
        Some(crate::raft::types::test_log_id(1, 1, index))
    }

    #[test]
    fn a_log_or_snapshot_reaching_the_applied_point_is_fine() {
        assert!(log_covers_applied(None, None, None).is_ok());
        assert!(log_covers_applied(id(10), id(10), None).is_ok());
        assert!(log_covers_applied(id(12), id(10), id(3)).is_ok());
        // After a snapshot install the log may be empty or behind: the snapshot covers it.
        assert!(log_covers_applied(None, id(10), id(10)).is_ok());
        assert!(log_covers_applied(id(4), id(10), id(10)).is_ok());
    }

    #[test]
    fn entries_applied_but_gone_from_the_log_are_refused_with_the_range() {
        let err = log_covers_applied(id(4), id(10), id(2))
            .unwrap_err()
            .to_string();
        assert!(err.contains("entries 5..=10 were lost"), "{err}");
        let err = log_covers_applied(None, id(51), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("the log ends at nothing"), "{err}");
        assert!(err.contains("entries 0..=51"), "{err}");
    }
}
