//! The checker against hand-made histories: a valid one passes, and each property has a bad
//! history rejected with exactly the expected anomaly kind.

use crate::{
    AnomalyKind as K, Consistency, History, OpKind, OpResult, Record, check, test_support::*,
};

#[test]
fn a_valid_history_has_no_anomalies() {
    use Consistency::{Linearizable, Local};
    let mut h = base();
    h.ops.extend([
        // Concurrent appends may take either order.
        ok(4, (60, 100), "e", 4),
        ok(5, (70, 90), "d", 3),
        // An info append that took effect, one that did not; a failed one that did not.
        append(6, (110, 200), OpResult::Info, "i", None),
        append(7, (110, 200), OpResult::Info, "j", None),
        append(8, (110, 120), OpResult::Fail, "f", None),
        // A read concurrent with the last ack may miss it; later linearizable ones see it.
        read(
            10,
            (80, 85),
            Linearizable,
            "n1",
            0,
            &[(0, "a"), (1, "b"), (2, "c")],
        ),
        read(
            11,
            (210, 220),
            Linearizable,
            "n2",
            3,
            &[(3, "d"), (4, "e"), (5, "i")],
        ),
        read(12, (210, 220), Local, "n3", 0, &[(0, "a")]),
        bounds(13, (210, 220), Linearizable, 6),
        bounds(14, (210, 220), Local, 2),
        op(
            15,
            (210, 220),
            OpResult::Info,
            OpKind::Bounds {
                node: None,
                consistency: Linearizable,
                lowest: None,
                next: None,
            },
        ),
    ]);
    h.consumers = vec![consumer(Some(1), &[(1, "b"), (2, "c"), (3, "d")])];
    let log = [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e"), (5, "i")];
    h.final_logs = finals(&log);
    // A node with an uncommitted, different tail is only checked below its commit point.
    h.final_logs[2] = final_log(
        "n3",
        Some(6),
        &[
            (0, "a"),
            (1, "b"),
            (2, "c"),
            (3, "d"),
            (4, "e"),
            (5, "i"),
            (6, "j"),
        ],
    );
    let report = assert_only(&h, &[]);
    assert!(report.is_valid());
    let c = &report.counts;
    assert_eq!((c.appends.ok, c.appends.fail, c.appends.info), (5, 1, 2));
    assert_eq!((c.reads.ok, c.bounds.ok, c.bounds.info), (3, 2, 1));
    assert_eq!((c.consumers, c.consumer_records, c.final_logs), (1, 3, 3));
    assert_eq!(report.summary(), "ops: 10 ok, 1 fail, 3 info, anomalies: 0");
}

#[test]
fn p1_ok_append_beyond_every_final_log_is_lost() {
    let mut h = base();
    h.ops.push(ok(4, (60, 70), "d", 3));
    let report = assert_only(&h, &[K::LostAppend]);
    assert!(
        report.anomalies[0]
            .to_string()
            .contains("op 4 (\"d\") acknowledged at offset 3")
    );
}

#[test]
fn p1_no_node_answering_after_a_complete_run_loses_every_ok_append() {
    // Found by the negative control: nodes that lost their Raft log refused to start, no final
    // log was read, and the checker, which skipped property 1 without final logs, passed.
    let mut h = base();
    h.final_logs.clear();
    assert_only(&h, &[K::LostAppend; 3]);
    // A history cut short (no end entry, e.g. a crashed harness) says nothing about losses.
    h.end = None;
    assert_only(&h, &[]);
}

#[test]
fn p1_ok_append_missing_below_commit_is_lost_on_each_node() {
    let mut h = base();
    h.ops.push(ok(4, (60, 70), "d", 3));
    for log in &mut h.final_logs {
        log.committed_next = Some(4);
    }
    assert_only(&h, &[K::LostAppend; 3]);
}

#[test]
fn p2_two_values_at_one_offset_across_two_nodes() {
    use Consistency::Local;
    let mut h = base();
    h.ops.extend([
        append(4, (60, 70), OpResult::Info, "i", None),
        read(5, (80, 90), Local, "n1", 1, &[(1, "b")]),
        read(6, (80, 90), Local, "n2", 1, &[(1, "i")]),
    ]);
    let report = assert_only(&h, &[K::ConflictingValues]);
    let text = report.anomalies[0].to_string();
    assert!(
        text.contains("offset 1") && text.contains("\"i\" (read op 6 on node n2)"),
        "{text}"
    );
}

#[test]
fn p3_duplicate_value_without_retry_is_rejected() {
    let mut h = base();
    h.ops.push(append(4, (60, 70), OpResult::Info, "d", None));
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "d")]);
    assert_only(&h, &[K::DuplicateValue]);
    // The same duplicate, when the info append was retried, is accepted.
    h.ops.push(retry(5, (80, 90), "d", 4, 4));
    assert_only(&h, &[]);
}

#[test]
fn p3_duplicate_value_of_one_ok_append_is_rejected() {
    let mut h = base();
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "b")]);
    assert_only(&h, &[K::DuplicateValue]);
}

#[test]
fn p4_real_time_order_violation() {
    let mut h = base();
    // op 4 completes before op 5 is invoked, yet gets the higher offset.
    h.ops
        .extend([ok(4, (60, 70), "d", 4), ok(5, (80, 90), "e", 3)]);
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "e"), (4, "d")]);
    let report = assert_only(&h, &[K::RealTimeOrder]);
    assert!(
        report.anomalies[0]
            .to_string()
            .contains("op 4 (offset 4) completed before op 5")
    );
}

#[test]
fn p5_stale_linearizable_read() {
    let mut h = base();
    h.ops.push(read(
        4,
        (60, 70),
        Consistency::Linearizable,
        "n3",
        0,
        &[(0, "a"), (1, "b")],
    ));
    let report = assert_only(&h, &[K::StaleRead]);
    assert!(
        report.anomalies[0]
            .to_string()
            .contains("op 3 was acknowledged at offset 2")
    );
    // A hole below the latest acknowledged offset is also a miss.
    h.ops[3] = read(
        4,
        (60, 70),
        Consistency::Linearizable,
        "n3",
        0,
        &[(0, "a"), (2, "c")],
    );
    let report = assert_only(&h, &[K::StaleRead]);
    assert!(
        report.anomalies[0]
            .to_string()
            .contains("offset 1 did not return")
    );
    // The same answer from a local read, or a read whose range ends before, is fine.
    h.ops[3] = read(
        4,
        (60, 70),
        Consistency::Local,
        "n3",
        0,
        &[(0, "a"), (1, "b")],
    );
    assert_only(&h, &[]);
    let mut bounded = read(
        4,
        (60, 70),
        Consistency::Linearizable,
        "n3",
        0,
        &[(0, "a"), (1, "b")],
    );
    if let OpKind::Read { to, .. } = &mut bounded.op {
        *to = Some(2);
    }
    h.ops[3] = bounded;
    assert_only(&h, &[]);
}

/// The workload's tail reads (`reads.rs`): from a recent offset with no upper bound, ending
/// where the node's linearizable bounds said the log ended. A `next` that was stale shows as a
/// missing acknowledged offset; acknowledged offsets below `from` are not asked for.
#[test]
fn p5_tail_read_ending_at_a_stale_next_is_stale() {
    use Consistency::Linearizable;
    let mut h = base();
    // Ended at next = 2 although offset 2 was acknowledged (at 50) before the read (at 60).
    h.ops
        .push(read(4, (60, 70), Linearizable, "n2", 1, &[(1, "b")]));
    let report = assert_only(&h, &[K::StaleRead]);
    assert!(
        report.anomalies[0]
            .to_string()
            .contains("op 3 was acknowledged at offset 2")
    );
    // Up to the real end: valid, although offset 0 (below `from`) is not returned.
    h.ops[3] = read(4, (60, 70), Linearizable, "n2", 1, &[(1, "b"), (2, "c")]);
    assert_only(&h, &[]);
    // Invoked before offset 2 was acknowledged: it may end before it.
    h.ops[3] = read(4, (45, 70), Linearizable, "n2", 1, &[(1, "b")]);
    assert_only(&h, &[]);
    // A tail read returning another value at an acknowledged offset is a conflict.
    h.ops[3] = read(4, (60, 70), Linearizable, "n2", 1, &[(1, "b"), (2, "x")]);
    let kinds = kinds(&check(&h));
    assert!(kinds.contains(&K::ConflictingValues), "{kinds:?}");
}

#[test]
fn p5_stale_linearizable_bounds() {
    let mut h = base();
    h.ops
        .push(bounds(4, (60, 70), Consistency::Linearizable, 2));
    let report = assert_only(&h, &[K::StaleBounds]);
    assert!(report.anomalies[0].to_string().contains("returned next 2"));
    h.ops[3] = bounds(4, (60, 70), Consistency::Local, 2);
    assert_only(&h, &[]);
    // Invoked before op 3 completed: may not see it.
    h.ops[3] = bounds(4, (45, 70), Consistency::Linearizable, 2);
    assert_only(&h, &[]);
}

#[test]
fn p6_consumer_gap_and_reorder() {
    let mut h = base();
    h.consumers = vec![consumer(Some(0), &[(0, "a"), (2, "c")])];
    assert_only(&h, &[K::ConsumerGap]);
    h.consumers = vec![consumer(Some(0), &[(1, "b"), (2, "c")])];
    assert_only(&h, &[K::ConsumerGap]);
    h.consumers = vec![consumer(
        None,
        &[(0, "a"), (1, "b"), (0, "a"), (1, "b"), (2, "c")],
    )];
    assert_only(&h, &[K::ConsumerOutOfOrder]);
}

#[test]
fn p7_failed_append_visible() {
    let mut h = base();
    h.ops.push(append(4, (60, 70), OpResult::Fail, "f", None));
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "f")]);
    let report = assert_only(&h, &[K::FailedAppendVisible]);
    assert!(
        report.anomalies[0]
            .to_string()
            .contains("op 4 (\"f\") failed")
    );
}

#[test]
fn p8_divergent_final_logs() {
    let mut h = base();
    h.ops.push(append(4, (60, 70), OpResult::Info, "i", None));
    h.ops.push(append(5, (60, 70), OpResult::Info, "j", None));
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "i")]);
    for log in &mut h.final_logs {
        log.committed_next = Some(4);
    }
    // n3 misses a committed record.
    h.final_logs[2].records.pop();
    let report = assert_only(&h, &[K::FinalLogDivergence]);
    let text = report.anomalies[0].to_string();
    assert!(
        text.contains("node n3 holds nothing at offset 3 where node n1 holds \"i\""),
        "{text}"
    );
    // n3 holds another value: the offset also shows two values.
    h.final_logs[2].records.push(Record::new(3, "j"));
    assert_only(&h, &[K::ConflictingValues, K::FinalLogDivergence]);
}

#[test]
fn a_value_nobody_appended_is_reported() {
    let mut h = base();
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "zz")]);
    assert_only(&h, &[K::UnknownValue]);
}

#[test]
fn malformed_histories_are_reported() {
    let mut h = base();
    h.ops.push(ok(3, (60, 70), "d", 3));
    h.ops.push(retry(5, (80, 90), "x", 4, 1));
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "x")]);
    let report = assert_only(&h, &[K::Malformed, K::Malformed]);
    assert!(
        report
            .to_string()
            .contains("op 5: retry_of names op 1, which appended \"a\"")
    );
}

#[test]
fn report_displays_summary_and_anomalies() {
    let mut h = base();
    h.ops.push(append(4, (60, 70), OpResult::Fail, "f", None));
    h.final_logs = finals(&[(0, "a"), (1, "b"), (2, "c"), (3, "f")]);
    let text = check(&h).to_string();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ops: 3 ok, 1 fail, 0 info, anomalies: 1");
    assert!(lines[2].starts_with("  - failed append visible"), "{text}");
}

#[test]
fn a_large_history_is_checked() {
    const N: u64 = 100_000;
    let mut h = History::default();
    let values: Vec<String> = (0..N).map(|i| format!("v{i}")).collect();
    for i in 0..N {
        h.ops
            .push(ok(i, (i * 10, i * 10 + 5), &values[i as usize], i));
        if i % 100 == 99 {
            let got = [(i, values[i as usize].as_str())];
            h.ops.push(read(
                N + i,
                (i * 10 + 6, i * 10 + 7),
                Consistency::Linearizable,
                "n1",
                i,
                &got,
            ));
        }
    }
    let log: Vec<(u64, &str)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (i as u64, v.as_str()))
        .collect();
    h.final_logs = finals(&log);
    h.consumers = vec![consumer(Some(0), &log)];
    let report = assert_only(&h, &[]);
    assert_eq!(report.counts.appends.ok, N);
}
