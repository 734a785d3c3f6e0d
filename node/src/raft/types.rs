//! The openraft type configuration of ProgLog: what a Raft entry carries (a batch of produced
//! records), what applying it answers (the records' user offsets), and short aliases for the
//! openraft types the rest of `raft` uses.

/// Raft node id: `incarnation * 10000 + ordinal` (see docs/ARCHITECTURE.md "Raft node ids").
pub type NodeId = u64;

openraft::declare_raft_types!(
    /// ProgLog's Raft types: entries carry batches of records, nodes are known by address.
    pub TypeConfig:
        D = ProduceBatch,
        R = ProduceApplied,
        NodeId = NodeId,
        Node = openraft::BasicNode,
);

/// A Raft log id (leader term + node, index).
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A Raft entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// The committed leader id carried by log ids.
pub type CommittedLeaderId = openraft::alias::CommittedLeaderIdOf<TypeConfig>;
/// The membership with the log id that introduced it.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A snapshot of ProgLog's state machine (metadata + a view of the user log).
pub type UserSnapshot = openraft::alias::SnapshotOf<TypeConfig, super::snapshot::UserLogSnapshot>;
/// Raft metrics of a node.
pub type Metrics = openraft::RaftMetrics<TypeConfig>;
/// The running Raft handle.
pub type Raft = openraft::Raft<TypeConfig, super::state_machine::UserLogStateMachine>;

pub use super::produce_batch::ProduceBatch;

/// What applying a normal entry answers: where its records landed in the user log — the
/// backend's [`Appended`](crate::backend::Appended), so no conversion is needed on the way out.
pub type ProduceApplied = crate::backend::Appended;

/// A log id of `term`, led by node `node_id`, at `index` (tests build many).
#[cfg(test)]
pub(crate) fn test_log_id(term: u64, node_id: u64, index: u64) -> LogId {
    LogId::new(
        openraft::impls::leader_id_adv::LeaderId { term, node_id },
        index,
    )
}
