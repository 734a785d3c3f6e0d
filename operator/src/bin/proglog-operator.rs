//! `proglog-operator`: runs the ProgLogCluster controller with leader election, Prometheus
//! metrics and `/healthz`, against the in-cluster config or `KUBECONFIG`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use proglog_operator::controller::{self, LeaseConfig, Metrics, OperatorConfig};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// Reconciles ProgLogCluster resources into running, secure ProgLog Raft clusters.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Watch only these namespaces (repeat the flag or separate with commas; default: every
    /// namespace).
    #[arg(
        long = "namespace",
        env = "PROGLOG_OPERATOR_NAMESPACES",
        value_delimiter = ','
    )]
    namespaces: Vec<String>,
    /// Address of the HTTP port serving /metrics and /healthz.
    #[arg(
        long,
        env = "PROGLOG_OPERATOR_METRICS_ADDR",
        default_value = "127.0.0.1:8080"
    )]
    metrics_addr: SocketAddr,
    /// Disable leader election (only safe with a single replica).
    #[arg(long)]
    no_leader_election: bool,
    /// Namespace of the leader election Lease (default: the pod's namespace, else "default").
    #[arg(long, env = "POD_NAMESPACE")]
    leader_election_namespace: Option<String>,
    /// Name of the leader election Lease.
    #[arg(long, default_value = "proglog-operator-leader")]
    lease_name: String,
    /// Identity of this replica (default: the pod name, else the hostname).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Timeout of each call to a node's admin API, in seconds.
    #[arg(long, default_value_t = 5)]
    admin_timeout_secs: u64,
    /// Log output format.
    #[arg(
        long,
        value_enum,
        default_value = "text",
        env = "PROGLOG_OPERATOR_LOG_FORMAT"
    )]
    log_format: LogFormat,
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: `kubectl logs` shows escape codes verbatim.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| format!("proglog-operator-{}", std::process::id()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_format);
    // One process-wide rustls provider (ring) for kube's and tonic's TLS.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let client = kube::Client::try_default()
        .await
        .context("loading the Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let metrics = Arc::new(Metrics::new());
    let server = tokio::spawn(controller::metrics::serve(
        args.metrics_addr,
        metrics.clone(),
    ));

    let identity = args.identity.clone().unwrap_or_else(hostname);
    let leader_election = (!args.no_leader_election).then(|| {
        let namespace = args
            .leader_election_namespace
            .clone()
            .unwrap_or_else(|| "default".to_owned());
        LeaseConfig {
            name: args.lease_name.clone(),
            ..LeaseConfig::new(namespace, identity.clone())
        }
    });
    let config = OperatorConfig {
        namespaces: args.namespaces.clone(),
        leader_election,
        admin_timeout: Duration::from_secs(args.admin_timeout_secs),
        instance: Some(identity),
        metrics,
        ..OperatorConfig::default()
    };
    tracing::info!(namespaces = ?args.namespaces, metrics = %args.metrics_addr, "starting the ProgLog operator");
    let result = tokio::select! {
        result = controller::run(client, config) => result.context("controller stopped"),
        served = server => match served {
            Ok(Ok(())) => Err(anyhow::anyhow!("the metrics server stopped")),
            Ok(Err(e)) => Err(anyhow::Error::new(e).context(format!("serving metrics on {}", args.metrics_addr))),
            Err(e) => Err(anyhow::Error::new(e).context("metrics server task")),
        },
    };
    result
}
