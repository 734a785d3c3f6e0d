//! The nodes of a fault run: real `proglog-node` processes, each started inside its own network
//! namespace with `ip netns exec` (which execs, so the child's PID is the node's and signals reach
//! it directly), Raft and mTLS on, formed into one cluster with the `proglog cluster` CLI the way
//! an operator would.
//!
//! Certificates come from `proglog certs`, the node certificate re-issued for the namespaces'
//! addresses ([`crate::tls`]). Run directory layout: `certs/`, `nI/` (data), `nI.log` (stderr of all of the
//! node's runs), `nI.termination`, `nI.sync-journal` (what each fsync made durable, for
//! [`crate::power_cut`]; nodes are built with the `failpoints` feature).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use proglog_proto::proglog::admin::v1::admin_client::AdminClient;
use proglog_proto::proglog::admin::v1::{ClusterStatusRequest, ClusterStatusResponse};
use tokio::process::{Child, Command};

use crate::clock::NodeClock;
use crate::disk::NodeDisk;
use crate::netns::{Topology, argv, in_ns};
use crate::tls::{Endpoints, node_endpoints};

/// The gRPC (mTLS) port of every node (each has its own address).
pub const PORT: u16 = 8400;
/// The plain HTTP port (metrics, probes).
pub const METRICS_PORT: u16 = 9400;

/// Where the binaries are and how nodes are tuned.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub node_bin: PathBuf,
    pub cli_bin: PathBuf,
    pub run_dir: PathBuf,
    /// `PROGLOG_SNAPSHOT_ENTRIES` / `PROGLOG_SNAPSHOT_KEEP_ENTRIES` (small: snapshots happen).
    pub snapshot_entries: u64,
    pub snapshot_keep_entries: u64,
    /// `PROGLOG_FAILPOINT` of every node (e.g. the negative control's `skip-fsync:/raft/log/`).
    pub node_failpoint: Option<String>,
}

/// One node's process state.
#[derive(Debug, Default)]
struct NodeProc {
    child: Option<Child>,
    paused: bool,
}

/// The cluster's node processes.
#[derive(Debug)]
pub struct Cluster {
    pub topo: Topology,
    pub config: ClusterConfig,
    pub endpoints: Endpoints,
    nodes: Vec<NodeProc>,
    /// Node exits the harness did not cause (index, status), noticed at [`Cluster::reap`].
    pub unexpected_exits: Vec<(usize, String)>,
}

impl Cluster {
    /// Writes the certificates and prepares (does not start) the nodes.
    pub async fn prepare(topo: Topology, config: ClusterConfig) -> Result<Self> {
        let certs = config.run_dir.join("certs");
        run_checked(&[
            config.cli_bin.display().to_string(),
            "certs".into(),
            "--out".into(),
            certs.display().to_string(),
        ])
        .await?;
        let endpoints = node_endpoints(&certs, &topo)?;
        let nodes = (0..topo.nodes).map(|_| NodeProc::default()).collect();
        Ok(Self {
            topo,
            config,
            endpoints,
            nodes,
            unexpected_exits: Vec::new(),
        })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`'s full command line (`ip netns exec nsI proglog-node ...`).
    pub fn node_command(&self, i: usize) -> Vec<String> {
        let c = &self.config;
        let certs = c.run_dir.join("certs");
        let p = |path: &Path| path.display().to_string();
        let ip = self.topo.node_ip(i);
        let addr = format!("{ip}:{PORT}");
        let node = [
            p(&c.node_bin),
            "--data-dir".into(),
            p(&self.data_dir(i)),
            "--bind-addr".into(),
            addr.clone(),
            "--advertise-addr".into(),
            addr,
            "--metrics-addr".into(),
            format!("{ip}:{METRICS_PORT}"),
            "--ordinal".into(),
            i.to_string(),
            "--raft".into(),
            "true".into(),
            "--tls-cert".into(),
            p(&certs.join("node.pem")),
            "--tls-key".into(),
            p(&certs.join("node-key.pem")),
            "--tls-ca".into(),
            p(&certs.join("ca.pem")),
            "--acl-file".into(),
            p(&certs.join("acl.csv")),
            "--termination-log".into(),
            p(&c.run_dir.join(format!("n{i}.termination"))),
        ];
        in_ns(&self.topo.node_ns(i), &node)
    }

    /// The `proglog` CLI as `root` against node `i`.
    pub fn cli_command(&self, i: usize, args: &[&str]) -> Vec<String> {
        let certs = self.config.run_dir.join("certs");
        let mut cmd = vec![
            self.config.cli_bin.display().to_string(),
            "--addr".into(),
            self.endpoints.addrs[i].clone(),
            "--ca".into(),
            certs.join("ca.pem").display().to_string(),
            "--cert".into(),
            certs.join("root.pem").display().to_string(),
            "--key".into(),
            certs.join("root-key.pem").display().to_string(),
            "--connect-timeout".into(),
            "2s".into(),
        ];
        cmd.extend(argv(args));
        cmd
    }

    /// Starts node `i` (its stderr appended to `nI.log`).
    pub fn start(&mut self, i: usize) -> Result<()> {
        self.start_armed(i, None)
    }

    /// Starts node `i` with failpoint `extra` armed too (`PROGLOG_FAILPOINT`, after the run's
    /// own), e.g. `crash-at:install-copying`.
    pub fn start_armed(&mut self, i: usize, extra: Option<&str>) -> Result<()> {
        if self.nodes[i].child.is_some() {
            bail!("node {i} is already running");
        }
        let c = &self.config;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(c.run_dir.join(format!("n{i}.log")))?;
        std::fs::write(c.run_dir.join(format!("n{i}.termination")), "")?;
        let cmd = self.node_command(i);
        let mut command = Command::new(&cmd[0]);
        let clock = self.clock(i);
        clock.init()?;
        command.envs(crate::clock::node_env(clock.spec()));
        let failpoints: Vec<&str> = c
            .node_failpoint
            .as_deref()
            .into_iter()
            .chain(extra)
            .collect();
        if failpoints.is_empty() {
            command.env_remove("PROGLOG_FAILPOINT");
        } else {
            command.env("PROGLOG_FAILPOINT", failpoints.join(","));
        }
        let child = command
            .args(&cmd[1..])
            .env("PROGLOG_SYNC_JOURNAL", self.sync_journal(i))
            .env("PROGLOG_FSYNC_FAIL_FILE", self.disk(i).fsync_fail_trigger())
            // A node whose storage failed exits soon, so the nemesis sees it within a fault.
            .env("PROGLOG_FATAL_EXIT_DELAY", "500ms")
            .env("PROGLOG_SNAPSHOT_ENTRIES", c.snapshot_entries.to_string())
            .env(
                "PROGLOG_SNAPSHOT_KEEP_ENTRIES",
                c.snapshot_keep_entries.to_string(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        self.nodes[i] = NodeProc {
            child: Some(child),
            paused: false,
        };
        Ok(())
    }

    /// Node `i`'s PID while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().and_then(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub fn is_paused(&self, i: usize) -> bool {
        self.nodes[i].paused
    }

    /// Node `i`'s disk (a tmpfs, see [`crate::disk`]).
    pub fn disk(&self, i: usize) -> NodeDisk {
        NodeDisk::new(&self.config.run_dir, i)
    }

    /// Node `i`'s clock offset (libfaketime, [`crate::clock`]).
    pub fn clock(&self, i: usize) -> NodeClock {
        NodeClock::new(self.config.run_dir.join(format!("n{i}.faketime")))
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.disk(i).data_dir()
    }

    /// Node `i`'s sync journal (`PROGLOG_SYNC_JOURNAL`).
    pub fn sync_journal(&self, i: usize) -> PathBuf {
        self.config.run_dir.join(format!("n{i}.sync-journal"))
    }

    /// Fails unless every node records its fsyncs: without the journal a power cut would empty
    /// every file, which is not a power cut but a wipe.
    pub fn check_sync_journals(&self) -> Result<()> {
        for i in 0..self.len() {
            let journal = self.sync_journal(i);
            if std::fs::metadata(&journal).map_or(0, |m| m.len()) == 0 {
                bail!(
                    "{} is empty: proglog-node was built without the `failpoints` feature \
                     (cargo build -p proglog-node --features failpoints --bins)",
                    journal.display()
                );
            }
        }
        Ok(())
    }

    /// Cuts the files of node `i` (which must not be running) back to what it fsynced.
    pub fn power_cut(
        &self,
        i: usize,
        tear_seed: Option<u64>,
    ) -> Result<crate::power_cut::CutStats> {
        use rand::SeedableRng;
        if self.is_running(i) {
            bail!("power cut of n{i} while it runs");
        }
        let mut rng = tear_seed.map(rand::rngs::StdRng::seed_from_u64);
        crate::power_cut::cut(&self.data_dir(i), &self.sync_journal(i), rng.as_mut())
            .with_context(|| format!("power cut of n{i}"))
    }

    /// SIGKILLs the running nodes among `nodes` at once (all signals first, then the waits).
    pub async fn kill_all(&mut self, nodes: &[usize]) -> Result<()> {
        let mut victims = Vec::new();
        for &i in nodes {
            if let Some(mut child) = self.nodes[i].child.take() {
                child.start_kill()?;
                self.nodes[i].paused = false;
                victims.push(child);
            }
        }
        for mut child in victims {
            child.wait().await?;
        }
        Ok(())
    }

    /// SIGKILLs node `i` and waits for it.
    pub async fn kill(&mut self, i: usize) -> Result<()> {
        let mut child = self.nodes[i].child.take().context("node is not running")?;
        child.kill().await?;
        self.nodes[i].paused = false;
        Ok(())
    }

    /// SIGSTOP (`pause`) or SIGCONT node `i`.
    pub async fn pause(&mut self, i: usize, pause: bool) -> Result<()> {
        let pid = self.pid(i).context("node is not running")?;
        let signal = if pause { "-STOP" } else { "-CONT" };
        run_checked(&argv(&["kill", signal, &pid.to_string()])).await?;
        self.nodes[i].paused = pause;
        Ok(())
    }

    /// Waits up to `timeout` for node `i` to exit by itself (a fault that should make it stop);
    /// its status, or `None` if it still runs. Not recorded as unexpected.
    pub async fn wait_exit(&mut self, i: usize, timeout: Duration) -> Option<String> {
        let child = self.nodes[i].child.as_mut()?;
        let status = tokio::time::timeout(timeout, child.wait()).await.ok()?;
        self.nodes[i].child = None;
        self.nodes[i].paused = false;
        Some(status.map_or_else(|e| e.to_string(), |s| s.to_string()))
    }

    /// Notices nodes that exited by themselves (recorded in `unexpected_exits`).
    pub fn reap(&mut self) -> Vec<usize> {
        let mut exited = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if let Some(child) = node.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                node.child = None;
                node.paused = false;
                self.unexpected_exits.push((i, status.to_string()));
                exited.push(i);
            }
        }
        exited
    }

    /// Resumes paused nodes and restarts stopped ones.
    pub async fn revive_all(&mut self) -> Result<()> {
        self.reap();
        for i in 0..self.len() {
            if self.is_paused(i) {
                self.pause(i, false).await?;
            }
            if !self.is_running(i) {
                self.start(i)?;
            }
        }
        Ok(())
    }

    /// Makes node 0 the first voter and adds the others (retrying while nodes start).
    pub async fn form(&self) -> Result<()> {
        let timeout = Duration::from_secs(90);
        self.cli_until_ok(0, &["cluster", "init", "--if-needed"], timeout)
            .await
            .context("forming the cluster")?;
        for i in 1..self.len() {
            let addr = self.endpoints.addrs[i].clone();
            self.cli_until_ok(0, &["cluster", "add", &addr], timeout)
                .await
                .with_context(|| format!("adding n{i} to the cluster"))?;
        }
        Ok(())
    }

    /// The leader's index, as the running, unpaused nodes report it (highest term wins).
    pub async fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, u64)> = None; // (term, leader id)
        let mut members = Vec::new();
        for i in 0..self.len() {
            let Some(status) = self.status(i).await else {
                continue;
            };
            if status.leader_id != 0 && best.is_none_or(|(term, _)| status.term > term) {
                best = Some((status.term, status.leader_id));
                members = status.members;
            }
        }
        let (_, leader) = best?;
        let addr = members
            .iter()
            .filter_map(|m| m.member.as_ref())
            .find(|m| m.node_id == leader)
            .map(|m| m.rpc_addr.clone())?;
        self.endpoints.addrs.iter().position(|a| *a == addr)
    }

    /// Node `i`'s `ClusterStatus` (1 s deadline), if it runs and answers.
    pub async fn status(&self, i: usize) -> Option<ClusterStatusResponse> {
        if !self.is_running(i) || self.is_paused(i) {
            return None;
        }
        let channel = self.endpoints.channel(i, Duration::from_millis(500)).ok()?;
        let mut admin = AdminClient::new(channel);
        let call = admin.cluster_status(ClusterStatusRequest {});
        let status = tokio::time::timeout(Duration::from_secs(1), call)
            .await
            .ok()?;
        Some(status.ok()?.into_inner())
    }

    /// Runs the `proglog` CLI against node `via` until it succeeds or `timeout` passes.
    pub async fn cli_until_ok(
        &self,
        via: usize,
        args: &[&str],
        timeout: Duration,
    ) -> Result<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match run_checked(&self.cli_command(via, args)).await {
                Ok(out) => return Ok(out),
                Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
            }
        }
    }

    /// Waits until some node reports a leader.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return Ok(leader);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("no leader within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops every node: SIGCONT, SIGTERM, then SIGKILL after `grace`.
    pub async fn shutdown(&mut self, grace: Duration) {
        for i in 0..self.len() {
            if self.is_paused(i) {
                let _ = self.pause(i, false).await;
            }
            if let Some(pid) = self.pid(i) {
                let _ = run_checked(&argv(&["kill", "-TERM", &pid.to_string()])).await;
            }
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take()
                && tokio::time::timeout(grace, child.wait()).await.is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// Runs a command to completion; an error carries its stderr.
pub async fn run_checked(cmd: &[String]) -> Result<String> {
    let (program, args) = cmd.split_first().context("empty command")?;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
