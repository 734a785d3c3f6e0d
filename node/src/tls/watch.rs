//! Change detection for files that are reloaded at runtime (certificates, CA, ACL policy).
//!
//! Kubernetes updates mounted Secrets and ConfigMaps by swapping a symlink, which inotify-style
//! watchers easily miss, so this polls: every interval it hashes the files' contents and calls
//! back when the hash differs from the last one seen. The files are small, so this is cheap.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// A hash of the contents of `paths`; a missing or unreadable file hashes as "absent".
pub fn fingerprint(paths: &[PathBuf]) -> u64 {
    let mut hasher = DefaultHasher::new();
    for path in paths {
        path.hash(&mut hasher);
        std::fs::read(path).ok().hash(&mut hasher);
    }
    hasher.finish()
}

/// Polls `paths` every `interval` until `cancel` fires and calls `on_change` whenever their
/// contents change. `on_change` returns whether it applied the change; a rejected change (for
/// example a half-written file) is retried on the next tick.
pub fn spawn_watcher<F>(
    what: &'static str,
    paths: Vec<PathBuf>,
    interval: Duration,
    cancel: CancellationToken,
    mut on_change: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> bool + Send + 'static,
{
    let mut last = fingerprint(&paths);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = ticker.tick() => {}
            }
            let paths_for_hash = paths.clone();
            let Ok(now) = tokio::task::spawn_blocking(move || fingerprint(&paths_for_hash)).await
            else {
                return;
            };
            if now != last {
                tracing::info!(what, "files changed; reloading");
                // Reloading reads the files: on a blocking thread too.
                let Ok((callback, applied)) = tokio::task::spawn_blocking(move || {
                    let applied = on_change();
                    (on_change, applied)
                })
                .await
                else {
                    return;
                };
                on_change = callback;
                if applied {
                    last = now;
                }
            }
        }
    })
}
