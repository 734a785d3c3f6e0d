//! Retention: deleting the oldest sealed segments by total size and by age, once
//! ([`Log::apply_retention`]) or periodically in a background task ([`spawn_retention`]).

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use super::error::{LogError, Result};
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
            if !over_size && !too_old {
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

/// Applies `policy` every `interval` (at least 1 ms) on the blocking thread pool, until the log
/// is closed, dropped or refuses writes after a failed fsync. Errors are logged and retried at the next tick. Must be called within
/// a Tokio runtime.
pub fn spawn_retention(
    log: Arc<Log>,
    policy: RetentionPolicy,
    interval: Duration,
) -> JoinHandle<()> {
    // A weak handle: the task must not keep a dropped log's files open.
    let log: Weak<Log> = Arc::downgrade(&log);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(log) = log.upgrade() else { break };
            let policy = policy.clone();
            let pass = tokio::task::spawn_blocking(move || log.apply_retention(&policy)).await;
            match pass {
                Ok(Ok(outcome)) if outcome.segments_removed > 0 => tracing::info!(
                    segments_removed = outcome.segments_removed,
                    bytes_removed = outcome.bytes_removed,
                    lowest_offset = outcome.lowest_offset,
                    "retention removed segments"
                ),
                Ok(Ok(_)) => {}
                Ok(Err(LogError::Closed)) => break,
                Ok(Err(err @ LogError::WritesRefused { .. })) => {
                    // Only reopening the log clears this; retrying would only repeat the error.
                    tracing::warn!(error = %err, "retention stopped");
                    break;
                }
                Ok(Err(err)) => tracing::warn!(error = %err, "retention pass failed"),
                Err(err) => tracing::warn!(error = %err, "retention pass panicked"),
            }
        }
    })
}
