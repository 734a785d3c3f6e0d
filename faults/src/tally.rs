//! The run's table: per fault kind, how often it was injected, the operations invoked while it
//! was active or settling (until the next fault, at most [`SETTLE_NS`] after its heal) by
//! result, and the anomalies involving those operations.

use std::collections::HashMap;
use std::fmt::Write;

use crate::anomaly::{Anomaly, Source};
use crate::history::{History, OpId};
use crate::nemesis::{FaultEvent, KINDS};
use crate::report::{Report, ResultCounts};

/// How long after a heal its operations still count for the fault.
pub const SETTLE_NS: u64 = 5_000_000_000;

/// Operations invoked outside every fault's window.
pub const NO_FAULT: &str = "(no fault)";
/// Anomalies that name no operation (consumers, final logs).
pub const WHOLE_RUN: &str = "(whole run)";

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub count: usize,
    pub ops: ResultCounts,
    pub anomalies: usize,
}

/// The operations an anomaly names (the first one decides its row).
pub fn anomaly_ops(anomaly: &Anomaly, history: &History) -> Vec<OpId> {
    match anomaly {
        Anomaly::LostAppend { op, .. }
        | Anomaly::StaleRead { op, .. }
        | Anomaly::StaleBounds { op, .. }
        | Anomaly::FailedAppendVisible { op, .. }
        | Anomaly::Malformed { op: Some(op), .. } => vec![*op],
        Anomaly::RealTimeOrder { earlier, later, .. } => vec![*later, *earlier],
        Anomaly::ConflictingValues { observations, .. } => observations
            .iter()
            .filter_map(|o| match o.source {
                Source::Ack { op } | Source::Read { op, .. } => Some(op),
                _ => None,
            })
            .collect(),
        Anomaly::DuplicateValue { value, .. } => history
            .ops
            .iter()
            .filter(|o| o.append_value() == Some(value.as_str()))
            .map(|o| o.id)
            .collect(),
        _ => Vec::new(),
    }
}

/// The table's rows: every kind of [`KINDS`], then [`NO_FAULT`], then [`WHOLE_RUN`] when some
/// anomaly names no operation.
pub fn tally(history: &History, report: &Report, events: &[FaultEvent]) -> Vec<Row> {
    let mut rows: Vec<Row> = KINDS
        .iter()
        .map(|k| Row {
            name: (*k).to_owned(),
            count: events.iter().filter(|e| e.kind == *k).count(),
            ops: ResultCounts::default(),
            anomalies: 0,
        })
        .collect();
    rows.push(Row {
        name: NO_FAULT.to_owned(),
        count: 0,
        ops: ResultCounts::default(),
        anomalies: 0,
    });
    let no_fault = rows.len() - 1;
    let row_of_kind = |kind: &str| KINDS.iter().position(|k| *k == kind).unwrap_or(no_fault);
    // Windows sorted by start: [start, min(end + settle, next start)).
    let mut sorted: Vec<&FaultEvent> = events.iter().collect();
    sorted.sort_by_key(|e| e.start_ns);
    let windows: Vec<(u64, u64, usize)> = sorted
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let next = sorted.get(i + 1).map_or(u64::MAX, |n| n.start_ns);
            let end = e.end_ns.saturating_add(SETTLE_NS).min(next);
            (e.start_ns, end, row_of_kind(e.kind))
        })
        .collect();
    let row_at = |t: u64| {
        let i = windows.partition_point(|w| w.0 <= t);
        match i.checked_sub(1).map(|i| windows[i]) {
            Some((start, end, row)) if start <= t && t < end => row,
            _ => no_fault,
        }
    };
    let mut op_row = HashMap::new();
    for op in &history.ops {
        let row = row_at(op.invoke_ns);
        rows[row].ops.add(op.result);
        op_row.insert(op.id, row);
    }
    let mut whole_run = 0;
    for anomaly in &report.anomalies {
        match anomaly_ops(anomaly, history)
            .iter()
            .find_map(|id| op_row.get(id))
        {
            Some(&row) => rows[row].anomalies += 1,
            None => whole_run += 1,
        }
    }
    if whole_run > 0 {
        rows.push(Row {
            name: WHOLE_RUN.to_owned(),
            count: 0,
            ops: ResultCounts::default(),
            anomalies: whole_run,
        });
    }
    rows
}

/// The table as text, with a total line.
pub fn render(rows: &[Row]) -> String {
    let line = |out: &mut String, row: &Row| {
        let _ = writeln!(
            out,
            "{:<22} {:>5} {:>8} {:>7} {:>7} {:>9}",
            row.name, row.count, row.ops.ok, row.ops.fail, row.ops.info, row.anomalies
        );
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<22} {:>5} {:>8} {:>7} {:>7} {:>9}",
        "fault", "count", "ok", "fail", "info", "anomalies"
    );
    let mut total = Row {
        name: "total".to_owned(),
        count: 0,
        ops: ResultCounts::default(),
        anomalies: 0,
    };
    for row in rows {
        line(&mut out, row);
        total.count += row.count;
        total.ops = total.ops + row.ops;
        total.anomalies += row.anomalies;
    }
    line(&mut out, &total);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{OpKind, OpResult, Operation};

    fn append(id: u64, at_s: u64, result: OpResult) -> Operation {
        Operation {
            id,
            process: 1,
            invoke_ns: at_s * 1_000_000_000,
            complete_ns: at_s * 1_000_000_000 + 1,
            result,
            op: OpKind::Append {
                value: format!("v{id}"),
                offset: (result == OpResult::Ok).then_some(id),
                retry_of: None,
            },
        }
    }

    fn event(kind: &'static str, start_s: u64, end_s: u64) -> FaultEvent {
        FaultEvent {
            kind,
            start_ns: start_s * 1_000_000_000,
            end_ns: end_s * 1_000_000_000,
            detail: String::new(),
        }
    }

    #[test]
    fn operations_and_anomalies_land_in_their_fault_rows() {
        let history = History {
            ops: vec![
                append(1, 1, OpResult::Ok),    // before any fault
                append(2, 11, OpResult::Info), // kill
                append(3, 16, OpResult::Ok),   // kill, settling
                append(4, 18, OpResult::Fail), // pause (starts at 18)
                append(5, 40, OpResult::Ok),   // after the settle time of the pause
            ],
            ..History::default()
        };
        let events = [event("kill", 10, 12), event("pause-leader", 18, 20)];
        let report = Report {
            anomalies: vec![
                Anomaly::LostAppend {
                    op: 3,
                    value: "v3".into(),
                    offset: 3,
                    node: None,
                    found: None,
                },
                Anomaly::ConsumerGap {
                    consumer: 9,
                    node: None,
                    expected: 1,
                    found: 2,
                },
            ],
            ..Report::default()
        };
        let rows = tally(&history, &report, &events);
        let row = |name: &str| rows.iter().find(|r| r.name == name).unwrap().clone();
        assert_eq!(row("kill").count, 1);
        assert_eq!((row("kill").ops.ok, row("kill").ops.info), (1, 1));
        assert_eq!(row("kill").anomalies, 1);
        assert_eq!(row("pause-leader").ops.fail, 1);
        assert_eq!(row(NO_FAULT).ops.ok, 2);
        assert_eq!(row(WHOLE_RUN).anomalies, 1);
        assert_eq!(row("flap").count, 0);
        let text = render(&rows);
        assert!(text.starts_with("fault "));
        let total = text.lines().last().unwrap();
        assert_eq!(
            total.split_whitespace().collect::<Vec<_>>(),
            ["total", "2", "3", "1", "1", "2"]
        );
    }
}
