//! Crash-atomic snapshot install (issue 10, item 1). A follower far behind the leader (which has
//! purged the entries it misses) receives a snapshot, and its process is aborted at each step of
//! the install in turn (`crash-at:<step>` failpoints: no cleanup, as `kill -9` or a power cut).
//! After each crash its data directory, opened the way the node opens it, holds either the old
//! user log (crash before the commit point) or the snapshot's (after it) — never a mix — with
//! every record at the offset it was acknowledged with; then the node restarts, rejoins, and
//! ends with the same log as the leader.

mod node_process;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use node_process::cluster::{ProcessCluster, WAIT};
use proglog_log::LogConfig;
use proglog_node::metrics::Metrics;
use proglog_node::raft::failpoint;
use proglog_node::raft::snapshot_install::INSTALL_STEPS;
use proglog_node::raft::state_machine::decode_record;
use proglog_node::raft::storage_pair::open_storage;

const LAGGING: usize = 2;
/// Snapshot every 20 entries and keep none behind it, so a stopped follower soon needs one.
const SNAPSHOT_OFTEN: [(&str, &str); 2] = [
    ("PROGLOG_SNAPSHOT_ENTRIES", "20"),
    ("PROGLOG_SNAPSHOT_KEEP_ENTRIES", "0"),
];
const SIGABRT: i32 = 6;

#[test]
fn a_crash_at_any_step_of_a_snapshot_install_leaves_the_old_or_the_new_log() {
    let mut cluster = ProcessCluster::new(3);
    for i in 0..3 {
        cluster.start(i, &SNAPSHOT_OFTEN);
    }
    cluster.form();
    let mut acked = Vec::new();
    produce(&cluster, "warm-up", 10, &mut acked);

    for (round, step) in INSTALL_STEPS.iter().enumerate() {
        wait_for_records(&cluster, LAGGING, &acked);
        let lagging_last = status_field(&cluster, LAGGING, "last");
        let old_len = acked.len();
        cluster.stop(LAGGING);
        // 60 entries (one produce each): snapshots at least every 20, purged behind them.
        produce(&cluster, &format!("round-{round}"), 60, &mut acked);
        for i in [0, 1] {
            wait_for(&format!("node {i} to purge past {lagging_last}"), || {
                status_field(&cluster, i, "purged") > lagging_last
            });
        }

        let crash = format!("crash-at:{step}");
        let mut env = SNAPSHOT_OFTEN.to_vec();
        env.push((failpoint::ENV, &crash));
        cluster.start(LAGGING, &env);
        let status = cluster.wait_exit(LAGGING);
        assert_eq!(status.signal(), Some(SIGABRT), "{step}: {status:?}");
        assert!(
            cluster.log(LAGGING).contains(&format!("failpoint {crash}")),
            "{step}: the node did not reach the step"
        );

        // Opened as the node will open it (on a copy, so the node's own start recovers it too).
        let records = recovered_records(&cluster.dir.path().join(format!("node-{LAGGING}")));
        let expected: Vec<(u64, String)> = acked
            .iter()
            .take(records.len())
            .cloned()
            .enumerate()
            .map(|(offset, value)| (offset as u64, value))
            .collect();
        assert_eq!(records, expected, "{step}: records at the wrong offsets");
        if *step == "install-staged" {
            assert_eq!(
                records.len(),
                old_len,
                "{step}: before the commit point, the old log"
            );
        } else {
            assert!(
                records.len() > old_len,
                "{step}: after the commit point, the snapshot's log ({} records, {old_len} before)",
                records.len()
            );
        }
        println!(
            "{step}: {} records after recovery ({old_len} before the install)",
            records.len()
        );

        // Restarted without the fault, it rejoins and catches up.
        cluster.start(LAGGING, &SNAPSHOT_OFTEN);
        wait_for_records(&cluster, LAGGING, &acked);
    }

    // Still a working member: a new record reaches every node.
    produce(&cluster, "after", 1, &mut acked);
    for i in 0..3 {
        wait_for_records(&cluster, i, &acked);
    }
}

/// Produces `count` values through node 0 (one entry each) and appends them to `acked`,
/// checking each was acknowledged at the next offset.
fn produce(cluster: &ProcessCluster, prefix: &str, count: usize, acked: &mut Vec<String>) {
    let values: Vec<String> = (0..count).map(|i| format!("{prefix}-{i}")).collect();
    let mut args = vec!["produce"];
    args.extend(values.iter().map(String::as_str));
    let out = cluster.cli_until_ok(0, &args);
    let offsets: Vec<u64> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(|o| o.parse().expect("an offset per line"))
        .collect();
    let expected: Vec<u64> = (acked.len() as u64..).take(count).collect();
    assert_eq!(offsets, expected, "acknowledged offsets");
    acked.extend(values);
}

/// Node `i`'s whole user log as `(offset, value)`, read through the CLI.
fn records_of(cluster: &ProcessCluster, i: usize) -> Option<Vec<(u64, String)>> {
    let out = cluster.cli(i, &["consume", "--offsets"]);
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (offset, value) = line.split_once('\t')?;
            Some((offset.parse().ok()?, value.to_owned()))
        })
        .collect()
}

fn wait_for_records(cluster: &ProcessCluster, i: usize, acked: &[String]) {
    let expected: Vec<(u64, String)> = acked
        .iter()
        .cloned()
        .enumerate()
        .map(|(offset, value)| (offset as u64, value))
        .collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let records = records_of(cluster, i);
        if records.as_ref() == Some(&expected) {
            return;
        }
        if let Some(records) = &records {
            let common = records.len().min(expected.len());
            assert_eq!(records[..common], expected[..common], "node {i} diverged");
        }
        assert!(
            Instant::now() < deadline,
            "node {i} does not hold the {} acknowledged records: {:?}",
            expected.len(),
            records.map(|r| r.len())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A number from node `i`'s `proglog cluster status` line `raft log: … <name> N …`.
fn status_field(cluster: &ProcessCluster, i: usize, name: &str) -> u64 {
    let out = cluster.cli_until_ok(i, &["cluster", "status"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with("raft log:"))
        .unwrap_or_else(|| panic!("no raft log line in {text}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == name)
        .unwrap_or_else(|| panic!("no {name} in {line}"));
    words[at + 1]
        .trim_end_matches(';')
        .parse()
        .unwrap_or_else(|_| panic!("{name} in {line}"))
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Copies the node's data directory and opens its Raft storage there, as the node's start does
/// (finishing a committed install); returns the applied records of the user log as
/// `(offset, value)`.
fn recovered_records(data_dir: &Path) -> Vec<(u64, String)> {
    let copy = tempfile::tempdir().expect("temporary directory");
    copy_dir(data_dir, copy.path());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let (_store, sm) = open_storage(
            &copy.path().join("raft"),
            LogConfig::default(),
            LogConfig::default(),
            std::sync::Arc::new(Metrics::new()),
        )
        .expect("the raft storage opens after the crash");
        let user = sm.user_log();
        let log = user.log();
        log.reader(log.lowest_offset())
            .take_while(|item| {
                item.as_ref()
                    .map_or(true, |(offset, _)| *offset < user.applied_end())
            })
            .map(|item| {
                let (offset, bytes) = item.expect("readable record");
                let record = decode_record(&bytes).expect("decodable record");
                assert_eq!(record.offset, offset, "stored offset");
                (offset, String::from_utf8_lossy(&record.value).into_owned())
            })
            .collect()
    })
}

// A scratch copy for inspection, not storage: durability of its directories does not matter.
#[allow(clippy::disallowed_methods)]
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}
