//! The real-time properties, checked in one sweep over invocation times: appends acknowledged
//! before another append is invoked get lower offsets (4), and linearizable reads and bounds
//! queries invoked after an acknowledgement see it (5).

use std::{collections::BTreeMap, ops::Bound};

use crate::{
    anomaly::Anomaly,
    history::{Consistency, History, OpId, OpKind, OpResult, Operation},
};

/// An `ok` append: when it was acknowledged, and where.
#[derive(Debug, Clone, Copy)]
struct Ack {
    complete_ns: u64,
    offset: u64,
    op: OpId,
}

/// Reports properties 4 and 5.
pub(super) fn check_order(history: &History, anomalies: &mut Vec<Anomaly>) {
    let mut acks: Vec<Ack> = Vec::new();
    // Operations whose invocation is checked against the acks completed before it.
    let mut probes: Vec<&Operation> = Vec::new();
    for op in history.ops.iter().filter(|op| op.result == OpResult::Ok) {
        match &op.op {
            OpKind::Append {
                offset: Some(offset),
                ..
            } => {
                acks.push(Ack {
                    complete_ns: op.complete_ns,
                    offset: *offset,
                    op: op.id,
                });
                probes.push(op);
            }
            OpKind::Read {
                consistency: Consistency::Linearizable,
                records: Some(_),
                ..
            }
            | OpKind::Bounds {
                consistency: Consistency::Linearizable,
                next: Some(_),
                ..
            } => probes.push(op),
            _ => {}
        }
    }
    acks.sort_unstable_by_key(|a| (a.complete_ns, a.op));
    probes.sort_unstable_by_key(|op| (op.invoke_ns, op.id));

    let mut done = 0;
    // The highest-offset ack so far, and every acked offset so far (for reads' ranges).
    let mut latest: Option<Ack> = None;
    let mut acked: BTreeMap<u64, OpId> = BTreeMap::new();
    for probe in probes {
        while done < acks.len() && acks[done].complete_ns < probe.invoke_ns {
            let ack = acks[done];
            if latest.is_none_or(|l| ack.offset > l.offset) {
                latest = Some(ack);
            }
            acked.entry(ack.offset).or_insert(ack.op);
            done += 1;
        }
        match &probe.op {
            OpKind::Append {
                offset: Some(offset),
                ..
            } => {
                if let Some(l) = latest.filter(|l| l.offset >= *offset) {
                    anomalies.push(Anomaly::RealTimeOrder {
                        earlier: l.op,
                        earlier_offset: l.offset,
                        later: probe.id,
                        later_offset: *offset,
                    });
                }
            }
            OpKind::Bounds {
                node,
                next: Some(next),
                ..
            } => {
                if let Some(l) = latest.filter(|l| l.offset >= *next) {
                    anomalies.push(Anomaly::StaleBounds {
                        op: probe.id,
                        node: node.clone(),
                        next: *next,
                        append: l.op,
                        offset: l.offset,
                    });
                }
            }
            OpKind::Read {
                node,
                from,
                to,
                records: Some(records),
                ..
            } => {
                // Every acknowledged offset in the read's range must be returned. Walk them
                // from the highest down and stop at the first missing one: a valid read costs
                // no more than its records, a stale one reports its most recent miss.
                let end = match *to {
                    Some(to) if to <= *from => continue,
                    Some(to) => Bound::Excluded(to),
                    None => Bound::Unbounded,
                };
                let mut returned: Vec<u64> = records.iter().map(|r| r.offset).collect();
                returned.sort_unstable();
                let missing = acked
                    .range((Bound::Included(*from), end))
                    .rev()
                    .find(|(offset, _)| returned.binary_search(offset).is_err());
                if let Some((&offset, &append)) = missing {
                    anomalies.push(Anomaly::StaleRead {
                        op: probe.id,
                        node: node.clone(),
                        append,
                        offset,
                    });
                }
            }
            _ => {}
        }
    }
}
