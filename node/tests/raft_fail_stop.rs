//! Fail-stop of a node whose Raft core stopped (issue 17): a follower whose storage fails while
//! applying a committed entry (the `apply-error` failpoint) must stop looking healthy at once,
//! say why once, exit with the documented status and leave the reason for Kubernetes; the other
//! two nodes keep serving; a restart with the same fault fails the same way, fast. A panic while
//! applying (the `apply-panic` failpoint) exits with the "bug" status.

mod node_process;

use std::time::Instant;

use node_process::cluster::{ProcessCluster, grpc_health};
use proglog_node::raft::failpoint;
use proglog_node::raft::fatal::{EXIT_PANIC, EXIT_STORAGE};

const FAULTY: usize = 2;
const CAUSE: &str = "injected storage error (failpoint apply-error)";
const NOT_SERVING: i32 = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;

fn poison() -> String {
    format!(
        "{}-{}",
        String::from_utf8_lossy(failpoint::APPLY_ERROR_RECORD),
        "x"
    )
}

#[test]
fn a_follower_whose_apply_fails_stops_and_exits_with_the_storage_status() {
    let mut cluster = ProcessCluster::new(3);
    let armed = [(failpoint::ENV, "apply-error")];
    cluster.start(0, &[]);
    cluster.start(1, &[]);
    cluster.start(FAULTY, &armed);
    cluster.form();
    let out = cluster.cli_until_ok(0, &["produce", "before"]);
    assert!(out.status.success(), "{out:?}");
    cluster.wait_for_http(
        FAULTY,
        "/readyz",
        "the armed follower to be ready",
        |c, _| c == 200,
    );

    // Committed by the leader and the healthy follower; the armed follower fails to apply it.
    cluster.cli_until_ok(0, &["produce", &poison()]);
    let fault = Instant::now();

    // Not live and not ready at once, with the cause, on every probe the kubelet may use.
    let (_, health) =
        cluster.wait_for_http(FAULTY, "/healthz", "/healthz to fail", |c, _| c == 503);
    assert!(health.contains(CAUSE), "/healthz body: {health}");
    let (code, ready) = cluster
        .http_get(FAULTY, "/readyz")
        .expect("probe port answers");
    assert_eq!(code, 503, "/readyz: {ready}");
    assert!(ready.contains(CAUSE), "/readyz body: {ready}");
    let port = cluster.nodes[FAULTY].metrics_port;
    let deadline = Instant::now() + node_process::cluster::WAIT;
    while grpc_health(port, "") != Some(NOT_SERVING) {
        assert!(Instant::now() < deadline, "gRPC health still serving");
        assert!(
            cluster.is_running(FAULTY),
            "exited before gRPC health said NOT_SERVING"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (_, metrics) = cluster.http_get(FAULTY, "/metrics").expect("metrics");
    assert!(
        metrics.contains("proglog_raft_core_stopped{kind=\"storage\"} 1"),
        "{metrics}"
    );

    // Fail-stop with the status that says "storage error".
    let status = cluster.wait_exit(FAULTY);
    let to_exit = fault.elapsed();
    assert_eq!(status.code(), Some(EXIT_STORAGE), "{status:?}");
    let message = std::fs::read_to_string(cluster.termination_path(FAULTY)).unwrap();
    assert!(message.contains(CAUSE), "termination message: {message}");
    // One clear error line of ours with the cause and the exit status, and no line per
    // heartbeat (openraft reports the stop itself a few times, once per place that sees it; the
    // leader's heartbeats made it 10 lines a second, 50 over the exit delay).
    let log = cluster.log(FAULTY);
    let ours = log
        .lines()
        .filter(|l| l.contains("ERROR proglog_node::raft::fatal") && l.contains("exit status 74"))
        .count();
    assert_eq!(ours, 1, "{log}");
    let lines = log.lines().filter(|l| l.contains(CAUSE)).count();
    assert!(lines < 10, "{lines} lines name the cause:\n{log}");
    println!("fault to exit: {to_exit:?}; termination message: {message}");

    // The other two still serve produces.
    for i in [0, 1] {
        let out = cluster.cli(i, &["produce", &format!("after-{i}")]);
        assert!(out.status.success(), "produce through node {i}: {out:?}");
    }

    // A restart with the same fault fails fast, with the same message.
    let restarted = Instant::now();
    cluster.start(FAULTY, &armed);
    let status = cluster.wait_exit(FAULTY);
    println!("restart to exit: {:?}", restarted.elapsed());
    assert_eq!(status.code(), Some(EXIT_STORAGE), "{status:?}");
    let again = std::fs::read_to_string(cluster.termination_path(FAULTY)).unwrap();
    assert_eq!(again, message);

    // Without the fault (a repaired disk) the node comes back and catches up.
    cluster.start(FAULTY, &[]);
    cluster.wait_for_http(
        FAULTY,
        "/readyz",
        "the repaired node to be ready",
        |c, _| c == 200,
    );
    let deadline = Instant::now() + node_process::cluster::WAIT;
    loop {
        let out = cluster.cli(FAULTY, &["consume"]);
        if String::from_utf8_lossy(&out.stdout).contains("after-1") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the repaired node misses records: {out:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_panic_while_applying_exits_with_the_bug_status() {
    let mut cluster = ProcessCluster::new(1);
    cluster.start(0, &[(failpoint::ENV, "apply-panic")]);
    cluster.form();
    cluster.cli_until_ok(0, &["produce", "before"]);
    let poison = format!(
        "{}-x",
        String::from_utf8_lossy(failpoint::APPLY_PANIC_RECORD)
    );
    // The produce itself fails (the leader's core stops before it answers).
    let _ = cluster.cli(0, &["produce", &poison]);
    let (_, health) = cluster.wait_for_http(0, "/healthz", "/healthz to fail", |c, _| c == 503);
    assert!(health.contains("panic"), "/healthz body: {health}");
    let status = cluster.wait_exit(0);
    assert_eq!(status.code(), Some(EXIT_PANIC), "{status:?}");
    let message = std::fs::read_to_string(cluster.termination_path(0)).unwrap();
    assert!(message.contains("a restart usually recovers"), "{message}");
}
