//! Retention: deleting the oldest sealed segments by total size and by age
//! ([`Log::apply_retention`], one pass). Running passes periodically is the caller's job (the
//! node runs them on its blocking thread pool), so this crate needs no async runtime.

use std::time::{Duration, SystemTime};

use super::error::Result;
use super::segmented_log::Log;

/// What to keep. A sealed segment is deleted when the log is over `max_bytes` or when the
/// segment's newest record is older than `max_age`; only the oldest segments are deleted (in
/// order) and never the active one, so the log may stay above the limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Largest total size of store and index bytes to keep.
    pub max_bytes: Option<u64>,
    /// Longest time to keep a segment after its last append.
    pub max_age: Option<Duration>,
}

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Segments deleted.
    pub segments_removed: usize,
    /// Store and index bytes deleted.
    pub bytes_removed: u64,
    /// The log's lowest offset afterwards.
    pub lowest_offset: u64,
}

impl Log {
    /// Deletes the oldest sealed segments the policy no longer keeps.
    pub fn apply_retention(&self, policy: &RetentionPolicy) -> Result<RetentionOutcome> {
        self.apply_retention_keeping(policy, u64::MAX)
    }

    /// [`Log::apply_retention`], but never deleting a segment that holds offset `keep_from` or
    /// a later one (a Raft node keeps the records its Raft log still refers to).
    pub fn apply_retention_keeping(
        &self,
        policy: &RetentionPolicy,
        keep_from: u64,
    ) -> Result<RetentionOutcome> {
        self.check_writable()?;
        let segments = self.segments();
        let mut remaining: u64 = segments.iter().map(|s| s.store_bytes + s.index_bytes).sum();
        let now = SystemTime::now();
        let mut before = None;
        for segment in segments.iter().filter(|s| !s.active) {
            let over_size = policy.max_bytes.is_some_and(|max| remaining > max);
            let too_old = policy.max_age.is_some_and(|max_age| {
                now.duration_since(segment.modified)
                    .is_ok_and(|age| age > max_age)
            });
            if (!over_size && !too_old) || segment.next_offset > keep_from {
                break;
            }
            remaining -= segment.store_bytes + segment.index_bytes;
            before = Some(segment.next_offset);
        }
        let (segments_removed, bytes_removed) = match before {
            Some(before) => self.remove_segments_before(before)?,
            None => (0, 0),
        };
        Ok(RetentionOutcome {
            segments_removed,
            bytes_removed,
            lowest_offset: self.lowest_offset(),
        })
    }
}
