//! A Raft cluster of real `proglog-node` processes on loopback (one port pair and data directory
//! per node, the dev certificates shared), formed with the `proglog cluster` CLI the way an
//! operator would, and read through the plain-HTTP probe port like the kubelet does.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use proglog_proto::log::v1::log_client::LogClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use super::{NODE, free_port, make_certs};

/// Generous bound for anything to happen; never a performance assertion.
pub const WAIT: Duration = Duration::from_secs(60);

/// One node process.
pub struct ProcessNode {
    pub port: u16,
    pub metrics_port: u16,
    child: Option<Child>,
}

/// Nodes sharing a temporary directory: `certs/`, `node-N/` (data), `node-N.log` (stderr),
/// `node-N.termination` (the termination message file).
pub struct ProcessCluster {
    pub dir: tempfile::TempDir,
    pub nodes: Vec<ProcessNode>,
}

impl ProcessCluster {
    /// `size` stopped nodes.
    pub fn new(size: usize) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        make_certs(dir.path());
        let nodes = (0..size)
            .map(|_| ProcessNode {
                port: free_port(),
                metrics_port: free_port(),
                child: None,
            })
            .collect();
        Self { dir, nodes }
    }

    pub fn addr(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.nodes[i].port)
    }

    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}.log"))
    }

    pub fn termination_path(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("node-{i}.termination"))
    }

    /// Everything node `i` wrote to stderr (all its runs).
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.log_path(i)).unwrap_or_default()
    }

    /// Starts node `i` with extra environment variables. Its termination message file exists
    /// (empty) before it starts, as Kubernetes creates it.
    pub fn start(&mut self, i: usize, env: &[(&str, &str)]) {
        assert!(self.nodes[i].child.is_none(), "node {i} is running");
        let certs = self.dir.path().join("certs");
        std::fs::write(self.termination_path(i), "").expect("termination file");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(i))
            .expect("log file");
        // PROGLOG_TEST_NODE_BIN runs another build (e.g. the code before a fix) under the tests.
        let node = std::env::var_os("PROGLOG_TEST_NODE_BIN").unwrap_or_else(|| NODE.into());
        let mut command = Command::new(node);
        command
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("node-{i}")))
            .args(["--bind-addr", &self.addr(i)])
            .args(["--advertise-addr", &self.addr(i)])
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", self.nodes[i].metrics_port))
            .args(["--ordinal", &i.to_string(), "--raft", "true"])
            .arg("--tls-cert")
            .arg(certs.join("node.pem"))
            .arg("--tls-key")
            .arg(certs.join("node-key.pem"))
            .arg("--tls-ca")
            .arg(certs.join("ca.pem"))
            .arg("--acl-file")
            .arg(certs.join("acl.csv"))
            .env("PROGLOG_TERMINATION_LOG", self.termination_path(i))
            .env_remove("PROGLOG_FAILPOINT")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        for (key, value) in env {
            command.env(key, value);
        }
        self.nodes[i].child = Some(command.spawn().expect("spawn proglog-node"));
    }

    /// Runs the `proglog` CLI as `root` against node `i`.
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        super::cli(self.dir.path(), self.nodes[i].port, args)
    }

    /// Runs the CLI against node `i` until it succeeds (nodes may still be starting).
    pub fn cli_until_ok(&self, i: usize, args: &[&str]) -> Output {
        let deadline = Instant::now() + WAIT;
        loop {
            let out = self.cli(i, args);
            if out.status.success() {
                return out;
            }
            assert!(Instant::now() < deadline, "proglog {args:?}: {out:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Initializes node 0 and adds the other nodes as voters, one at a time.
    pub fn form(&self) {
        self.cli_until_ok(0, &["cluster", "init", "--if-needed"]);
        for i in 1..self.nodes.len() {
            self.cli_until_ok(0, &["cluster", "add", &self.addr(i)]);
        }
    }

    /// `(status code, body)` of `GET path` on node `i`'s probe port; None if it does not answer.
    pub fn http_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        http_get(self.nodes[i].metrics_port, path)
    }

    /// Polls `GET path` on node `i` until `check` accepts the answer.
    pub fn wait_for_http(
        &self,
        i: usize,
        path: &str,
        what: &str,
        check: impl Fn(u16, &str) -> bool,
    ) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            let answer = self.http_get(i, path);
            if let Some((code, body)) = &answer
                && check(*code, body)
            {
                return (*code, body.clone());
            }
            assert!(
                Instant::now() < deadline,
                "node {i} {path}: timed out waiting for {what}; last answer {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether node `i`'s process is still running.
    pub fn is_running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(child) => child.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    /// Waits until node `i` exits by itself; returns its status.
    pub fn wait_exit(&mut self, i: usize) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        let child = self.nodes[i].child.as_mut().expect("node is running");
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.nodes[i].child = None;
                return status;
            }
            assert!(Instant::now() < deadline, "node {i} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops node `i` with SIGTERM (graceful) and waits for it.
    pub fn stop(&mut self, i: usize) -> ExitStatus {
        let child = self.nodes[i].child.take().expect("node is running");
        super::stop(child)
    }

    /// TLS settings of the `root` client for this cluster's dev certificates.
    pub fn client_tls(&self) -> ClientTlsConfig {
        let certs = self.dir.path().join("certs");
        client_tls_config(&ClientTlsFiles {
            ca: certs.join("ca.pem"),
            cert: Some(certs.join("root.pem")),
            key: Some(certs.join("root-key.pem")),
            server_name: Some("localhost".to_owned()),
        })
        .expect("client tls")
    }

    /// A `log.v1` client of node `i` as `root`; None if it does not connect within `timeout`.
    pub async fn try_log_client(&self, i: usize, timeout: Duration) -> Option<LogClient<Channel>> {
        let channel = Endpoint::from_shared(format!("https://{}", self.addr(i)))
            .expect("endpoint")
            .tls_config(self.client_tls())
            .expect("tls config")
            .connect_timeout(timeout)
            .connect()
            .await
            .ok()?;
        Some(LogClient::new(channel))
    }

    /// Kills node `i` with SIGKILL (a crash: nothing flushed or handed over) and reaps it.
    pub fn kill(&mut self, i: usize) -> ExitStatus {
        let mut child = self.nodes[i].child.take().expect("node is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait")
    }

    /// Node `i`'s role and term from the first line of `proglog cluster status`
    /// (`node ID (ROLE) term T leader L`).
    pub fn role_and_term(&self, i: usize) -> (String, u64) {
        let out = self.cli_until_ok(i, &["cluster", "status"]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let first = text.lines().next().unwrap_or_default();
        let words: Vec<&str> = first.split_whitespace().collect();
        let role = words
            .get(2)
            .unwrap_or(&"")
            .trim_matches(|c| c == '(' || c == ')');
        let term = words
            .iter()
            .position(|w| *w == "term")
            .and_then(|p| words.get(p + 1))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no term in {text:?}"));
        (role.to_owned(), term)
    }

    /// The index and term of the node among `candidates` that says it leads (waits for one).
    pub fn leader_among(&self, candidates: &[usize]) -> (usize, u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            for &i in candidates {
                let (role, term) = self.role_and_term(i);
                if role == "leader" {
                    return (i, term);
                }
            }
            assert!(Instant::now() < deadline, "no leader among {candidates:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The directory goes away with the cluster: show what the nodes said.
            for i in 0..self.nodes.len() {
                let log = self.log(i);
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- node {i} stderr (last lines) ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// `(status code, body)` of a plain HTTP/1.1 GET on the loopback port.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

/// The `grpc.health.v1` status of `service` on the plaintext probe port (as a Kubernetes `grpc`
/// probe asks it); None if the port does not answer.
pub fn grpc_health(port: u16, service: &str) -> Option<i32> {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .ok()?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(5))
            .connect()
            .await
            .ok()?;
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await
            .ok()?;
        Some(answer.into_inner().status)
    })
}
