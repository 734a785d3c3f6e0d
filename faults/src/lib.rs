//! ProgLog's fault-injection suite: the operation history a run records ([`history`], stored
//! as JSON lines by [`jsonl`]), the checker that decides whether the history is consistent with
//! a linearizable, durable commit log ([`checker`], [`report`]), and the harness that produces
//! such histories from real `proglog-node` processes under faults (`make test-faults`):
//! [`netns`] (one network namespace per node), [`cluster`] (the node processes), [`tls`]
//! (certificates and client channels), [`workload`] and [`reads`]
//! (the clients), [`schedule`], [`nemesis`], [`rules`], [`delay`], [`delayers`] and
//! [`power_cut`], [`disk`], [`membership`], [`install_crash`] and [`clock`] (the faults),
//! [`tally`] (the per-fault table) and [`runner`] (one run, end to end; the `proglog-faults`
//! binary is a thin wrapper).
//!
//! A harness records every operation with a [`HistoryWriter`], reads each node's full log
//! after healing the cluster, then calls [`read_history`] and [`check`]:
//!
//! ```
//! use proglog_faults::{check, History};
//! let report = check(&History::default());
//! assert!(report.is_valid());
//! assert_eq!(report.summary(), "ops: 0 ok, 0 fail, 0 info, anomalies: 0");
//! ```

pub mod anomaly;
pub mod checker;
pub mod clock;
pub mod cluster;
pub mod delay;
pub mod delayers;
pub mod disk;
pub mod history;
pub mod install_crash;
pub mod jsonl;
pub mod membership;
pub mod nemesis;
pub mod netns;
pub mod power_cut;
pub mod reads;
pub mod report;
pub mod rules;
pub mod runner;
pub mod schedule;
pub mod stream_client;
pub mod tally;
pub mod tls;
pub mod workload;

pub use anomaly::{Anomaly, AnomalyKind, Observation, Source};
pub use checker::check;
pub use history::{
    Consistency, ConsumerRun, EndOfRun, Entry, EntryRef, FinalLog, History, Offset, OpId, OpKind,
    OpResult, Operation, ProcessId, Record, RunClock,
};
pub use jsonl::{HistoryError, HistoryWriter, parse_history, read_history};
pub use report::{Counts, Report, ResultCounts};

#[cfg(test)]
mod checker_tests;
#[cfg(test)]
mod jsonl_tests;
#[cfg(test)]
mod test_support;
