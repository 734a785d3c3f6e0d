//! `proglog-faults`: one fault-injection run against a 3- or 5-node ProgLog cluster in network
//! namespaces (needs root), then the history check. See faults/README.md.
//!
//! - `proglog-faults [--seed N] [--duration 180s] ...`: the run (as root).
//! - `proglog-faults cleanup`: remove the namespaces (and the processes in them) of a run.
//! - `proglog-faults delay ...`: the NFQUEUE packet delayer the nemesis starts inside a node's
//!   namespace when the kernel has no netem (internal).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use proglog_faults::delay::{DelayConfig, run_delayer};
use proglog_faults::netns::{Topology, teardown};
use proglog_faults::runner::{MAX_NODES, NODES, RunConfig, run_inside, run_outside};
use proglog_faults::schedule::KINDS;

#[derive(Debug, Parser)]
#[command(about = "Fault-injection run against real proglog-node processes, with a history check")]
#[command(args_conflicts_with_subcommands = true)]
// `make test-faults FAULTS_ARGS=...` appends its flags after the target's own: the last wins.
#[command(args_override_self = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Seed of the fault schedule (default: drawn from the clock); printed, to replay a run.
    #[arg(long)]
    seed: Option<u64>,
    /// How long faults are injected; the whole run takes about 30 s more.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Total append rate over all clients, ops/s.
    #[arg(long, default_value_t = 150)]
    rate: u32,
    /// Append clients, each sequential, pinned to one node (spread over the nodes); many, so
    /// that slow or timed-out operations do not lower the total rate much.
    #[arg(long, default_value_t = 40)]
    clients: usize,
    /// `ProduceStream` clients (bursts of 16 records every 200 ms on one open stream; besides
    /// the unary append clients).
    #[arg(long, default_value_t = 1)]
    stream_clients: usize,
    /// Deadline of each operation (one attempt).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    op_timeout: Duration,
    /// Interval of the `GetLogBounds(LINEARIZABLE)` queries (to a random node).
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    bounds_every: Duration,
    /// Interval of the linearizable record reads (the log's tail, through a random node).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    read_every: Duration,
    /// Where the history, node logs and data go [default: /tmp/proglog-faults/<time>-seed<seed>].
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Directory of the `proglog-node` and `proglog` binaries [default: this binary's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Nodes snapshot after this many Raft entries (small, so snapshots happen during a run; a
    /// Raft entry holds a batch of records).
    #[arg(long, default_value_t = 200)]
    snapshot_entries: u64,
    /// Raft entries kept behind a snapshot (few: a node that was down or cut off for a few
    /// seconds catches up by a snapshot install).
    #[arg(long, default_value_t = 20)]
    snapshot_keep_entries: u64,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = NODES, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(3..=MAX_NODES as u64))]
    nodes: usize,
    /// Comma-separated fault kinds to draw from [default: all]: kill, pause-leader,
    /// isolate-leader, isolate-follower, one-way, flap, slow-link, slow-all, dup-reorder,
    /// power-cut, power-cut-all.
    #[arg(long, value_delimiter = ',')]
    kinds: Vec<String>,
    /// `PROGLOG_FAILPOINT` for every node (a node built with the `failpoints` feature), e.g.
    /// `skip-fsync:/raft/log/` for the negative control.
    #[arg(long)]
    node_failpoint: Option<String>,
    /// A negative control: pass only if the checker finds an anomaly of this kind (e.g.
    /// `lost_append`), exit 1 if it does not.
    #[arg(long)]
    expect_anomaly: Option<String>,
    /// Internal: this is the run inside the client namespace.
    #[arg(long, hide = true)]
    inside: bool,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Remove the harness's namespaces and kill the processes inside them.
    Cleanup,
    /// Internal: delay packets of NFQUEUE `--queue` (run inside a node namespace).
    Delay {
        #[arg(long, default_value_t = 0)]
        queue: u16,
        #[arg(long)]
        delay_ms: f64,
        #[arg(long, default_value_t = 0.0)]
        jitter_ms: f64,
        #[arg(long, default_value_t = 100)]
        delay_pct: u32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("harness error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Some(Sub::Cleanup) => {
            let removed = teardown(&Topology::new(MAX_NODES))?;
            println!("removed {removed} namespace(s)");
            return Ok(0);
        }
        Some(Sub::Delay {
            queue,
            delay_ms,
            jitter_ms,
            delay_pct,
        }) => {
            run_delayer(DelayConfig {
                queue,
                delay_ms,
                jitter_ms,
                delay_pct,
            })?;
            return Ok(0);
        }
        None => {}
    }
    let seed = cli.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64 % 1_000_000_000)
    });
    let bin_dir = match cli.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let run_dir = cli.run_dir.unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        std::env::temp_dir()
            .join("proglog-faults")
            .join(format!("{now}-seed{seed}"))
    });
    let kinds = cli
        .kinds
        .iter()
        .map(|name| {
            KINDS
                .iter()
                .copied()
                .find(|kind| kind == name)
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "unknown fault kind {name:?}; the kinds: {}",
                        KINDS.join(", ")
                    )
                })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let config = RunConfig {
        seed,
        duration: cli.duration,
        rate: cli.rate,
        clients: cli.clients,
        stream_clients: cli.stream_clients,
        op_timeout: cli.op_timeout,
        bounds_every: cli.bounds_every,
        read_every: cli.read_every,
        run_dir,
        bin_dir,
        snapshot_entries: cli.snapshot_entries,
        snapshot_keep_entries: cli.snapshot_keep_entries,
        nodes: cli.nodes,
        kinds,
        node_failpoint: cli.node_failpoint,
        expect_anomaly: cli.expect_anomaly,
    };
    if !cli.inside {
        let code = run_outside(&config)?;
        return Ok(u8::try_from(code).unwrap_or(2));
    }
    let runtime = tokio::runtime::Runtime::new()?;
    let valid = runtime.block_on(run_inside(config))?;
    Ok(if valid { 0 } else { 1 })
}
