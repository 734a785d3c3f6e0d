//! One fault run, end to end. [`run_outside`] (as root, in the root namespace) builds the
//! network ([`crate::netns`]), re-executes this binary inside the client namespace with
//! `--inside`, and removes the network when that child ends — also when it fails or the run is
//! interrupted. [`run_inside`] starts the cluster, the clients and the nemesis, heals, reads
//! the final logs, checks the history and prints the table and the summary line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cluster::{Cluster, ClusterConfig};
use crate::history::RunClock;
use crate::jsonl::{HistoryWriter, read_history};
use crate::nemesis::{Nemesis, Shaper, schedule};
use crate::netns::{NetworkGuard, Topology};
use crate::workload::{self, ClientSettings, Recorder};
use crate::{check, tally};

/// Everything a run is parameterised by (the runner's flags).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub seed: u64,
    /// How long faults are injected (the run takes about a minute more).
    pub duration: Duration,
    /// Total append rate over all clients (ops/s).
    pub rate: u32,
    pub clients: usize,
    /// `ProduceStream` clients ([`crate::stream_client`]), besides the unary ones.
    pub stream_clients: usize,
    pub op_timeout: Duration,
    /// Interval of the linearizable bounds queries.
    pub bounds_every: Duration,
    /// Interval of the linearizable record reads ([`crate::reads`]).
    pub read_every: Duration,
    pub run_dir: PathBuf,
    /// Where `proglog-node` and `proglog` are.
    pub bin_dir: PathBuf,
    pub snapshot_entries: u64,
    pub snapshot_keep_entries: u64,
    /// Nodes in the cluster (3 or 5).
    pub nodes: usize,
    /// Fault kinds to draw from (all of [`crate::schedule::KINDS`] when empty).
    pub kinds: Vec<&'static str>,
    /// `PROGLOG_FAILPOINT` of every node.
    pub node_failpoint: Option<String>,
    /// A negative control: the run succeeds only if the checker finds an anomaly of this kind
    /// (snake_case, e.g. `lost_append`).
    pub expect_anomaly: Option<String>,
}

impl RunConfig {
    /// The flags that reproduce this configuration (passed to the inner process).
    pub fn args(&self) -> Vec<String> {
        let d = |d: Duration| humantime::format_duration(d).to_string();
        let mut args = vec![
            format!("--seed={}", self.seed),
            format!("--duration={}", d(self.duration)),
            format!("--rate={}", self.rate),
            format!("--clients={}", self.clients),
            format!("--stream-clients={}", self.stream_clients),
            format!("--op-timeout={}", d(self.op_timeout)),
            format!("--bounds-every={}", d(self.bounds_every)),
            format!("--read-every={}", d(self.read_every)),
            format!("--run-dir={}", self.run_dir.display()),
            format!("--bin-dir={}", self.bin_dir.display()),
            format!("--snapshot-entries={}", self.snapshot_entries),
            format!("--snapshot-keep-entries={}", self.snapshot_keep_entries),
            format!("--nodes={}", self.nodes),
        ];
        if !self.kinds.is_empty() {
            args.push(format!("--kinds={}", self.kinds.join(",")));
        }
        if let Some(failpoint) = &self.node_failpoint {
            args.push(format!("--node-failpoint={failpoint}"));
        }
        if let Some(kind) = &self.expect_anomaly {
            args.push(format!("--expect-anomaly={kind}"));
        }
        args
    }

    /// Whether `report` is what this run must produce: no anomaly, or for a negative control
    /// at least one of the expected kind.
    pub fn passes(&self, report: &crate::Report) -> bool {
        match &self.expect_anomaly {
            None => report.is_valid(),
            Some(expected) => report.kinds().keys().any(|kind| {
                serde_json::to_value(kind)
                    .ok()
                    .as_ref()
                    .and_then(|v| v.as_str())
                    == Some(expected.as_str())
            }),
        }
    }
}

/// How often a stream client sends a burst, and how many records: 80 records/s per stream,
/// each burst sent back to back so the node has several of the stream's appends in flight.
const STREAM_PERIOD: Duration = Duration::from_millis(200);
const STREAM_BURST: usize = 16;

/// Nodes in a run, by default.
pub const NODES: usize = 3;
/// The most nodes a run can have (the addresses the topology hands out).
pub const MAX_NODES: usize = 5;

/// As root: network up, `ip netns exec CLIENT_NS <this binary> --inside ...`, network down.
/// Returns the inner run's exit code.
pub fn run_outside(config: &RunConfig) -> Result<i32> {
    let uid = std::fs::read_to_string("/proc/self/status")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("Uid:")
                .map(|r| r.split_whitespace().next().map(str::to_owned))
        })
        .flatten()
        .unwrap_or_default();
    if uid != "0" {
        bail!("the fault harness needs root (network namespaces, iptables); run it with sudo");
    }
    for bin in ["proglog-node", "proglog"] {
        let path = config.bin_dir.join(bin);
        if !path.is_file() {
            bail!(
                "{} is missing: cargo build -p proglog-node --bins",
                path.display()
            );
        }
    }
    std::fs::create_dir_all(&config.run_dir)?;
    println!("seed {} (replay with --seed {})", config.seed, config.seed);
    println!("run directory: {}", config.run_dir.display());
    let topo = Topology::new(config.nodes);
    let runtime = tokio::runtime::Runtime::new()?;
    let guard = NetworkGuard::setup(topo.clone())?;
    let exe = std::env::current_exe()?;
    let code = runtime.block_on(async {
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", &topo.client_ns()])
            .arg(&exe)
            .arg("--inside")
            .args(config.args())
            .kill_on_drop(true)
            .spawn()
            .context("starting the runner in the client namespace")?;
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            status = child.wait() => Ok::<_, anyhow::Error>(status?.code().unwrap_or(2)),
            _ = tokio::signal::ctrl_c() => {
                let _ = child.kill().await;
                eprintln!("interrupted; removing the network");
                Ok(130)
            }
            _ = sigterm.recv() => {
                let _ = child.kill().await;
                eprintln!("terminated; removing the network");
                Ok(143)
            }
        }
    })?;
    drop(guard);
    Ok(code)
}

/// Inside the client namespace: the whole run. Returns whether the run passed
/// ([`RunConfig::passes`]).
pub async fn run_inside(config: RunConfig) -> Result<bool> {
    let wall = Instant::now();
    // The run uses its own links to the binaries: a rebuild during the run (other work in the
    // same target directory) must not change the node a restart runs, nor the delayer.
    let bin = config.run_dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    let link = |from: PathBuf, name: &str| -> Result<String> {
        let to = bin.join(name);
        let _ = std::fs::remove_file(&to);
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to).with_context(|| format!("copying {}", from.display()))?;
        }
        Ok(to.display().to_string())
    };
    let exe = link(std::env::current_exe()?, "proglog-faults")?;
    link(config.bin_dir.join("proglog-node"), "proglog-node")?;
    link(config.bin_dir.join("proglog"), "proglog")?;
    let topo = Topology::new(config.nodes);
    let clock = RunClock::start();
    let cluster_config = ClusterConfig {
        node_bin: bin.join("proglog-node"),
        cli_bin: bin.join("proglog"),
        run_dir: config.run_dir.clone(),
        snapshot_entries: config.snapshot_entries,
        snapshot_keep_entries: config.snapshot_keep_entries,
        node_failpoint: config.node_failpoint.clone(),
    };
    let mut cluster = Cluster::prepare(topo, cluster_config).await?;
    for i in 0..cluster.len() {
        cluster.disk(i).mount().await?;
        cluster.start(i)?;
    }
    drive(&config, cluster, clock, wall, exe).await
}

async fn drive(
    config: &RunConfig,
    cluster: Cluster,
    clock: RunClock,
    wall: Instant,
    exe: String,
) -> Result<bool> {
    cluster.form().await?;
    let leader = cluster.wait_for_leader(Duration::from_secs(30)).await?;
    cluster.check_sync_journals()?;
    let shaper = Shaper::detect().await;
    println!(
        "cluster formed: {} nodes, leader n{leader}; link faults via {shaper:?}",
        cluster.len()
    );
    let mut kinds = config.kinds.clone();
    if !crate::clock::available() {
        let asked = kinds.iter().any(|k| crate::clock::CLOCK_KINDS.contains(k));
        anyhow::ensure!(
            !asked,
            "clock faults need libfaketime ({}): apt-get install libfaketime",
            crate::clock::LIBFAKETIME
        );
        if kinds.is_empty() {
            kinds = crate::schedule::KINDS.to_vec();
        }
        kinds.retain(|k| !crate::clock::CLOCK_KINDS.contains(k));
        println!(
            "SKIPPED {}: libfaketime is not installed ({})",
            crate::clock::CLOCK_KINDS.join(", "),
            crate::clock::LIBFAKETIME
        );
    }
    let steps = schedule(
        config.seed,
        config.duration.as_millis() as u64,
        cluster.len(),
        &kinds,
    );
    println!(
        "schedule: {} faults over {:?}",
        steps.len(),
        config.duration
    );

    let history_path = config.run_dir.join("history.jsonl");
    let rec = Recorder::new(clock, HistoryWriter::create(&history_path)?);
    let settings = ClientSettings {
        endpoints: cluster.endpoints.clone(),
        op_timeout: config.op_timeout,
    };
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let period = Duration::from_secs_f64(config.clients as f64 / f64::from(config.rate));
    for w in 0..config.clients {
        let node = w % cluster.len();
        let (s, r, t) = (settings.clone(), rec.clone(), stop.clone());
        tasks.spawn(async move {
            workload::append_client(w, node, period, s, r, t)
                .await
                .map(|()| 0)
        });
    }
    for w in 0..config.stream_clients {
        let node = w % cluster.len();
        let (s, r, t) = (settings.clone(), rec.clone(), stop.clone());
        tasks.spawn(async move {
            crate::stream_client::stream_client(w, node, STREAM_PERIOD, STREAM_BURST, s, r, t)
                .await
                .map(|()| 0)
        });
    }
    let (s, r, t) = (settings.clone(), rec.clone(), stop.clone());
    let every = config.bounds_every;
    tasks.spawn(async move { workload::bounds_poller(every, s, r, t).await.map(|()| 0) });
    let (s, r, t) = (settings.clone(), rec.clone(), stop.clone());
    let every = config.read_every;
    tasks.spawn(async move {
        crate::reads::linearizable_reader(every, s, r, t)
            .await
            .map(|()| 0)
    });
    // Flush the history now and then, so a crashed run still leaves most of it.
    let (r, t) = (rec.clone(), stop.clone());
    tasks.spawn(async move {
        while !t.is_cancelled() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => r.flush()?,
                _ = t.cancelled() => {}
            }
        }
        Ok(0)
    });
    for first in [1, 2] {
        let (s, r, t) = (settings.clone(), rec.clone(), stop.clone());
        tasks.spawn(workload::consumer(first, Duration::from_secs(4), s, r, t));
    }

    let mut nemesis = Nemesis::new(cluster, shaper, clock, exe)?;
    nemesis.observe(rec.clone(), settings.clone());
    let t0 = clock.now_ns();
    let nemesis_result = nemesis.run(&steps, t0).await;
    let heal_result = nemesis.heal().await;
    nemesis.note("all faults healed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.cancel();
    let mut consumed = 0;
    while let Some(joined) = tasks.join_next().await {
        consumed += joined.context("client task panicked")??;
    }
    let elapsed = (clock.now_ns() - t0) as f64 / 1e9;
    nemesis_result?;
    heal_result?;

    // A cluster that does not come back is a failed run, but its history is still checked:
    // the report says what the nodes that answer hold (the negative control ends this way).
    let recovered = match workload::final_append(&settings, &rec, Duration::from_secs(10)).await {
        Ok(offset) => {
            println!("after healing, an append succeeded at offset {offset}");
            true
        }
        Err(e) => {
            println!("THE CLUSTER DID NOT RECOVER after healing: {e:#}");
            false
        }
    };
    let wait = Duration::from_secs(if recovered { 30 } else { 5 });
    let logs = workload::read_final_logs(&settings, wait, !recovered).await?;
    for log in &logs {
        rec.final_log(log)?;
    }
    rec.end(config.nodes)?;
    rec.flush()?;
    let unexpected = nemesis.cluster.unexpected_exits.clone();
    nemesis.cluster.shutdown(Duration::from_secs(10)).await;

    let history = read_history(&history_path)?;
    let report = check(&history);
    let appends = report.counts.appends;
    println!(
        "workload: {:.0} appends/s over {elapsed:.0}s ({} clients), {} bounds queries, {} reads ({} ok), {} records consumed; final logs: {}",
        appends.total() as f64 / elapsed,
        config.clients,
        report.counts.bounds.total(),
        report.counts.reads.total(),
        report.counts.reads.ok,
        consumed,
        logs.iter()
            .map(|l| format!("{} next {}", l.node, l.committed_next.unwrap_or(0)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for (i, status) in &unexpected {
        println!("WARNING: node n{i} exited by itself ({status}); see n{i}.log");
    }
    let rows = tally::tally(&history, &report, &nemesis.events);
    let table = tally::render(&rows);
    print!("\n{table}\n{report}");
    let summary = format!(
        "faults: {} injected, {}",
        nemesis.events.len(),
        report.summary()
    );
    std::fs::write(
        config.run_dir.join("report.txt"),
        format!("seed {}\n{table}\n{report}{summary}\n", config.seed),
    )?;
    let passed = config.passes(&report);
    if let Some(expected) = &config.expect_anomaly {
        println!(
            "NEGATIVE CONTROL (node failpoint {:?}): the checker {} a `{expected}` anomaly",
            config.node_failpoint.as_deref().unwrap_or("none"),
            if passed {
                "found, as it must,"
            } else {
                "did NOT find"
            }
        );
    }
    if !passed {
        // The tmpfs disks go away with this process's mount namespace.
        for i in 0..nemesis.cluster.len() {
            match nemesis.cluster.disk(i).copy_out().await {
                Ok(to) => println!("n{i}'s data: {}", to.display()),
                Err(e) => println!("n{i}'s data could not be copied: {e:#}"),
            }
        }
    }
    if report.is_valid() {
        // The binaries' links pin old builds on disk once they are rebuilt; kept on anomalies.
        let _ = std::fs::remove_dir_all(config.run_dir.join("bin"));
    }
    println!("history and node logs: {}", config.run_dir.display());
    println!(
        "seed {}, wall time {:.0}s",
        config.seed,
        wall.elapsed().as_secs_f64()
    );
    println!("{summary}");
    if !recovered && config.expect_anomaly.is_none() {
        bail!("the cluster did not recover after healing (see the report above)");
    }
    Ok(passed)
}
