//! The anomalies the checker reports: one variant per violated property, carrying the
//! operations, offsets, values and nodes involved, and a one-line `Display` for each.

use std::fmt;

use serde::Serialize;

use crate::history::{OpId, ProcessId};

/// Where a value was seen at an offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Source {
    /// The offset an `ok` append was acknowledged with.
    Ack { op: OpId },
    /// A record returned by a read.
    Read { op: OpId, node: Option<String> },
    /// A record a consumer received.
    Consumer {
        consumer: ProcessId,
        node: Option<String>,
    },
    /// A node's final log.
    FinalLog { node: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ack { op } => write!(f, "ack of append op {op}"),
            Self::Read { op, node } => write!(f, "read op {op} on {}", NodeName(node)),
            Self::Consumer { consumer, node } => {
                write!(f, "consumer {consumer} on {}", NodeName(node))
            }
            Self::FinalLog { node } => write!(f, "final log of node {node}"),
        }
    }
}

/// A value seen at an offset, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observation {
    pub value: String,
    pub source: Source,
}

/// The kind of an [`Anomaly`], without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    LostAppend,
    ConflictingValues,
    DuplicateValue,
    RealTimeOrder,
    StaleRead,
    StaleBounds,
    ConsumerGap,
    ConsumerOutOfOrder,
    FailedAppendVisible,
    UnknownValue,
    FinalLogDivergence,
    Malformed,
}

/// A violated property.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Anomaly {
    /// (1) An `ok` append is not in a final log at its acknowledged offset. `node` is `None`
    /// when no node's final log reaches that offset at all.
    LostAppend {
        op: OpId,
        value: String,
        offset: u64,
        node: Option<String>,
        /// What that node holds at the offset instead, if anything.
        found: Option<String>,
    },
    /// (2) One offset was seen with different values.
    ConflictingValues {
        offset: u64,
        /// One observation per distinct value.
        observations: Vec<Observation>,
    },
    /// (3) A value is at more offsets than the appends that may have executed it.
    DuplicateValue {
        value: String,
        offsets: Vec<u64>,
        /// Appends of the value that were not `fail` (original plus retries).
        allowed: usize,
    },
    /// (4) `earlier` was acknowledged before `later` was invoked, yet got a higher offset.
    RealTimeOrder {
        earlier: OpId,
        earlier_offset: u64,
        later: OpId,
        later_offset: u64,
    },
    /// (5) A linearizable read invoked after `append` was acknowledged at `offset`, with
    /// `offset` in its range, did not return it (the highest such offset is reported).
    StaleRead {
        op: OpId,
        node: Option<String>,
        append: OpId,
        offset: u64,
    },
    /// (5) A linearizable bounds query invoked after `append` was acknowledged at `offset`
    /// returned `next <= offset`.
    StaleBounds {
        op: OpId,
        node: Option<String>,
        next: u64,
        append: OpId,
        offset: u64,
    },
    /// (6) A consumer skipped offsets: it expected `expected` and received `found`.
    ConsumerGap {
        consumer: ProcessId,
        node: Option<String>,
        expected: u64,
        found: u64,
    },
    /// (6) A consumer received an offset lower than the next one it expected.
    ConsumerOutOfOrder {
        consumer: ProcessId,
        node: Option<String>,
        expected: u64,
        found: u64,
    },
    /// (7) The value of an append that certainly failed is visible.
    FailedAppendVisible {
        op: OpId,
        value: String,
        offset: u64,
        source: Source,
    },
    /// A value that no append wrote is visible.
    UnknownValue {
        value: String,
        offset: u64,
        source: Source,
    },
    /// (8) A node's final log differs from the reference node's below the common horizon.
    FinalLogDivergence {
        node: String,
        reference: String,
        /// The first offset that differs.
        offset: u64,
        value: Option<String>,
        reference_value: Option<String>,
        /// How many offsets differ.
        count: u64,
    },
    /// The history itself is inconsistent (duplicate ids, missing result fields, ...).
    Malformed { op: Option<OpId>, reason: String },
}

impl Anomaly {
    /// The anomaly's kind.
    pub fn kind(&self) -> AnomalyKind {
        match self {
            Self::LostAppend { .. } => AnomalyKind::LostAppend,
            Self::ConflictingValues { .. } => AnomalyKind::ConflictingValues,
            Self::DuplicateValue { .. } => AnomalyKind::DuplicateValue,
            Self::RealTimeOrder { .. } => AnomalyKind::RealTimeOrder,
            Self::StaleRead { .. } => AnomalyKind::StaleRead,
            Self::StaleBounds { .. } => AnomalyKind::StaleBounds,
            Self::ConsumerGap { .. } => AnomalyKind::ConsumerGap,
            Self::ConsumerOutOfOrder { .. } => AnomalyKind::ConsumerOutOfOrder,
            Self::FailedAppendVisible { .. } => AnomalyKind::FailedAppendVisible,
            Self::UnknownValue { .. } => AnomalyKind::UnknownValue,
            Self::FinalLogDivergence { .. } => AnomalyKind::FinalLogDivergence,
            Self::Malformed { .. } => AnomalyKind::Malformed,
        }
    }
}

/// Displays an optional node name.
struct NodeName<'a>(&'a Option<String>);

impl fmt::Display for NodeName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(node) => write!(f, "node {node}"),
            None => f.write_str("an unrecorded node"),
        }
    }
}

/// Displays an optional value.
struct MaybeValue<'a>(&'a Option<String>);

impl fmt::Display for MaybeValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(value) => write!(f, "{value:?}"),
            None => f.write_str("nothing"),
        }
    }
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LostAppend {
                op,
                value,
                offset,
                node: Some(node),
                found,
            } => write!(
                f,
                "lost append: op {op} ({value:?}) acknowledged at offset {offset}, but node \
                 {node}'s final log holds {} there",
                MaybeValue(found)
            ),
            Self::LostAppend {
                op,
                value,
                offset,
                node: None,
                ..
            } => write!(
                f,
                "lost append: op {op} ({value:?}) acknowledged at offset {offset}, beyond every \
                 node's final log"
            ),
            Self::ConflictingValues {
                offset,
                observations,
            } => {
                write!(f, "conflicting values at offset {offset}:")?;
                for (i, o) in observations.iter().enumerate() {
                    let sep = if i == 0 { " " } else { "; " };
                    write!(f, "{sep}{:?} ({})", o.value, o.source)?;
                }
                Ok(())
            }
            Self::DuplicateValue {
                value,
                offsets,
                allowed,
            } => write!(
                f,
                "duplicate value {value:?} at offsets {offsets:?} ({allowed} append attempt(s) \
                 may have executed)"
            ),
            Self::RealTimeOrder {
                earlier,
                earlier_offset,
                later,
                later_offset,
            } => write!(
                f,
                "real-time order: op {earlier} (offset {earlier_offset}) completed before op \
                 {later} was invoked, yet op {later} got offset {later_offset}"
            ),
            Self::StaleRead {
                op,
                node,
                append,
                offset,
            } => write!(
                f,
                "stale read: linearizable read op {op} on {} invoked after append op {append} \
                 was acknowledged at offset {offset} did not return that offset",
                NodeName(node)
            ),
            Self::StaleBounds {
                op,
                node,
                next,
                append,
                offset,
            } => write!(
                f,
                "stale bounds: linearizable bounds op {op} on {} returned next {next}, after \
                 append op {append} was acknowledged at offset {offset}",
                NodeName(node)
            ),
            Self::ConsumerGap {
                consumer,
                node,
                expected,
                found,
            } => write!(
                f,
                "consumer gap: consumer {consumer} on {} expected offset {expected}, received \
                 {found}",
                NodeName(node)
            ),
            Self::ConsumerOutOfOrder {
                consumer,
                node,
                expected,
                found,
            } => write!(
                f,
                "consumer out of order: consumer {consumer} on {} expected offset {expected}, \
                 received {found}",
                NodeName(node)
            ),
            Self::FailedAppendVisible {
                op,
                value,
                offset,
                source,
            } => write!(
                f,
                "failed append visible: op {op} ({value:?}) failed, yet its value is at offset \
                 {offset} ({source})"
            ),
            Self::UnknownValue {
                value,
                offset,
                source,
            } => write!(
                f,
                "unknown value {value:?} at offset {offset} ({source}): no append wrote it"
            ),
            Self::FinalLogDivergence {
                node,
                reference,
                offset,
                value,
                reference_value,
                count,
            } => write!(
                f,
                "final logs diverge: node {node} holds {} at offset {offset} where node \
                 {reference} holds {} ({count} offset(s) differ)",
                MaybeValue(value),
                MaybeValue(reference_value)
            ),
            Self::Malformed {
                op: Some(op),
                reason,
            } => {
                write!(f, "malformed history: op {op}: {reason}")
            }
            Self::Malformed { op: None, reason } => write!(f, "malformed history: {reason}"),
        }
    }
}
