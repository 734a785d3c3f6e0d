//! Publishes this node's Raft state to its Prometheus gauges: turns each change of openraft's
//! metrics into a [`RaftView`] for [`crate::metrics::raft::RaftGauges`] (the metrics layer knows
//! no Raft types, so the dependency points from Raft to metrics only).

use std::sync::Arc;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use super::types::{Metrics as RaftMetrics, Raft};
use crate::metrics::Metrics;
use crate::metrics::raft::RaftView;

/// What the gauges show of `metrics`.
pub fn view_of(metrics: &RaftMetrics) -> RaftView {
    let is_leader = metrics.state == ServerState::Leader;
    RaftView {
        id: metrics.id,
        term: metrics.current_term,
        is_leader,
        leader: metrics.current_leader,
        last_log_index: metrics.last_log_index,
        committed_index: metrics.local_committed.map(|id| id.index),
        applied_index: metrics.last_applied.map(|id| id.index),
        matched: match (is_leader, metrics.replication.as_ref()) {
            (true, Some(replication)) => replication
                .iter()
                .map(|(id, matched)| (*id, matched.as_ref().map(|log_id| log_id.index)))
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// Keeps `metrics.raft` in step with `raft`'s metrics until its core stops.
pub async fn follow_raft(raft: Raft, metrics: Arc<Metrics>) {
    let mut rx = raft.metrics();
    loop {
        let view = view_of(&rx.borrow_watched());
        metrics.raft.observe(&view);
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::raft::types::test_log_id;

    #[test]
    fn a_leader_reports_its_indexes_and_what_each_member_matched() {
        let mut metrics = RaftMetrics::new_initial(1);
        metrics.current_term = 7;
        metrics.state = ServerState::Leader;
        metrics.current_leader = Some(1);
        metrics.last_log_index = Some(99);
        metrics.local_committed = Some(test_log_id(7, 1, 95));
        metrics.last_applied = Some(test_log_id(7, 1, 90));
        metrics.replication = Some(BTreeMap::from([
            (1, Some(test_log_id(7, 1, 99))),
            (3, Some(test_log_id(7, 1, 39))),
            (4, None),
        ]));
        let view = view_of(&metrics);
        assert_eq!(
            view,
            RaftView {
                id: 1,
                term: 7,
                is_leader: true,
                leader: Some(1),
                last_log_index: Some(99),
                committed_index: Some(95),
                applied_index: Some(90),
                matched: vec![(1, Some(99)), (3, Some(39)), (4, None)],
            }
        );
        // A follower (even with stale replication metrics) reports no matched indexes.
        metrics.state = ServerState::Follower;
        assert!(view_of(&metrics).matched.is_empty());
    }
}
