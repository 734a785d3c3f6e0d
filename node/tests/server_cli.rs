//! The two binaries end to end: `proglog certs`, `proglog-node` (invalid configuration exits
//! with status 64; a valid one serves and stops cleanly on SIGTERM), `proglog produce`,
//! `consume` and `servers`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NODE: &str = env!("CARGO_BIN_EXE_proglog-node");
const CLI: &str = env!("CARGO_BIN_EXE_proglog");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn node_args(dir: &Path, port: u16, metrics_port: u16) -> Vec<String> {
    let certs = dir.join("certs");
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    vec![
        "--data-dir".into(),
        s(&dir.join("data")),
        "--bind-addr".into(),
        format!("127.0.0.1:{port}"),
        "--metrics-addr".into(),
        format!("127.0.0.1:{metrics_port}"),
        "--tls-cert".into(),
        s(&certs.join("node.pem")),
        "--tls-key".into(),
        s(&certs.join("node-key.pem")),
        "--tls-ca".into(),
        s(&certs.join("ca.pem")),
        "--acl-file".into(),
        s(&certs.join("acl.csv")),
    ]
}

fn cli(dir: &Path, port: u16, args: &[&str]) -> Output {
    let certs = dir.join("certs");
    Command::new(CLI)
        .arg("--addr")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--ca")
        .arg(certs.join("ca.pem"))
        .arg("--cert")
        .arg(certs.join("root.pem"))
        .arg("--key")
        .arg(certs.join("root-key.pem"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `proglog produce` until the node answers (it may still be starting).
fn produce_when_up(dir: &Path, port: u16, value: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli(dir, port, &["produce", value]);
        if out.status.success() || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut node: Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(node.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    node.wait().unwrap()
}

#[test]
fn invalid_configuration_exits_with_status_64_and_says_why() {
    let out = Command::new(NODE).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data-dir is required"), "{stderr}");

    let out = Command::new(NODE).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));

    // Files that do not exist are configuration errors too.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(NODE)
        .args(node_args(dir.path(), free_port(), free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn certs_then_node_then_produce_consume_servers_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(CLI)
        .args(["certs", "--out"])
        .arg(dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for file in [
        "ca.pem",
        "node.pem",
        "root-key.pem",
        "nobody.pem",
        "acl.csv",
    ] {
        assert!(dir.path().join("certs").join(file).exists(), "{file}");
    }

    let (port, metrics_port) = (free_port(), free_port());
    let node = Command::new(NODE)
        .args(node_args(dir.path(), port, metrics_port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = produce_when_up(dir.path(), port, "hello");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    let out = cli(dir.path(), port, &["produce", "world"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");

    let out = cli(dir.path(), port, &["consume", "--offsets"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\thello\n1\tworld\n");
    let out = cli(dir.path(), port, &["consume", "--from", "1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");

    let out = cli(dir.path(), port, &["servers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("leader") && text.contains("next 2"), "{text}");

    let status = stop(node);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}
