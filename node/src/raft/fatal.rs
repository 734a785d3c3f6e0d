//! Fail-stop of a node whose Raft core stopped. openraft stops its core for good on a storage
//! error (a failed write, fsync or apply, corruption found while reading) or a panic; the node
//! then can neither replicate nor apply, and keeping the process up would leave a replica that
//! looks healthy but is lost. This module owns what that means for the process:
//!
//! - [`CoreFailure`]: why the core stopped, the exit status that says whether a restart can
//!   help ([`EXIT_STORAGE`], [`EXIT_PANIC`], [`EXIT_STOPPED`]) and the message for operators.
//! - [`watch_core`]: notices the stop (openraft's `RaftMetrics::running_state`, or the metrics
//!   channel closing when the core task died) and records it once, with the
//!   `proglog_raft_core_stopped` metric; liveness and readiness read it (see [`super::health`]).
//! - [`announce`]: the one error line, then the bounded delay before the process exits.
//! - [`install_panic_hook`]: any panic in the process is a failure of kind `panic`.
//! - [`write_termination_message`]: the reason, for Kubernetes' `terminationMessagePath`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::error::Fatal;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::types::{Raft, TypeConfig};
use crate::metrics::Metrics;

/// Exit status when the Raft core stopped on a storage error (`EX_IOERR` from sysexits.h).
pub const EXIT_STORAGE: i32 = 74;
/// Exit status when the Raft core panicked (`EX_SOFTWARE`): a bug.
pub const EXIT_PANIC: i32 = 70;
/// Exit status when the Raft core stopped without an error nobody asked for (`EX_TEMPFAIL`).
pub const EXIT_STOPPED: i32 = 75;
/// How long a node whose core stopped keeps answering probes (failing, with the reason) before it
/// exits, by default: long enough for a readiness probe (every 5 s) and the logs to show it.
pub const DEFAULT_EXIT_DELAY: Duration = Duration::from_secs(5);
/// Kubernetes keeps at most 4096 bytes of a termination message.
const MAX_TERMINATION_MESSAGE: usize = 4096;

/// What stopped the core, as far as a restart is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoreFailureKind {
    /// Storage failed (I/O, fsync, apply, corrupt data).
    Storage,
    /// The core panicked.
    Panic,
    /// The core stopped without an error, and not because the node was shutting down.
    Stopped,
}

impl CoreFailureKind {
    /// The `kind` label of `proglog_raft_core_stopped`.
    pub fn label(self) -> &'static str {
        match self {
            CoreFailureKind::Storage => "storage",
            CoreFailureKind::Panic => "panic",
            CoreFailureKind::Stopped => "stopped",
        }
    }

    /// The process exit status for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            CoreFailureKind::Storage => EXIT_STORAGE,
            CoreFailureKind::Panic => EXIT_PANIC,
            CoreFailureKind::Stopped => EXIT_STOPPED,
        }
    }

    /// Whether a restart can help, for the operator reading the message.
    pub fn advice(self) -> &'static str {
        match self {
            CoreFailureKind::Storage => {
                "a restart helps only if the cause is gone (disk space freed, a transient I/O \
                 error); if it fails again the same way, the volume or its data is bad: repair it, \
                 or remove the member and let it rejoin with an empty volume"
            }
            CoreFailureKind::Panic => {
                "a bug in proglog-node (please report it with the logs); the data on disk is \
                 intact and a restart usually recovers"
            }
            CoreFailureKind::Stopped => "a restart recovers",
        }
    }
}

/// Why this node's Raft core stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "raft core stopped ({kind}): {cause}; exit status {code}: {advice}",
    kind = self.kind.label(),
    code = self.kind.exit_code(),
    advice = self.kind.advice()
)]
pub struct CoreFailure {
    /// What stopped the core; decides the exit status.
    pub kind: CoreFailureKind,
    /// openraft's error, e.g. "when Write Apply(...): ...: disk I/O error".
    pub cause: String,
}

impl CoreFailure {
    /// Classifies openraft's fatal error.
    pub fn from_fatal(fatal: &Fatal<TypeConfig>) -> Self {
        let kind = match fatal {
            Fatal::StorageError(_) => CoreFailureKind::Storage,
            Fatal::Panicked => CoreFailureKind::Panic,
            Fatal::Stopped => CoreFailureKind::Stopped,
        };
        Self {
            kind,
            cause: fatal.to_string(),
        }
    }

    /// The process exit status.
    pub fn exit_code(&self) -> i32 {
        self.kind.exit_code()
    }
}

/// Where a node's core failure is recorded; cheap to clone.
#[derive(Debug, Clone)]
pub struct CoreState {
    failure: watch::Sender<Option<CoreFailure>>,
    /// Set when the node itself stops Raft (shutdown), so that stop is not a failure.
    stopping: Arc<AtomicBool>,
}

impl Default for CoreState {
    fn default() -> Self {
        Self {
            failure: watch::Sender::new(None),
            stopping: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl CoreState {
    /// The failure, once the core stopped.
    pub fn failure(&self) -> Option<CoreFailure> {
        self.failure.borrow().clone()
    }

    /// Resolves when the core stops with a failure (never, if it does not).
    pub async fn failed(&self) -> CoreFailure {
        let mut failure = self.failure.subscribe();
        let seen = failure
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|failure| failure.clone());
        match seen {
            Some(failure) => failure,
            // The sender lives in `self`: it cannot be dropped while we wait.
            None => std::future::pending().await,
        }
    }

    /// Marks the coming stop of the core as requested (node shutdown).
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Records the first failure only: later ones are consequences of it.
    fn record(&self, failure: CoreFailure, metrics: &Metrics) {
        let kind = failure.kind;
        let first = self.failure.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(failure);
            true
        });
        if first {
            metrics.raft_core_stopped(kind.label());
        }
    }
}

/// Makes any panic in the process a core failure of kind [`CoreFailureKind::Panic`] (then the
/// node fail-stops with [`EXIT_PANIC`]), after the previous hook printed it. openraft turns a
/// panic of its core into `Fatal::Panicked`, but one in the state machine worker (our `apply`)
/// only kills that task: the core keeps running and nothing is applied any more. tokio swallows
/// task panics the same way elsewhere, and state a panic left half-changed cannot be trusted, so
/// a node in Raft mode stops on any panic. Installed by `run_node`, not by embedded nodes.
pub fn install_panic_hook(state: CoreState, metrics: Arc<Metrics>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic payload".to_owned());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let cause = format!(
            "thread '{}' panicked{location}: {payload}",
            thread.name().unwrap_or("<unnamed>")
        );
        state.record(
            CoreFailure {
                kind: CoreFailureKind::Panic,
                cause,
            },
            &metrics,
        );
    }));
}

/// Watches `raft` until its core stops; a stop the node did not ask for is recorded in `state`
/// (and counted in `metrics`). Runs as a task for the node's lifetime.
pub async fn watch_core(raft: Raft, state: CoreState, metrics: Arc<Metrics>) {
    let mut rx = raft.metrics();
    loop {
        let running = rx.borrow_watched().running_state.clone();
        if let Err(fatal) = running {
            if matches!(fatal, Fatal::Stopped) && state.stopping.load(Ordering::SeqCst) {
                return;
            }
            state.record(CoreFailure::from_fatal(&fatal), &metrics);
            return;
        }
        if rx.changed().await.is_err() {
            // The core task ended without reporting a stop: it panicked (or the node shut down).
            // Joining it, which any API call does now, tells which.
            if state.stopping.load(Ordering::SeqCst) {
                return;
            }
            let fatal = raft.is_initialized().await.err().unwrap_or(Fatal::Stopped);
            if !(matches!(fatal, Fatal::Stopped) && state.stopping.load(Ordering::SeqCst)) {
                state.record(CoreFailure::from_fatal(&fatal), &metrics);
            }
            return;
        }
    }
}

/// Logs the failure once, clearly, then keeps the node up (failing its probes with the reason)
/// for `delay`, or until `shutdown` fires (the pod is being deleted anyway), before the caller
/// stops it and exits with [`CoreFailure::exit_code`].
pub async fn announce(failure: &CoreFailure, delay: Duration, shutdown: &CancellationToken) {
    tracing::error!(
        kind = failure.kind.label(),
        exit_code = failure.exit_code(),
        cause = %failure.cause,
        "{failure}; this node is not live nor ready and exits in {delay:?}"
    );
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = shutdown.cancelled() => {}
    }
}

/// Writes `message` (truncated to what Kubernetes keeps) to the termination message file at
/// `path`, which must exist (the kubelet creates it; outside Kubernetes `/dev/termination-log`
/// usually does not, and then nothing is written). Blocking: call it off the async threads.
pub fn write_termination_message(path: &Path, message: &str) {
    let mut end = message.len().min(MAX_TERMINATION_MESSAGE);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path);
    let written = file.and_then(|mut file| {
        use std::io::Write;
        file.write_all(&message.as_bytes()[..end])?;
        proglog_log::durable_fs::sync_file_all(&file, path)
    });
    if let Err(error) = written {
        // Not fatal: the exit status and the logs still say why.
        tracing::debug!(path = %path.display(), %error, "no termination message written");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_say_whether_a_restart_helps() {
        let storage =
            CoreFailure::from_fatal(&Fatal::StorageError(openraft::StorageError::from_io_error(
                openraft::ErrorSubject::StateMachine,
                openraft::ErrorVerb::Write,
                std::io::Error::other("disk gone"),
            )));
        assert_eq!(storage.exit_code(), EXIT_STORAGE);
        let text = storage.to_string();
        assert!(text.contains("disk gone"), "{text}");
        assert!(text.contains("exit status 74"), "{text}");
        assert!(text.contains("a restart helps only if"), "{text}");
        assert_eq!(
            CoreFailure::from_fatal(&Fatal::Panicked).exit_code(),
            EXIT_PANIC
        );
        assert_eq!(
            CoreFailure::from_fatal(&Fatal::Stopped).exit_code(),
            EXIT_STOPPED
        );
    }

    #[test]
    fn termination_message_is_truncated_and_skipped_when_the_file_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("termination-log");
        write_termination_message(&path, "not written");
        assert!(!path.exists());
        std::fs::write(&path, "").unwrap();
        write_termination_message(&path, &"é".repeat(3000));
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.len() <= MAX_TERMINATION_MESSAGE && written.len() >= 4094);
    }
}
