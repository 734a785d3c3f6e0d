//! The properties over every place a value was seen at an offset (acknowledgements, reads,
//! consumers, final logs below their horizon): one value per offset (2), one offset per value
//! unless retried (3), no failed append visible (7), no value that nobody appended.

use std::collections::HashMap;

use super::{Attempts, FinalIndex};
use crate::{
    anomaly::{Anomaly, Observation, Source},
    history::{History, OpKind, OpResult},
};

/// Where a value was seen, by index into the history (made an owned [`Source`] only when
/// reported).
#[derive(Debug, Clone, Copy)]
enum SourceRef {
    Ack(usize),
    Read(usize),
    Consumer(usize),
    Final(usize),
}

impl SourceRef {
    fn to_source(self, history: &History) -> Source {
        match self {
            Self::Ack(i) => Source::Ack {
                op: history.ops[i].id,
            },
            Self::Read(i) => Source::Read {
                op: history.ops[i].id,
                node: history.ops[i].node().map(str::to_owned),
            },
            Self::Consumer(i) => Source::Consumer {
                consumer: history.consumers[i].consumer,
                node: history.consumers[i].node.clone(),
            },
            Self::Final(i) => Source::FinalLog {
                node: history.final_logs[i].node.clone(),
            },
        }
    }
}

/// The distinct values seen at one offset, each with its first source.
#[derive(Debug)]
struct OffsetSlot<'h> {
    values: Vec<(&'h str, SourceRef)>,
}

/// The distinct offsets one value was seen at, each with its first source.
#[derive(Debug)]
struct ValueSlot {
    offsets: Vec<(u64, SourceRef)>,
}

#[derive(Debug, Default)]
struct Observations<'h> {
    by_offset: HashMap<u64, OffsetSlot<'h>>,
    by_value: HashMap<&'h str, ValueSlot>,
}

impl<'h> Observations<'h> {
    fn see(&mut self, offset: u64, value: &'h str, source: SourceRef) {
        let slot = self
            .by_offset
            .entry(offset)
            .or_insert_with(|| OffsetSlot { values: Vec::new() });
        if !slot.values.iter().any(|&(v, _)| v == value) {
            slot.values.push((value, source));
        }
        let slot = self.by_value.entry(value).or_insert_with(|| ValueSlot {
            offsets: Vec::new(),
        });
        if !slot.offsets.iter().any(|&(o, _)| o == offset) {
            slot.offsets.push((offset, source));
        }
    }
}

/// Records every observation, then reports properties 2, 3 and 7 and unknown values.
pub(super) fn check_observations(
    history: &History,
    attempts: &Attempts<'_>,
    finals: &[FinalIndex<'_>],
    anomalies: &mut Vec<Anomaly>,
) {
    let seen = collect(history, finals);
    conflicting_values(history, &seen, anomalies);
    values(history, attempts, &seen, anomalies);
}

fn collect<'h>(history: &'h History, finals: &[FinalIndex<'h>]) -> Observations<'h> {
    let mut seen = Observations::default();
    for (i, op) in history.ops.iter().enumerate() {
        if op.result != OpResult::Ok {
            continue;
        }
        match &op.op {
            OpKind::Append {
                value,
                offset: Some(offset),
                ..
            } => seen.see(*offset, value, SourceRef::Ack(i)),
            OpKind::Read {
                records: Some(records),
                ..
            } => {
                for r in records {
                    seen.see(r.offset, &r.value, SourceRef::Read(i));
                }
            }
            _ => {}
        }
    }
    for (i, run) in history.consumers.iter().enumerate() {
        for r in &run.records {
            seen.see(r.offset, &r.value, SourceRef::Consumer(i));
        }
    }
    for (i, index) in finals.iter().enumerate() {
        // Only the checked range: an uncommitted tail may legitimately differ.
        for r in &index.log.records {
            if index.covers(r.offset) {
                seen.see(r.offset, &r.value, SourceRef::Final(i));
            }
        }
    }
    seen
}

/// (2) No offset shows two different values.
fn conflicting_values(history: &History, seen: &Observations<'_>, anomalies: &mut Vec<Anomaly>) {
    let mut conflicts: Vec<(u64, &OffsetSlot<'_>)> = seen
        .by_offset
        .iter()
        .filter(|(_, slot)| slot.values.len() > 1)
        .map(|(&offset, slot)| (offset, slot))
        .collect();
    conflicts.sort_unstable_by_key(|&(offset, _)| offset);
    for (offset, slot) in conflicts {
        let observations = slot
            .values
            .iter()
            .map(|&(value, source)| Observation {
                value: value.to_owned(),
                source: source.to_source(history),
            })
            .collect();
        anomalies.push(Anomaly::ConflictingValues {
            offset,
            observations,
        });
    }
}

/// (3) A value is at no more offsets than its appends that may have executed; (7) a value
/// whose appends all failed is nowhere; and every value seen was appended by someone.
fn values(
    history: &History,
    attempts: &Attempts<'_>,
    seen: &Observations<'_>,
    anomalies: &mut Vec<Anomaly>,
) {
    let mut values: Vec<(&str, &ValueSlot)> = seen.by_value.iter().map(|(&v, s)| (v, s)).collect();
    values.sort_unstable_by_key(|&(value, _)| value);
    for (value, slot) in values {
        let (offset, source) = slot.offsets[0];
        let Some(ops) = attempts.get(value) else {
            anomalies.push(Anomaly::UnknownValue {
                value: value.to_owned(),
                offset,
                source: source.to_source(history),
            });
            continue;
        };
        let allowed = ops
            .iter()
            .filter(|&&i| history.ops[i].result != OpResult::Fail)
            .count();
        if allowed == 0 {
            anomalies.push(Anomaly::FailedAppendVisible {
                op: history.ops[ops[0]].id,
                value: value.to_owned(),
                offset,
                source: source.to_source(history),
            });
        } else if slot.offsets.len() > allowed {
            let mut offsets: Vec<u64> = slot.offsets.iter().map(|&(o, _)| o).collect();
            offsets.sort_unstable();
            anomalies.push(Anomaly::DuplicateValue {
                value: value.to_owned(),
                offsets,
                allowed,
            });
        }
    }
}
