//! The operator under test: either deployed in the cluster (kind workflow, where the operator
//! must reach the pods' DNS names) or this repository's binary run locally against the
//! kubeconfig (the local control plane, where no pod runs anyway).

use std::{
    fs::File,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use crate::{E2eError, env};

/// How many lines of the operator's output to show when it fails.
const LOG_TAIL_LINES: usize = 40;

/// The operator for one test; a locally started process is killed when this is dropped.
#[derive(Debug)]
pub enum Operator {
    /// Deployed in the cluster by the workflow; nothing to manage here.
    InCluster,
    /// A child process of the test.
    Local {
        /// The running operator.
        child: Child,
        /// Its combined stdout and stderr.
        log_path: PathBuf,
        /// Holds the log directory for the process's lifetime.
        _log_dir: tempfile::TempDir,
    },
}

impl Operator {
    /// Uses the in-cluster operator if `PROGLOG_E2E_OPERATOR=in-cluster`, else starts the
    /// binary (`PROGLOG_OPERATOR_BIN`, default `proglog-operator` next to the test executable's
    /// target directory, which `make e2e` builds first) watching only `namespace`, with its
    /// metrics on a free loopback port and no leader election (one replica, and tests may run
    /// operators side by side). Extra arguments come from `PROGLOG_OPERATOR_ARGS`
    /// (whitespace-separated).
    pub fn start(namespace: &str) -> Result<Self, E2eError> {
        if env::operator_in_cluster() {
            return Ok(Self::InCluster);
        }
        let binary = operator_binary()?;
        let log_dir = tempfile::tempdir().map_err(|source| E2eError::Spawn {
            program: "tempdir for the operator log".to_owned(),
            source,
        })?;
        let log_path = log_dir.path().join("operator.log");
        let spawn_error = |source| E2eError::Spawn {
            program: binary.display().to_string(),
            source,
        };
        let log = File::create(&log_path).map_err(spawn_error)?;
        let log_err = log.try_clone().map_err(spawn_error)?;
        let args = std::env::var("PROGLOG_OPERATOR_ARGS").unwrap_or_default();
        let child = Command::new(&binary)
            .args(["--namespace", namespace])
            .args(["--metrics-addr", "127.0.0.1:0", "--no-leader-election"])
            .args(args.split_whitespace())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(spawn_error)?;
        Ok(Self::Local {
            child,
            log_path,
            _log_dir: log_dir,
        })
    }

    /// Fails if a locally started operator has exited (with its log), so waits end early.
    pub fn ensure_running(&mut self) -> Result<(), E2eError> {
        let Self::Local {
            child, log_path, ..
        } = self
        else {
            return Ok(());
        };
        match child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(E2eError::OperatorExited {
                status: status.to_string(),
                log_tail: log_tail(log_path),
            }),
            Err(err) => Err(E2eError::OperatorExited {
                status: format!("unknown: {err}"),
                log_tail: log_tail(log_path),
            }),
        }
    }

    /// The last lines of a locally run operator's output (for failure messages).
    pub fn log_tail(&self) -> String {
        match self {
            Self::InCluster => "(operator runs in the cluster: kubectl logs -n proglog-system deploy/proglog-operator)".to_owned(),
            Self::Local { log_path, .. } => log_tail(log_path),
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        if let Self::Local { child, .. } = self {
            // Already exited is fine; reaping avoids a zombie for the rest of the test binary.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn operator_binary() -> Result<PathBuf, E2eError> {
    if let Some(path) = std::env::var_os("PROGLOG_OPERATOR_BIN") {
        return Ok(PathBuf::from(path));
    }
    // The test executable is target/<profile>/deps/NAME-HASH; binaries are in target/<profile>.
    let exe = std::env::current_exe().map_err(|source| E2eError::Spawn {
        program: "current_exe".to_owned(),
        source,
    })?;
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|profile_dir| profile_dir.join("proglog-operator"));
    match candidate {
        Some(path) if path.is_file() => Ok(path),
        _ => Err(E2eError::Unexpected(format!(
            "the proglog-operator binary was not found next to {}; build it first \
             (`cargo build -p proglog-operator --bin proglog-operator`, done by `make e2e`) \
             or set PROGLOG_OPERATOR_BIN",
            exe.display()
        ))),
    }
}

fn log_tail(path: &Path) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}
