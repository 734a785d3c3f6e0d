//! Builders of hand-made histories for the checker's tests: operations, reads, final logs,
//! consumers, a small valid base history, and an assertion on the anomaly kinds reported.

use crate::{
    AnomalyKind as K, Consistency, ConsumerRun, FinalLog, History, OpKind, OpResult, Operation,
    Record, Report, check,
};

pub(crate) fn recs(records: &[(u64, &str)]) -> Vec<Record> {
    records.iter().map(|&(o, v)| Record::new(o, v)).collect()
}

pub(crate) fn op(id: u64, t: (u64, u64), result: OpResult, kind: OpKind) -> Operation {
    Operation {
        id,
        process: id % 4,
        invoke_ns: t.0,
        complete_ns: t.1,
        result,
        op: kind,
    }
}

pub(crate) fn append(
    id: u64,
    t: (u64, u64),
    result: OpResult,
    value: &str,
    offset: Option<u64>,
) -> Operation {
    let kind = OpKind::Append {
        value: value.into(),
        offset,
        retry_of: None,
    };
    op(id, t, result, kind)
}

pub(crate) fn ok(id: u64, t: (u64, u64), value: &str, offset: u64) -> Operation {
    append(id, t, OpResult::Ok, value, Some(offset))
}

pub(crate) fn retry(id: u64, t: (u64, u64), value: &str, offset: u64, retry_of: u64) -> Operation {
    let kind = OpKind::Append {
        value: value.into(),
        offset: Some(offset),
        retry_of: Some(retry_of),
    };
    op(id, t, OpResult::Ok, kind)
}

pub(crate) fn read(
    id: u64,
    t: (u64, u64),
    c: Consistency,
    node: &str,
    from: u64,
    got: &[(u64, &str)],
) -> Operation {
    let kind = OpKind::Read {
        node: Some(node.into()),
        consistency: c,
        from,
        to: None,
        records: Some(recs(got)),
    };
    op(id, t, OpResult::Ok, kind)
}

pub(crate) fn bounds(id: u64, t: (u64, u64), c: Consistency, next: u64) -> Operation {
    let kind = OpKind::Bounds {
        node: Some("n1".into()),
        consistency: c,
        lowest: Some(0),
        next: Some(next),
    };
    op(id, t, OpResult::Ok, kind)
}

pub(crate) fn final_log(
    node: &str,
    committed_next: Option<u64>,
    records: &[(u64, &str)],
) -> FinalLog {
    FinalLog {
        node: node.into(),
        lowest: 0,
        committed_next,
        records: recs(records),
    }
}

/// The same final log on three nodes.
pub(crate) fn finals(records: &[(u64, &str)]) -> Vec<FinalLog> {
    ["n1", "n2", "n3"]
        .iter()
        .map(|n| final_log(n, None, records))
        .collect()
}

pub(crate) fn consumer(start: Option<u64>, records: &[(u64, &str)]) -> ConsumerRun {
    ConsumerRun {
        consumer: 9,
        node: Some("n2".into()),
        start,
        records: recs(records),
    }
}

/// Three sequential appends a, b, c at offsets 0..3, on three nodes.
pub(crate) fn base() -> History {
    History {
        ops: vec![
            ok(1, (0, 10), "a", 0),
            ok(2, (20, 30), "b", 1),
            ok(3, (40, 50), "c", 2),
        ],
        consumers: vec![],
        final_logs: finals(&[(0, "a"), (1, "b"), (2, "c")]),
        end: Some(crate::history::EndOfRun { nodes: 3 }),
    }
}

pub(crate) fn kinds(report: &Report) -> Vec<K> {
    report.anomalies.iter().map(|a| a.kind()).collect()
}

#[track_caller]
pub(crate) fn assert_only(history: &History, expected: &[K]) -> Report {
    let report = check(history);
    assert_eq!(kinds(&report), expected, "{report}");
    report
}
