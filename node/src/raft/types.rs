//! The openraft type configuration of ProgLog: what a Raft entry carries (a batch of produced
//! records), what applying it answers (the records' user offsets), and short aliases for the
//! openraft types the rest of `raft` uses.

use std::fmt;

use bytes::Bytes;

use proglog_proto::log::v1::Record;
use proglog_proto::proglog::raft::v1::ForwardProduceRequest;
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// The application payload of a normal Raft entry: records produced together. Applying it appends
/// them to the user log with contiguous offsets.
#[derive(Clone, Default)]
pub struct ProduceBatch {
    /// The records, in offset order.
    pub records: Vec<Record>,
    /// The whole encoded entry (see [`super::codec`]) this batch was decoded from, when it was:
    /// entries read back from the Raft log or received from the leader. Replication sends these
    /// bytes as they are and the state machine stores slices of them, instead of encoding the
    /// records again for each follower and for the user log.
    pub entry_bytes: Option<Bytes>,
}

// Equality is about the records; whether an encoding is attached does not matter.
impl PartialEq for ProduceBatch {
    fn eq(&self, other: &Self) -> bool {
        self.records == other.records
    }
}

impl ProduceBatch {
    /// A batch of freshly produced records (no encoding yet).
    pub fn new(records: Vec<Record>) -> Self {
        Self {
            records,
            entry_bytes: None,
        }
    }

    /// Bytes [`ProduceBatch::encode_into`] writes.
    pub fn encoded_len(&self) -> usize {
        self.records
            .iter()
            .map(|record| prost::encoding::message::encoded_len(1, record))
            .sum()
    }

    /// Encodes straight into `buf` without cloning the records.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        // Sized once: growing by doubling would copy a large batch several times.
        buf.reserve(self.encoded_len());
        // Same wire format as `ForwardProduceRequest { records }`: field 1, length-delimited.
        for record in &self.records {
            prost::encoding::message::encode(1, record, buf);
        }
    }

    /// Decodes what [`ProduceBatch::encode_into`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let wire = ForwardProduceRequest::decode(bytes)?;
        Ok(Self::new(wire.records))
    }
}

impl fmt::Debug for ProduceBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProduceBatch({} records)", self.records.len())
    }
}

impl fmt::Display for ProduceBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} records", self.records.len())
    }
}

// openraft requires serde for the payload; ProgLog only uses it for debugging output, the log and
// the network use the prost encoding, so serde just carries the same bytes.
impl Serialize for ProduceBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        serializer.serialize_bytes(&buf)
    }
}

impl<'de> Deserialize<'de> for ProduceBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(deserializer)?;
        ProduceBatch::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

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
