//! The Raft gauges of a node, for dashboards and alerts (see docs/MONITORING.md): term,
//! leadership, leader changes seen, log/commit/apply indexes and, on the leader, how many entries
//! each follower is behind. The Raft layer (`crate::raft::metrics_view`) describes its state as a
//! [`RaftView`] whenever openraft's metrics change; this module only turns views into gauges, so
//! metrics do not depend on Raft types.

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What the gauges show of one node's Raft state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaftView {
    /// This node's id.
    pub id: u64,
    /// Current term.
    pub term: u64,
    /// Whether this node leads.
    pub is_leader: bool,
    /// The leader this node knows, if any.
    pub leader: Option<u64>,
    /// Index of the last entry in the log.
    pub last_log_index: Option<u64>,
    /// Index of the last entry known committed.
    pub committed_index: Option<u64>,
    /// Index of the last entry applied.
    pub applied_index: Option<u64>,
    /// On the leader: each member's matched index (`None`: nothing matched yet).
    pub matched: Vec<(u64, Option<u64>)>,
}

/// Labels of `proglog_raft_follower_lag_entries`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct FollowerLabels {
    /// The follower's (or learner's) Raft node id.
    pub follower: String,
}

/// Gauges mirroring this node's openraft metrics.
#[derive(Debug)]
pub struct RaftGauges {
    term: Gauge,
    is_leader: Gauge,
    has_leader: Gauge,
    leader_changes: Counter,
    last_log_index: Gauge,
    committed_index: Gauge,
    applied_index: Gauge,
    follower_lag: Family<FollowerLabels, Gauge>,
    /// The leader seen last, so only a change of leader counts.
    last_leader: Mutex<Option<u64>>,
}

fn index_gauge(index: Option<u64>) -> i64 {
    index.map_or(0, super::clamp_i64)
}

impl RaftGauges {
    /// Creates the gauges and registers them in `registry` (prefix `proglog_raft_`).
    pub(super) fn register(registry: &mut Registry) -> Self {
        let gauges = Self {
            term: Gauge::default(),
            is_leader: Gauge::default(),
            has_leader: Gauge::default(),
            leader_changes: Counter::default(),
            last_log_index: Gauge::default(),
            committed_index: Gauge::default(),
            applied_index: Gauge::default(),
            follower_lag: Family::default(),
            last_leader: Mutex::new(None),
        };
        let raft = registry.sub_registry_with_prefix("raft");
        raft.register("term", "Current Raft term", gauges.term.clone());
        raft.register(
            "is_leader",
            "1 while this node is the Raft leader",
            gauges.is_leader.clone(),
        );
        raft.register(
            "has_leader",
            "1 while this node knows a Raft leader (itself or another node)",
            gauges.has_leader.clone(),
        );
        raft.register(
            "leader_changes",
            "Times this node saw a different Raft leader (the first one included)",
            gauges.leader_changes.clone(),
        );
        raft.register(
            "last_log_index",
            "Index of the last entry in this node's Raft log",
            gauges.last_log_index.clone(),
        );
        raft.register(
            "committed_index",
            "Index of the last entry this node knows to be committed",
            gauges.committed_index.clone(),
        );
        raft.register(
            "applied_index",
            "Index of the last entry applied to this node's user-visible log",
            gauges.applied_index.clone(),
        );
        raft.register(
            "follower_lag_entries",
            "On the leader: entries of its log a follower has not acknowledged yet, by follower id",
            gauges.follower_lag.clone(),
        );
        gauges
    }

    /// Shows one view of the node's Raft state.
    pub fn observe(&self, view: &RaftView) {
        self.term.set(super::clamp_i64(view.term));
        self.is_leader.set(i64::from(view.is_leader));
        self.has_leader.set(i64::from(view.leader.is_some()));
        if let Some(leader) = view.leader {
            let mut last = self.last_leader.lock();
            if *last != Some(leader) {
                *last = Some(leader);
                self.leader_changes.inc();
            }
        }
        self.last_log_index.set(index_gauge(view.last_log_index));
        self.committed_index.set(index_gauge(view.committed_index));
        self.applied_index.set(index_gauge(view.applied_index));

        // Only a leader knows its followers' progress; elsewhere the series must disappear, or
        // a deposed leader would report its last view for ever.
        self.follower_lag.clear();
        if view.is_leader {
            // Entries the follower lacks: it matched up to `matched` of our `last_log_index`;
            // a follower that matched nothing yet lacks the whole log.
            let log_len = view.last_log_index.map_or(0, |index| index + 1);
            for (id, matched) in view.matched.iter().filter(|(id, _)| *id != view.id) {
                let have = matched.map_or(0, |index| index + 1);
                self.follower_lag
                    .get_or_create(&FollowerLabels {
                        follower: id.to_string(),
                    })
                    .set(super::clamp_i64(log_len.saturating_sub(have)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;

    const ME: u64 = 1;

    fn leader_metrics() -> RaftView {
        RaftView {
            id: ME,
            term: 7,
            is_leader: true,
            leader: Some(ME),
            last_log_index: Some(99),
            committed_index: Some(95),
            applied_index: Some(90),
            matched: vec![(ME, Some(99)), (2, Some(99)), (3, Some(39)), (4, None)],
        }
    }

    #[test]
    fn raft_state_is_exported() {
        let metrics = Metrics::new();
        metrics.raft.observe(&leader_metrics());
        let text = metrics.encode();
        for line in [
            "proglog_raft_term 7",
            "proglog_raft_is_leader 1",
            "proglog_raft_has_leader 1",
            "proglog_raft_leader_changes_total 1",
            "proglog_raft_last_log_index 99",
            "proglog_raft_committed_index 95",
            "proglog_raft_applied_index 90",
            "proglog_raft_follower_lag_entries{follower=\"2\"} 0",
            "proglog_raft_follower_lag_entries{follower=\"3\"} 60",
            "proglog_raft_follower_lag_entries{follower=\"4\"} 100",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("follower=\"1\""),
            "the leader is not its own follower\n{text}"
        );
    }

    #[test]
    fn only_a_change_of_leader_counts_and_followers_report_no_lag() {
        let metrics = Metrics::new();
        let mut raft = leader_metrics();
        metrics.raft.observe(&raft);
        metrics.raft.observe(&raft);
        // Deposed: no leader known for a while, then node 2 leads.
        raft.is_leader = false;
        raft.leader = None;
        raft.matched.clear();
        metrics.raft.observe(&raft);
        let text = metrics.encode();
        assert!(text.contains("proglog_raft_has_leader 0"), "{text}");
        assert!(text.contains("proglog_raft_is_leader 0"), "{text}");
        assert!(
            !text.contains("proglog_raft_follower_lag_entries{"),
            "{text}"
        );
        raft.leader = Some(2);
        metrics.raft.observe(&raft);
        metrics.raft.observe(&raft);
        let text = metrics.encode();
        assert!(
            text.contains("proglog_raft_leader_changes_total 2"),
            "{text}"
        );
        assert!(text.contains("proglog_raft_has_leader 1"), "{text}");
    }
}
