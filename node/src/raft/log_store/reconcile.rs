//! Making the two logs agree when a node opens, after a crash at any instant of an append: the
//! user log may hold records whose Raft entry did not reach the disk, or the Raft log an entry
//! whose records did not. Neither was acknowledged (an acknowledgement waits for the fsync of
//! both logs, see `flush.rs`), so the unmatched part is dropped; what the state machine applied
//! is never touched.

use super::super::error::RaftStoreError;
use super::super::stored_entry::StoredEntry;
use super::super::types::LogId;
use super::RaftLogStore;

impl RaftLogStore {
    /// Drops unapplied entries whose records the user log does not hold in full, then user-log
    /// records no entry refers to, given the state machine's last applied entry and its user
    /// log end (`applied_end`). Blocking; call once, after opening the state machine (which may
    /// finish a snapshot install in the user log first) and before Raft starts.
    pub fn reconcile(
        &self,
        applied: Option<LogId>,
        applied_end: u64,
    ) -> Result<(), RaftStoreError> {
        let shared = &self.shared;
        let user = shared.user.log();
        let _writes = shared.user.lock_writes();
        let user_next = user.next_offset();
        let applied_index = applied.map(|id| id.index);
        let first = shared.first_readable();
        let log_next = shared.log.next_offset();
        // The user log must end where the last kept entry's records end; entries up to the
        // applied one are the state machine's (their records are there, or a snapshot replaced
        // them), so only the unapplied tail is examined, newest first.
        let mut keep_next = log_next;
        let mut records_end = applied_end;
        while keep_next > first && applied_index.is_none_or(|applied| keep_next - 1 > applied) {
            let stored = StoredEntry::decode(&shared.log.read(keep_next - 1)?)?;
            if stored.user_end() <= user_next {
                records_end = stored.user_end().max(applied_end);
                break;
            }
            keep_next -= 1;
        }
        if keep_next < log_next {
            tracing::warn!(
                from = keep_next,
                to = log_next - 1,
                "dropping raft entries whose records a crash kept from the user log (never \
                 acknowledged by this node)"
            );
            shared
                .durable
                .truncating(keep_next, || shared.log.truncate_suffix(keep_next))?;
            shared.log.sync()?;
        }
        if user_next > records_end {
            tracing::warn!(
                from = records_end,
                to = user_next - 1,
                "dropping user-log records whose raft entry a crash kept from the raft log \
                 (never acknowledged by this node)"
            );
            user.truncate_suffix(records_end)?;
            user.sync()?;
        }
        Ok(())
    }
}
