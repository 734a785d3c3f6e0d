//! When the state machine's position becomes durable: the background persister, `persist_now`
//! on shutdown, and snapshot builds — each only within what the node's Raft log holds durably
//! ([`crate::raft::durable_index`]), because a leader may apply entries before its own fsync of
//! them finishes.

use std::io;
use std::sync::Arc;

use openraft::storage::RaftSnapshotBuilder;
use tokio::sync::watch;

use super::{
    PERSIST_INTERVAL, SHUTDOWN_PERSIST_WAIT, Shared, SmState, SnapshotRecord, UserLogStateMachine,
};
use crate::raft::error::RaftStoreError;
use crate::raft::snapshot::UserLogSnapshot;
use crate::raft::types::{LogId, SnapshotMeta, TypeConfig, UserSnapshot};

impl Shared {
    /// Makes the current state durable: replaces `sm-state.json` once the Raft log on this disk
    /// holds every entry the state counts as applied beyond its snapshot (see
    /// [`super::durable_index`]); the records of those entries were fsynced with them, so the
    /// user log needs no sync of its own here. Writes nothing when that cannot be confirmed
    /// because the Raft log store is gone (the node is stopping): the older state on disk
    /// stays, and openraft re-applies from it.
    async fn persist(self: &Arc<Self>) -> Result<(), RaftStoreError> {
        // A newer state written meanwhile (an install) is never overwritten: `store` keeps the
        // newest version.
        let state = self.state.lock().clone();
        if let Some(index) = applied_beyond_snapshot(&state)
            && !self.raft_durable.covers(index).await
        {
            tracing::debug!("the Raft log store stopped: state machine position not persisted");
            return Ok(());
        }
        let _guard = self.persist_lock.lock().await;
        let shared = self.clone();
        tokio::task::spawn_blocking(move || shared.file.store(state.version, &state).map(drop))
            .await
            .map_err(|e| RaftStoreError::Task(e.to_string()))?
    }
}

impl UserLogStateMachine {
    /// Makes everything applied so far durable now (used on shutdown), waiting at most
    /// [`SHUTDOWN_PERSIST_WAIT`] for the Raft log to hold it; after that the older state on disk
    /// stays (openraft re-applies from it).
    pub async fn persist_now(&self) -> Result<(), RaftStoreError> {
        match tokio::time::timeout(SHUTDOWN_PERSIST_WAIT, self.shared.persist()).await {
            Ok(result) => result,
            Err(_) => {
                tracing::warn!(
                    "the Raft log did not make the applied entries durable within {:?}: the \
                     state machine keeps its older persisted position",
                    SHUTDOWN_PERSIST_WAIT
                );
                Ok(())
            }
        }
    }

    /// Records a snapshot of the current state if its applied point is still `applied`.
    fn record_snapshot_at(&self, applied: Option<LogId>) -> Option<SnapshotRecord> {
        let mut state = self.shared.state.lock();
        if state.last_applied != applied {
            return None;
        }
        let record = SnapshotRecord {
            meta: SnapshotMeta {
                last_log_id: state.last_applied,
                last_membership: state.last_membership.clone(),
            },
            first_offset: self.shared.user.log().lowest_offset(),
            next_offset: state.user_next_offset,
        };
        state.snapshot = Some(record.clone());
        state.version += 1;
        Some(record)
    }
}

pub(super) async fn persist_in_background(
    shared: std::sync::Weak<Shared>,
    mut applied: watch::Receiver<u64>,
) {
    while applied.changed().await.is_ok() {
        let Some(shared) = shared.upgrade() else {
            return;
        };
        applied.borrow_and_update();
        if let Err(e) = shared.persist().await {
            tracing::error!(error = %e, "persisting the state machine position failed");
        }
        drop(shared);
        tokio::time::sleep(PERSIST_INTERVAL).await;
    }
}

impl RaftSnapshotBuilder<TypeConfig> for UserLogStateMachine {
    type SnapshotData = UserLogSnapshot;

    async fn build_snapshot(&mut self) -> Result<UserSnapshot, io::Error> {
        // A snapshot is a claim that its entries need no Raft log any more, so it may only
        // cover entries the Raft log on this disk holds (`durable_index`): wait for the applied
        // point, and again if it moved on meanwhile.
        let record = loop {
            let (applied, beyond_snapshot) = {
                let state = self.shared.state.lock();
                (state.last_applied, applied_beyond_snapshot(&state))
            };
            if let Some(index) = beyond_snapshot
                && !self.shared.raft_durable.covers(index).await
            {
                return Err(io::Error::other(
                    "the Raft log store stopped before the snapshot's entries were durable",
                ));
            }
            if let Some(record) = self.record_snapshot_at(applied) {
                break record;
            }
        };
        // The snapshot must not claim more than what is durable: openraft purges the Raft log
        // behind it, after which re-applying from the Raft log is impossible. The persisted
        // state is at least as new as the record taken above.
        self.shared.persist().await?;
        Ok(self.snapshot_of(&record))
    }
}

/// The index of the last applied entry when no snapshot covers it (then only the Raft log
/// holds it, and persisting the position must wait for that log's durability).
fn applied_beyond_snapshot(state: &SmState) -> Option<u64> {
    let applied = state.last_applied?.index;
    let covered = state
        .snapshot
        .as_ref()
        .and_then(|s| s.meta.last_log_id)
        .map(|id| id.index);
    (covered < Some(applied)).then_some(applied)
}
