//! The operation history model: what a fault-injection run records (client operations with
//! their invoke/complete times and outcomes, consumer runs, and every node's final log read
//! after healing), as the serde types that are written one JSON object per line.
//!
//! Times are monotonic nanoseconds since the run's start ([`RunClock`]). An operation is
//! recorded once, when it completes, with both times.

use std::time::Instant;

use serde::{Deserialize, Serialize};

/// Identifies one operation; unique within a history.
pub type OpId = u64;
/// Identifies a client process (one sequential client: at most one operation in flight).
pub type ProcessId = u64;
/// A record's offset in the commit log.
pub type Offset = u64;

/// The monotonic clock of one run: nanoseconds since [`RunClock::start`].
#[derive(Debug, Clone, Copy)]
pub struct RunClock {
    start: Instant,
}

impl RunClock {
    /// Starts the run's clock now.
    pub fn start() -> Self {
        Self {
            start: Instant::now(),
        }
    }

    /// Nanoseconds since the start (saturating at `u64::MAX`, some 584 years).
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// How an operation ended, as the client saw it (Jepsen's `:ok` / `:fail` / `:info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpResult {
    /// Completed; the result fields are filled in.
    Ok,
    /// Certainly not executed (e.g. rejected before reaching the leader).
    Fail,
    /// Outcome unknown (timeout, connection lost): it may or may not have taken effect.
    Info,
}

/// The consistency a read or bounds query asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Served as of a point between invocation and completion (leader read / read index).
    Linearizable,
    /// Served from the node's local state; may be stale.
    Local,
}

/// One record of the log: its offset and value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    pub offset: Offset,
    pub value: String,
}

impl Record {
    pub fn new(offset: Offset, value: impl Into<String>) -> Self {
        Self {
            offset,
            value: value.into(),
        }
    }
}

/// What an operation did, with its result data (present when the result is `ok`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "f", rename_all = "snake_case")]
pub enum OpKind {
    /// Appends `value`, unique in the run except for retries (`retry_of`, same value).
    Append {
        value: String,
        /// The acknowledged offset, when `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<Offset>,
        /// The earlier append (typically `info`) this one retries, with the same value.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_of: Option<OpId>,
    },
    /// Reads the offsets `from..to` (`to` exclusive, `None` = to the end) from a node.
    Read {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        consistency: Consistency,
        from: Offset,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Offset>,
        /// The records returned, when `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        records: Option<Vec<Record>>,
    },
    /// Asks a node for the log's bounds.
    Bounds {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        consistency: Consistency,
        /// The lowest retained offset, when `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lowest: Option<Offset>,
        /// The offset the next append would get, when `ok`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<Offset>,
    },
}

/// One client operation, recorded at completion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Operation {
    pub id: OpId,
    /// The client that ran it.
    pub process: ProcessId,
    /// When the client invoked it (ns since the run's start).
    pub invoke_ns: u64,
    /// When the client saw it end, or gave up on it for `info` (ns since the run's start).
    pub complete_ns: u64,
    pub result: OpResult,
    pub op: OpKind,
}

impl Operation {
    /// The appended value, for appends.
    pub fn append_value(&self) -> Option<&str> {
        match &self.op {
            OpKind::Append { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The node the operation was sent to, when recorded.
    pub fn node(&self) -> Option<&str> {
        match &self.op {
            OpKind::Append { .. } => None,
            OpKind::Read { node, .. } | OpKind::Bounds { node, .. } => node.as_deref(),
        }
    }
}

/// What one consumer observed: records read in sequence (possibly over many polls), which
/// must be contiguous from `start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerRun {
    /// The consumer's process id.
    pub consumer: ProcessId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The offset it asked to start from (`None`: the first record's offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Offset>,
    pub records: Vec<Record>,
}

/// One node's full log, read after healing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalLog {
    pub node: String,
    /// The node's lowest retained offset (0 without retention); lower offsets are not checked.
    #[serde(default)]
    pub lowest: Offset,
    /// One past the last committed offset (what a linearizable bounds query calls `next`), if
    /// known. Offsets below it are committed; records at or above it are an uncommitted tail
    /// and are not checked. `None`: the whole log is taken as committed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committed_next: Option<Offset>,
    pub records: Vec<Record>,
}

impl FinalLog {
    /// The exclusive end of the checked range: `committed_next`, else one past the last record
    /// (or `lowest` when empty).
    pub fn horizon(&self) -> Offset {
        self.committed_next.unwrap_or_else(|| {
            self.records
                .iter()
                .map(|r| r.offset + 1)
                .max()
                .unwrap_or(self.lowest)
        })
    }
}

/// The last line of a complete run: the final logs above it are all there is. Without it (a
/// run that crashed), the checker does not call appends lost for want of final logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOfRun {
    /// Nodes in the cluster (final logs come only from those that answered).
    pub nodes: usize,
}

/// One line of a history file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Entry {
    Op(Operation),
    Consumer(ConsumerRun),
    #[serde(rename = "final")]
    FinalLog(FinalLog),
    End(EndOfRun),
}

/// A whole run's history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    pub ops: Vec<Operation>,
    pub consumers: Vec<ConsumerRun>,
    pub final_logs: Vec<FinalLog>,
    pub end: Option<EndOfRun>,
}

impl History {
    /// Adds one entry to the history.
    pub fn push(&mut self, entry: Entry) {
        match entry {
            Entry::Op(op) => self.ops.push(op),
            Entry::Consumer(run) => self.consumers.push(run),
            Entry::FinalLog(log) => self.final_logs.push(log),
            Entry::End(end) => self.end = Some(end),
        }
    }

    /// The history as entries, in file order (operations, consumers, final logs, end).
    pub fn entries(&self) -> impl Iterator<Item = EntryRef<'_>> {
        self.ops
            .iter()
            .map(EntryRef::Op)
            .chain(self.consumers.iter().map(EntryRef::Consumer))
            .chain(self.final_logs.iter().map(EntryRef::FinalLog))
            .chain(self.end.iter().map(EntryRef::End))
    }
}

impl FromIterator<Entry> for History {
    fn from_iter<I: IntoIterator<Item = Entry>>(iter: I) -> Self {
        let mut history = Self::default();
        iter.into_iter().for_each(|entry| history.push(entry));
        history
    }
}

/// A borrowed [`Entry`], serialized identically (for writing without cloning).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryRef<'a> {
    Op(&'a Operation),
    Consumer(&'a ConsumerRun),
    #[serde(rename = "final")]
    FinalLog(&'a FinalLog),
    End(&'a EndOfRun),
}
