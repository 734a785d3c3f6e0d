//! A node whose disk lost Raft log entries that its state machine had already applied (a disk
//! that does not keep fsynced writes, or a build that skips fsync, then a power cut) must refuse
//! to start with a storage error that says so — exit status 74 and a message naming the lost
//! range — instead of panicking inside openraft (exit 70, "a bug"), which is what the fault
//! suite's negative control (`skip-fsync:/raft/log/` + power cuts) showed.

mod node_process;

use std::time::Duration;

use node_process::cluster::ProcessCluster;

const EXIT_STORAGE: i32 = 74;

#[test]
fn a_raft_log_shorter_than_what_was_applied_is_refused_clearly() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start(0, &[]);
    cluster.form();
    let values: Vec<String> = (0..50).map(|i| format!("v{i}")).collect();
    let mut args = vec!["produce"];
    args.extend(values.iter().map(String::as_str));
    cluster.cli_until_ok(0, &args);
    // The state machine persists what it applied within 100 ms.
    std::thread::sleep(Duration::from_secs(1));
    cluster.kill(0);

    // The disk lost the Raft log (every segment empty), not the state machine.
    let raft_log = cluster.dir.path().join("node-0/raft/log");
    let mut emptied = 0;
    for entry in std::fs::read_dir(&raft_log).expect("raft/log") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            emptied += 1;
        }
    }
    assert!(emptied > 0, "no segment files in {}", raft_log.display());

    cluster.start(0, &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cluster.is_running(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the node kept running on a Raft log that lost applied entries:\n{}",
            cluster.log(0)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = cluster.wait_exit(0);
    let log = cluster.log(0);
    assert_eq!(status.code(), Some(EXIT_STORAGE), "{status:?}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        log.contains("the Raft log ends before entries the state machine already applied"),
        "{log}"
    );
}
