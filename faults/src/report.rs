//! The checker's verdict: operation counts, the anomalies found, a one-line summary and a
//! multi-line `Display` listing every anomaly.

use std::{collections::BTreeMap, fmt};

use serde::Serialize;

use crate::{
    anomaly::{Anomaly, AnomalyKind},
    history::OpResult,
};

/// Operations of one kind, by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ResultCounts {
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
}

impl ResultCounts {
    /// Counts one more operation with `result`.
    pub fn add(&mut self, result: OpResult) {
        match result {
            OpResult::Ok => self.ok += 1,
            OpResult::Fail => self.fail += 1,
            OpResult::Info => self.info += 1,
        }
    }

    pub fn total(&self) -> u64 {
        self.ok + self.fail + self.info
    }
}

impl std::ops::Add for ResultCounts {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            ok: self.ok + other.ok,
            fail: self.fail + other.fail,
            info: self.info + other.info,
        }
    }
}

/// What the history held.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub appends: ResultCounts,
    /// Appends whose `retry_of` is set.
    pub retries: u64,
    pub reads: ResultCounts,
    pub bounds: ResultCounts,
    pub consumers: u64,
    pub consumer_records: u64,
    pub final_logs: u64,
}

impl Counts {
    /// All operations (appends, reads, bounds queries) by result.
    pub fn ops(&self) -> ResultCounts {
        self.appends + self.reads + self.bounds
    }
}

/// The result of checking a history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub counts: Counts,
    pub anomalies: Vec<Anomaly>,
}

impl Report {
    /// Whether no anomaly was found.
    pub fn is_valid(&self) -> bool {
        self.anomalies.is_empty()
    }

    /// `ops: X ok, Y fail, Z info, anomalies: N`.
    pub fn summary(&self) -> String {
        let ops = self.counts.ops();
        format!(
            "ops: {} ok, {} fail, {} info, anomalies: {}",
            ops.ok,
            ops.fail,
            ops.info,
            self.anomalies.len()
        )
    }

    /// How many anomalies of each kind were found.
    pub fn kinds(&self) -> BTreeMap<AnomalyKind, usize> {
        let mut kinds = BTreeMap::new();
        for anomaly in &self.anomalies {
            *kinds.entry(anomaly.kind()).or_insert(0) += 1;
        }
        kinds
    }

    /// Whether some anomaly is of `kind`.
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.anomalies.iter().any(|a| a.kind() == kind)
    }
}

impl fmt::Display for Report {
    /// The summary, the per-kind details of the counts, then one line per anomaly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.counts;
        writeln!(f, "{}", self.summary())?;
        writeln!(
            f,
            "  appends: {} ok, {} fail, {} info ({} retries); reads: {} ok, {} fail, {} info; \
             bounds: {} ok, {} fail, {} info; consumers: {} ({} records); final logs: {}",
            c.appends.ok,
            c.appends.fail,
            c.appends.info,
            c.retries,
            c.reads.ok,
            c.reads.fail,
            c.reads.info,
            c.bounds.ok,
            c.bounds.fail,
            c.bounds.info,
            c.consumers,
            c.consumer_records,
            c.final_logs
        )?;
        for anomaly in &self.anomalies {
            writeln!(f, "  - {anomaly}")?;
        }
        Ok(())
    }
}
