//! The node's side of the `proglog-log` storage engine, which is synchronous and knows no async
//! runtime: [`OffsetWatch`] turns a log's offset listener into a Tokio `watch` channel (what
//! followers of the log end wait on), and [`spawn_retention`] runs the engine's retention
//! policy periodically on the blocking thread pool.

use std::sync::{Arc, Weak};
use std::time::Duration;

use proglog_log::{Log, LogError, RetentionPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A Tokio `watch` of a log's [`Log::next_offset`], updated after every append, every
/// truncation that changes it and every reset (the log's offset listener sends on it).
#[derive(Debug, Clone)]
pub struct OffsetWatch {
    /// Shared with the listener installed in the log, which lives as long as the log.
    sender: Arc<watch::Sender<u64>>,
}

impl OffsetWatch {
    /// Starts watching `log`: the channel holds its current next offset and every later one.
    pub fn attach(log: &Log) -> Self {
        let sender = Arc::new(watch::channel(log.next_offset()).0);
        let listener = Arc::clone(&sender);
        // `send_replace` never blocks and works with no receiver, as the listener must.
        log.add_offset_listener(move |next| {
            listener.send_replace(next);
        });
        Self { sender }
    }

    /// A receiver that sees the changes after this call as new.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.sender.subscribe()
    }
}

/// Applies `policy` every `interval` (at least 1 ms) on the blocking thread pool, until the log
/// is closed, dropped or refuses writes after a failed fsync. Errors are logged and retried at
/// the next tick. Must be called within a Tokio runtime.
pub fn spawn_retention(
    log: Arc<Log>,
    policy: RetentionPolicy,
    interval: Duration,
) -> JoinHandle<()> {
    spawn_retention_keeping(log, policy, interval, || Ok(u64::MAX))
}

/// [`spawn_retention`], keeping every record from the offset `keep_from` returns on each pass
/// (called on the blocking pool; an error skips the pass).
pub fn spawn_retention_keeping(
    log: Arc<Log>,
    policy: RetentionPolicy,
    interval: Duration,
    keep_from: impl Fn() -> Result<u64, String> + Clone + Send + 'static,
) -> JoinHandle<()> {
    // A weak handle: the task must not keep a dropped log's files open.
    let log: Weak<Log> = Arc::downgrade(&log);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(log) = log.upgrade() else { break };
            let (policy, keep_from) = (policy.clone(), keep_from.clone());
            // A pass deletes files and fsyncs the directory: never on an async worker thread.
            let pass = tokio::task::spawn_blocking(move || {
                keep_from().map(|keep_from| log.apply_retention_keeping(&policy, keep_from))
            })
            .await;
            let pass = match pass {
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "retention pass skipped");
                    continue;
                }
                Ok(Ok(pass)) => Ok(pass),
                Err(err) => Err(err),
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What the node's followers saw when the log itself owned the `watch` channel.
    #[tokio::test]
    async fn offset_watch_notifies_appends_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let log = Arc::new(Log::open(dir.path(), proglog_log::LogConfig::default()).unwrap());
        let offsets = OffsetWatch::attach(&log);
        let mut updates = offsets.subscribe();
        assert_eq!(*updates.borrow_and_update(), 0);
        let writer = Arc::clone(&log);
        tokio::task::spawn_blocking(move || writer.append_batch(&[b"a", b"b"]).unwrap())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), updates.changed())
            .await
            .expect("notified")
            .unwrap();
        assert_eq!(*updates.borrow_and_update(), 2);
        log.truncate_suffix(1).unwrap();
        assert!(updates.has_changed().unwrap());
        assert_eq!(*updates.borrow_and_update(), 1);
        log.truncate_suffix(1).unwrap();
        assert!(
            !updates.has_changed().unwrap(),
            "no change, no notification"
        );
    }
}
