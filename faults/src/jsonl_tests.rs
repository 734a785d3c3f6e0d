//! History files: the JSON-lines format, a round trip through the writer and reader, and
//! parse errors naming the line.

use std::io::Cursor;

use crate::{
    Consistency, ConsumerRun, FinalLog, History, HistoryError, HistoryWriter, OpKind, OpResult,
    Operation, Record, parse_history, read_history,
};

fn sample() -> History {
    let op = |id, result, op| Operation {
        id,
        process: 1,
        invoke_ns: id * 100,
        complete_ns: id * 100 + 50,
        result,
        op,
    };
    History {
        ops: vec![
            op(
                1,
                OpResult::Ok,
                OpKind::Append {
                    value: "p1-1".into(),
                    offset: Some(0),
                    retry_of: None,
                },
            ),
            op(
                2,
                OpResult::Info,
                OpKind::Append {
                    value: "p1-2".into(),
                    offset: None,
                    retry_of: None,
                },
            ),
            op(
                3,
                OpResult::Ok,
                OpKind::Append {
                    value: "p1-2".into(),
                    offset: Some(1),
                    retry_of: Some(2),
                },
            ),
            op(
                4,
                OpResult::Ok,
                OpKind::Read {
                    node: Some("proglog-0".into()),
                    consistency: Consistency::Linearizable,
                    from: 0,
                    to: Some(2),
                    records: Some(vec![Record::new(0, "p1-1"), Record::new(1, "p1-2")]),
                },
            ),
            op(
                5,
                OpResult::Fail,
                OpKind::Bounds {
                    node: None,
                    consistency: Consistency::Local,
                    lowest: None,
                    next: None,
                },
            ),
        ],
        consumers: vec![ConsumerRun {
            consumer: 7,
            node: Some("proglog-1".into()),
            start: Some(0),
            records: vec![Record::new(0, "p1-1")],
        }],
        final_logs: vec![FinalLog {
            node: "proglog-2".into(),
            lowest: 0,
            committed_next: Some(2),
            records: vec![Record::new(0, "p1-1"), Record::new(1, "p1-2")],
        }],
        end: Some(crate::history::EndOfRun { nodes: 3 }),
    }
}

#[test]
fn round_trip_through_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.jsonl");
    let history = sample();
    let mut writer = HistoryWriter::create(&path).unwrap();
    writer.write_history(&history).unwrap();
    writer.flush().unwrap();
    assert_eq!(read_history(&path).unwrap(), history);

    // Appending mode adds lines after the existing ones.
    let mut writer = HistoryWriter::append(&path).unwrap();
    writer.write_op(&history.ops[0]).unwrap();
    drop(writer);
    let again = read_history(&path).unwrap();
    assert_eq!(again.ops.len(), history.ops.len() + 1);
    assert!(
        crate::check(&history).is_valid(),
        "{}",
        crate::check(&history)
    );
}

#[test]
fn lines_have_the_documented_shape() {
    let history = sample();
    let mut writer = HistoryWriter::new(Vec::new());
    writer.write_op(&history.ops[2]).unwrap();
    writer.write_final_log(&history.final_logs[0]).unwrap();
    let text = String::from_utf8(writer.into_inner().unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        r#"{"type":"op","id":3,"process":1,"invoke_ns":300,"complete_ns":350,"result":"ok","op":{"f":"append","value":"p1-2","offset":1,"retry_of":2}}"#
    );
    assert_eq!(
        lines[1],
        r#"{"type":"final","node":"proglog-2","lowest":0,"committed_next":2,"records":[{"offset":0,"value":"p1-1"},{"offset":1,"value":"p1-2"}]}"#
    );
}

#[test]
fn a_parse_error_names_the_line() {
    let input = concat!(
        r#"{"type":"op","id":1,"process":0,"invoke_ns":0,"complete_ns":5,"result":"fail","op":{"f":"append","value":"x"}}"#,
        "\n\n",
        r#"{"type":"op","id":2,"process":0,"invoke_ns":0,"complete_ns":5,"result":"maybe","op":{"f":"append","value":"y"}}"#,
        "\n",
    );
    let err = parse_history(Cursor::new(input)).unwrap_err();
    assert!(
        matches!(err, HistoryError::Parse { line: 3, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("malformed history entry at line 3: "),
        "{err}"
    );

    let err = parse_history(Cursor::new("{\"type\":\"nope\"}\n")).unwrap_err();
    assert!(
        matches!(err, HistoryError::Parse { line: 1, .. }),
        "{err:?}"
    );
}

#[test]
fn a_missing_file_is_named() {
    let err = read_history("/nonexistent/history.jsonl").unwrap_err();
    assert!(
        err.to_string().contains("/nonexistent/history.jsonl"),
        "{err}"
    );
}

#[test]
fn the_readme_example_parses() {
    let readme = include_str!("../README.md");
    let block = readme
        .split("```json\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let history = parse_history(Cursor::new(block)).unwrap();
    assert_eq!(
        (
            history.ops.len(),
            history.consumers.len(),
            history.final_logs.len()
        ),
        (3, 1, 1)
    );
}
