//! Opening a node's Raft storage: the user log, the Raft log store and the state machine share
//! the user log (one write per record), and each needs something from the other when it opens —
//! the state machine the Raft log's durable index and entry lookup, the Raft log store the state
//! machine's applied position to reconcile the two logs after a crash. This is the one place
//! that knows the order.

use std::path::Path;
use std::sync::Arc;

use proglog_log::LogConfig;

use super::error::RaftStoreError;
use super::log_store::RaftLogStore;
use super::state_machine::{RaftEntryEnd, USER_LOG_DIR, UserLogStateMachine};
use super::user_log::UserLog;
use crate::metrics::Metrics;

/// The state machine's directory under the Raft directory.
pub const SM_DIR: &str = "sm";

/// Opens (or creates) the Raft storage under `raft_dir`: the Raft log with `raft_log`'s
/// settings, the user log (`sm/user-log`) with `user_log`'s, and the state machine (`sm`).
/// Blocking (recovery reads, truncates and fsyncs); must run within a tokio runtime.
pub fn open_storage(
    raft_dir: &Path,
    raft_log: LogConfig,
    user_log: LogConfig,
    metrics: Arc<Metrics>,
) -> Result<(RaftLogStore, UserLogStateMachine), RaftStoreError> {
    let sm_dir = raft_dir.join(SM_DIR);
    super::durable_file::create_dir(raft_dir)?;
    super::durable_file::create_dir(&sm_dir)?;
    let user = UserLog::open(&sm_dir.join(USER_LOG_DIR), user_log)?;
    let log_store =
        RaftLogStore::open_with_metrics(raft_dir, raft_log, user.clone(), metrics.clone())?;
    let reader = log_store.reader();
    let lookup = RaftEntryEnd(Arc::new(move |log_id| reader.records_end_of(log_id)));
    let state_machine = UserLogStateMachine::open_with_metrics(
        &sm_dir,
        user,
        metrics,
        log_store.durable(),
        Some(lookup),
    )?;
    let (applied, applied_end) = state_machine.applied_position();
    log_store.reconcile(applied, applied_end)?;
    Ok((log_store, state_machine))
}
