//! Shared harness of the CLI's tests: the `proglog` binary of this package, and a real node
//! (the `proglog-node` library) served in-process on loopback with the dev certificates —
//! cargo gives a test only its own package's binaries, and the CLI needs only a node that
//! answers over mTLS, not a separate process.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use proglog_node::config::NodeArgs;
use tokio_util::sync::CancellationToken;

/// The CLI under test.
pub const CLI: &str = env!("CARGO_BIN_EXE_proglog");

/// A node served by this test process until [`InProcessNode::stop`].
#[derive(Debug)]
pub struct InProcessNode {
    /// Its gRPC port on 127.0.0.1.
    pub port: u16,
    shutdown: CancellationToken,
    serving: JoinHandle<Result<(), String>>,
}

impl InProcessNode {
    /// Writes the dev CA and certificates into `dir/certs` (as `proglog certs` does) and serves
    /// a single node with its data in `dir/data`.
    pub fn start(dir: &Path) -> Self {
        proglog_cli::dev_ca::write_dev_certs(&dir.join("certs")).expect("dev certificates");
        let port = proglog_node::test_ports::reserve_port();
        let metrics_port = proglog_node::test_ports::reserve_port();
        let certs = dir.join("certs");
        let s = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
        let args = NodeArgs::try_parse_from([
            "proglog-node".to_owned(),
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
        ])
        .expect("node flags");
        let config = args.resolve().expect("node configuration");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let serving = std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            runtime
                .block_on(proglog_node::run::run_node(config, token))
                .map_err(|e| e.to_string())
        });
        Self {
            port,
            shutdown,
            serving,
        }
    }

    /// Shuts the node down gracefully and returns how its serving ended.
    pub fn stop(self) -> Result<(), String> {
        self.shutdown.cancel();
        self.serving.join().expect("the node's thread panicked")
    }
}

/// Runs the CLI as `root` against the node on `port` (with a config file of its own in `dir`,
/// so the user's `~/.config/proglog` never matters).
pub fn cli(dir: &Path, port: u16, args: &[&str]) -> Output {
    let certs = dir.join("certs");
    Command::new(CLI)
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
