//! Shared harness for tests that run the real `proglog-node` and `proglog` binaries as child
//! processes: free loopback ports, the node's command line over a directory laid out as
//! `DIR/certs` (from `proglog certs`) and `DIR/data`, the CLI as `root`, and a SIGTERM stop.
#![allow(dead_code)] // each test binary uses its own subset

pub mod cluster;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const NODE: &str = env!("CARGO_BIN_EXE_proglog-node");

/// The `proglog` binary, which belongs to the package `proglog-cli`. Cargo hands a test only
/// its own package's binaries, so the first call builds it with the cargo running the tests,
/// into the target directory and profile of `proglog-node` (a no-op when it is up to date;
/// cargo holds no lock on that directory while tests run).
pub fn cli_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile_dir = Path::new(NODE).parent().expect("a target directory");
        let target_dir = profile_dir.parent().expect("a profile directory");
        let mut build = Command::new(env!("CARGO"));
        build
            .args(["build", "--quiet", "-p", "proglog-cli", "--bin", "proglog"])
            .arg("--target-dir")
            .arg(target_dir);
        if profile_dir.ends_with("release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build -p proglog-cli");
        assert!(status.success(), "building the proglog CLI: {status}");
        profile_dir.join("proglog")
    })
}

/// A loopback port no outgoing connection can take before the node binds it.
pub fn free_port() -> u16 {
    proglog_node::test_ports::reserve_port()
}

/// Writes the dev CA and certificates into `dir/certs` with `proglog certs`.
pub fn make_certs(dir: &Path) {
    let out = Command::new(cli_bin())
        .args(["certs", "--out"])
        .arg(dir.join("certs"))
        .output()
        .expect("run proglog certs");
    assert!(out.status.success(), "{out:?}");
}

/// The node's flags for data in `dir/data` and the dev certificates in `dir/certs`.
pub fn node_args(dir: &Path, port: u16, metrics_port: u16) -> Vec<String> {
    let certs = dir.join("certs");
    let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
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

/// Runs the `proglog` CLI as `root` against the node on `port` (with a config file of its own
/// in `dir`, so the user's `~/.config/proglog` never matters).
pub fn cli(dir: &Path, port: u16, args: &[&str]) -> Output {
    let certs = dir.join("certs");
    Command::new(cli_bin())
        .env("PROGLOG_CONFIG", dir.join("proglog-config.toml"))
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
        .expect("run proglog")
}

/// Runs `proglog produce` until the node answers (it may still be starting).
pub fn produce_when_up(dir: &Path, port: u16, value: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = cli(dir, port, &["produce", value]);
        if out.status.success() || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM (graceful shutdown) and waits for the exit.
pub fn stop(mut node: Child) -> ExitStatus {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(node.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success());
    node.wait().expect("wait for the node")
}
