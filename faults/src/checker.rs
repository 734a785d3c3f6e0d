//! The history checker: [`check`] validates a [`History`] and tests every property, returning
//! a [`Report`]. This module owns the driver, the history's validation, the final-log
//! properties (acknowledged appends survive, nodes agree) and consumer contiguity; the
//! per-offset/per-value properties live in `observe`, the real-time ones in `order`.
//!
//! Everything is hash maps, sorted vectors and one sweep: O(n log n) in the history's size
//! (operations plus records returned).

mod observe;
mod order;

use std::collections::{HashMap, HashSet};

use crate::{
    anomaly::Anomaly,
    history::{FinalLog, History, OpKind, OpResult, Operation},
    report::{Counts, Report},
};

/// Checks every property of `history` (see the crate's README) and reports the anomalies.
pub fn check(history: &History) -> Report {
    let mut anomalies = Vec::new();
    let counts = count(history);
    let attempts = validate(history, &mut anomalies);
    let finals: Vec<FinalIndex<'_>> = history.final_logs.iter().map(FinalIndex::new).collect();

    lost_appends(history, &finals, &mut anomalies);
    observe::check_observations(history, &attempts, &finals, &mut anomalies);
    order::check_order(history, &mut anomalies);
    consumers(history, &mut anomalies);
    divergence(&finals, &mut anomalies);

    Report { counts, anomalies }
}

/// Appends by value: the indexes (in `history.ops`) of every append of each value.
pub(crate) type Attempts<'h> = HashMap<&'h str, Vec<usize>>;

/// A final log indexed by offset, restricted to its checked range `lowest..horizon`.
#[derive(Debug)]
pub(crate) struct FinalIndex<'h> {
    pub(crate) log: &'h FinalLog,
    pub(crate) horizon: u64,
    pub(crate) values: HashMap<u64, &'h str>,
}

impl<'h> FinalIndex<'h> {
    fn new(log: &'h FinalLog) -> Self {
        let horizon = log.horizon();
        let values = log
            .records
            .iter()
            .filter(|r| r.offset >= log.lowest && r.offset < horizon)
            .map(|r| (r.offset, r.value.as_str()))
            .collect();
        Self {
            log,
            horizon,
            values,
        }
    }

    fn covers(&self, offset: u64) -> bool {
        self.log.lowest <= offset && offset < self.horizon
    }
}

fn count(history: &History) -> Counts {
    let mut counts = Counts::default();
    for op in &history.ops {
        match &op.op {
            OpKind::Append { retry_of, .. } => {
                counts.appends.add(op.result);
                counts.retries += u64::from(retry_of.is_some());
            }
            OpKind::Read { .. } => counts.reads.add(op.result),
            OpKind::Bounds { .. } => counts.bounds.add(op.result),
        }
    }
    counts.consumers = history.consumers.len() as u64;
    counts.consumer_records = history
        .consumers
        .iter()
        .map(|c| c.records.len() as u64)
        .sum();
    counts.final_logs = history.final_logs.len() as u64;
    counts
}

fn malformed(anomalies: &mut Vec<Anomaly>, op: Option<&Operation>, reason: String) {
    anomalies.push(Anomaly::Malformed {
        op: op.map(|o| o.id),
        reason,
    });
}

/// Reports what makes the history itself unusable and indexes appends by value.
fn validate<'h>(history: &'h History, anomalies: &mut Vec<Anomaly>) -> Attempts<'h> {
    let mut by_id = HashMap::with_capacity(history.ops.len());
    let mut attempts: Attempts<'h> = HashMap::new();
    for (index, op) in history.ops.iter().enumerate() {
        if by_id.insert(op.id, index).is_some() {
            malformed(anomalies, Some(op), "duplicate operation id".into());
        }
        if op.complete_ns < op.invoke_ns {
            malformed(
                anomalies,
                Some(op),
                "completed before it was invoked".into(),
            );
        }
        let ok = op.result == OpResult::Ok;
        match &op.op {
            OpKind::Append { value, offset, .. } => {
                attempts.entry(value.as_str()).or_default().push(index);
                if ok && offset.is_none() {
                    malformed(anomalies, Some(op), "ok append without an offset".into());
                }
            }
            OpKind::Read { records: None, .. } if ok => {
                malformed(anomalies, Some(op), "ok read without records".into());
            }
            OpKind::Bounds { next: None, .. } if ok => {
                malformed(anomalies, Some(op), "ok bounds query without next".into());
            }
            _ => {}
        }
    }
    // Retries must name an earlier append of the same value; otherwise values are unique.
    for op in &history.ops {
        let OpKind::Append {
            value,
            retry_of: Some(target),
            ..
        } = &op.op
        else {
            continue;
        };
        let reason = match by_id.get(target).map(|&i| &history.ops[i]) {
            None => Some(format!("retry_of names unknown op {target}")),
            Some(t) => match t.append_value() {
                None => Some(format!(
                    "retry_of names op {target}, which is not an append"
                )),
                Some(v) if v != value => Some(format!(
                    "retry_of names op {target}, which appended {v:?}, not {value:?}"
                )),
                Some(_) => None,
            },
        };
        if let Some(reason) = reason {
            malformed(anomalies, Some(op), reason);
        }
    }
    let mut reused: Vec<(&str, usize)> = attempts
        .iter()
        .map(|(value, ops)| {
            let originals = ops
                .iter()
                .filter(|&&i| is_original(&history.ops[i]))
                .count();
            (*value, originals)
        })
        .filter(|&(_, originals)| originals > 1)
        .collect();
    reused.sort_unstable();
    for (value, originals) in reused {
        malformed(
            anomalies,
            None,
            format!("value {value:?} is appended by {originals} operations not linked by retry_of"),
        );
    }
    let mut nodes = HashSet::new();
    for log in &history.final_logs {
        if !nodes.insert(log.node.as_str()) {
            malformed(
                anomalies,
                None,
                format!("two final logs for node {}", log.node),
            );
        }
    }
    attempts
}

fn is_original(op: &Operation) -> bool {
    matches!(op.op, OpKind::Append { retry_of: None, .. })
}

/// (1) Every `ok` append is in every final log that covers its offset, and some final log
/// reaches it (unless retention removed it everywhere). A history without final logs says
/// nothing about what survived — unless it is complete (its end entry): then no node answered
/// after healing, and every acknowledged append is lost.
fn lost_appends(history: &History, finals: &[FinalIndex<'_>], anomalies: &mut Vec<Anomaly>) {
    if finals.is_empty() && history.end.is_none() {
        return;
    }
    for op in history.ops.iter().filter(|op| op.result == OpResult::Ok) {
        let OpKind::Append {
            value,
            offset: Some(offset),
            ..
        } = &op.op
        else {
            continue;
        };
        let offset = *offset;
        let mut reached = false;
        for index in finals {
            reached |= index.log.lowest > offset;
            if !index.covers(offset) {
                continue;
            }
            reached = true;
            let found = index.values.get(&offset).copied();
            if found != Some(value.as_str()) {
                anomalies.push(Anomaly::LostAppend {
                    op: op.id,
                    value: value.clone(),
                    offset,
                    node: Some(index.log.node.clone()),
                    found: found.map(str::to_owned),
                });
            }
        }
        if !reached {
            anomalies.push(Anomaly::LostAppend {
                op: op.id,
                value: value.clone(),
                offset,
                node: None,
                found: None,
            });
        }
    }
}

/// (6) Each consumer's records are contiguous from its start, in order.
fn consumers(history: &History, anomalies: &mut Vec<Anomaly>) {
    for run in &history.consumers {
        let Some(first) = run.records.first() else {
            continue;
        };
        let mut expected = run.start.unwrap_or(first.offset);
        for record in &run.records {
            let found = record.offset;
            if found > expected {
                anomalies.push(Anomaly::ConsumerGap {
                    consumer: run.consumer,
                    node: run.node.clone(),
                    expected,
                    found,
                });
            } else if found < expected {
                anomalies.push(Anomaly::ConsumerOutOfOrder {
                    consumer: run.consumer,
                    node: run.node.clone(),
                    expected,
                    found,
                });
            }
            expected = found + 1;
        }
    }
}

/// (8) Every final log equals the reference (the first node by name) on the offsets all of
/// them cover: from the highest `lowest` to the lowest horizon.
fn divergence(finals: &[FinalIndex<'_>], anomalies: &mut Vec<Anomaly>) {
    let mut sorted: Vec<&FinalIndex<'_>> = finals.iter().collect();
    sorted.sort_by(|a, b| a.log.node.cmp(&b.log.node));
    let Some((reference, others)) = sorted.split_first() else {
        return;
    };
    let lo = sorted.iter().map(|f| f.log.lowest).max().unwrap_or(0);
    // Past the last record anywhere every log holds nothing: stop there too, so a bogus huge
    // `committed_next` cannot make this loop long.
    let last = sorted
        .iter()
        .filter_map(|f| f.values.keys().max())
        .max()
        .map_or(0, |&o| o + 1);
    let hi = sorted
        .iter()
        .map(|f| f.horizon)
        .min()
        .unwrap_or(0)
        .min(last);
    for other in others {
        let mut first = None;
        let mut count = 0;
        for offset in lo..hi {
            let ours = other.values.get(&offset).copied();
            let theirs = reference.values.get(&offset).copied();
            if ours != theirs {
                count += 1;
                first.get_or_insert((offset, ours, theirs));
            }
        }
        if let Some((offset, value, reference_value)) = first {
            anomalies.push(Anomaly::FinalLogDivergence {
                node: other.log.node.clone(),
                reference: reference.log.node.clone(),
                offset,
                value: value.map(str::to_owned),
                reference_value: reference_value.map(str::to_owned),
                count,
            });
        }
    }
}
