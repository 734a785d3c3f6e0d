//! The async runtime a node runs on: Tokio's multi-threaded scheduler with as many worker
//! threads as `--worker-threads` says, one per usable CPU by default.
//!
//! Why it is a setting: every hand-off on a produce's path (connection task → call → Raft core →
//! replication task → …) is a task wake-up, and with several workers a wake-up may go to another
//! worker and cost a futex wake and a context switch. A node that can count on about one CPU
//! (a pod requesting one, or three nodes sharing a two-CPU machine) answers faster and spends
//! less CPU per record with one worker than with one per CPU it might burst to. Blocking work
//! (fsync, file writes, snapshot copies) runs on its own threads either way, so one worker
//! never waits for the disk.

use std::num::NonZeroUsize;

/// Most worker threads accepted; far beyond any machine a node runs on.
pub const MAX_WORKER_THREADS: u64 = 1024;

/// How many worker threads the runtime gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WorkerThreads {
    /// One per CPU this process may use (Tokio's default: `available_parallelism`, which
    /// honours a cgroup CPU quota).
    #[default]
    PerCpu,
    /// Exactly this many.
    Exactly(NonZeroUsize),
}

impl WorkerThreads {
    /// From `--worker-threads`: absent or 0 is [`WorkerThreads::PerCpu`] (0 is what the
    /// Kubernetes downward API gives for a CPU request that is not set).
    pub fn from_arg(value: Option<u64>) -> Result<Self, String> {
        match value {
            None | Some(0) => Ok(Self::PerCpu),
            Some(n) if n > MAX_WORKER_THREADS => {
                Err(format!("{n} is more than {MAX_WORKER_THREADS}"))
            }
            Some(n) => usize::try_from(n)
                .ok()
                .and_then(NonZeroUsize::new)
                .map(Self::Exactly)
                .ok_or_else(|| format!("{n} is too large for this platform")),
        }
    }

    /// Builds the runtime (timers and I/O enabled).
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.enable_all();
        if let Self::Exactly(n) = self {
            builder.worker_threads(n.get());
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_or_zero_means_one_per_cpu() {
        assert_eq!(WorkerThreads::from_arg(None), Ok(WorkerThreads::PerCpu));
        assert_eq!(WorkerThreads::from_arg(Some(0)), Ok(WorkerThreads::PerCpu));
    }

    #[test]
    fn a_count_is_kept_and_an_absurd_one_refused() {
        let one = NonZeroUsize::new(1).unwrap();
        assert_eq!(
            WorkerThreads::from_arg(Some(1)),
            Ok(WorkerThreads::Exactly(one))
        );
        let error = WorkerThreads::from_arg(Some(MAX_WORKER_THREADS + 1)).unwrap_err();
        assert!(error.contains("more than 1024"), "{error}");
    }

    #[test]
    fn the_runtime_gets_the_count() {
        let runtime = WorkerThreads::from_arg(Some(3)).unwrap().build().unwrap();
        assert_eq!(runtime.metrics().num_workers(), 3);
    }
}
