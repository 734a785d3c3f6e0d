//! A `proglog-node` process started the way the pod template starts it: configured only
//! through the files the operator writes (`proglog.toml`, `acl.csv`, `tls.crt`, `tls.key`,
//! `ca.crt` in one directory, like the pod's mounts) and the per-pod environment.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The `proglog-node` binary of this build (`make test-operator` builds it first).
pub fn node_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let binary = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("proglog-node");
    assert!(
        binary.exists(),
        "{} not found: build it first with `cargo build -p proglog-node`",
        binary.display()
    );
    binary
}

/// Starts a Raft node `ordinal` on 127.0.0.1 with its data in `data_dir`, reading its
/// configuration and certificates from `files`; its output goes to `files/node-ORDINAL.log`.
pub fn spawn_node(
    files: &Path,
    data_dir: &Path,
    ordinal: u32,
    grpc_port: u16,
    metrics_port: u16,
) -> Child {
    spawn_node_with_acl(
        files,
        &files.join("acl.csv"),
        data_dir,
        ordinal,
        grpc_port,
        metrics_port,
    )
}

/// [`spawn_node`] reading its ACL from `acl_file` instead of `files/acl.csv`: nodes whose copy
/// of the ACL ConfigMap changes at different times, as kubelets sync it.
pub fn spawn_node_with_acl(
    files: &Path,
    acl_file: &Path,
    data_dir: &Path,
    ordinal: u32,
    grpc_port: u16,
    metrics_port: u16,
) -> Child {
    let address = format!("127.0.0.1:{grpc_port}");
    let log = std::fs::File::create(files.join(format!("node-{ordinal}.log"))).unwrap();
    Command::new(node_binary())
        .env_clear()
        .env("PROGLOG_CONFIG", files.join("proglog.toml"))
        .env("PROGLOG_DATA_DIR", data_dir)
        .env("PROGLOG_BIND_ADDR", &address)
        .env("PROGLOG_ADVERTISE_ADDR", &address)
        .env("PROGLOG_METRICS_ADDR", format!("127.0.0.1:{metrics_port}"))
        .env("PROGLOG_ORDINAL", ordinal.to_string())
        .env("PROGLOG_TLS_CERT", files.join("tls.crt"))
        .env("PROGLOG_TLS_KEY", files.join("tls.key"))
        .env("PROGLOG_TLS_CA", files.join("ca.crt"))
        .env("PROGLOG_ACL_FILE", acl_file)
        .env("PROGLOG_RAFT", "true")
        .env("PROGLOG_LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawning proglog-node")
}

/// A node process that is killed and reaped when stopped or dropped, so a failing test leaves
/// no node behind.
#[derive(Debug, Default)]
pub struct NodeProcess(Option<Child>);

impl NodeProcess {
    /// Owns `child`.
    pub fn running(child: Child) -> Self {
        Self(Some(child))
    }

    /// Whether the process was started and not stopped since.
    pub fn is_running(&self) -> bool {
        self.0.is_some()
    }

    /// Kills the process (if running) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
