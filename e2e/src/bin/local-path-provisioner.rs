//! `local-path-provisioner`: dynamically provisions hostPath PersistentVolumes (one directory
//! per claim under `--root`) for the single-node local cluster, run as a host process by the
//! cluster script. kind ships rancher's local-path-provisioner for this; we cannot pull its
//! image, so this small equivalent runs on the host instead. The logic lives in
//! [`proglog_e2e::provisioner`].

use std::{io::IsTerminal as _, path::PathBuf};

use anyhow::Context as _;
use clap::Parser;
use proglog_e2e::provisioner::{self, DEFAULT_PROVISIONER_NAME, ProvisionerConfig};

/// Provisions hostPath PersistentVolumes for claims of StorageClasses naming this provisioner,
/// and deletes them once released (reclaim policy Delete). Uses KUBECONFIG.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Host directory holding one sub-directory per volume (created if missing).
    #[arg(long)]
    root: PathBuf,
    /// Provisioner name, matched against `StorageClass.provisioner`.
    #[arg(long, default_value = DEFAULT_PROVISIONER_NAME)]
    provisioner_name: String,
    /// Name of the node holding the volumes (their `kubernetes.io/hostname` node affinity).
    #[arg(long)]
    node_name: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // stderr, and colours only on a terminal: the cluster script sends this to a log file.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();

    std::fs::create_dir_all(&args.root)
        .with_context(|| format!("creating --root {}", args.root.display()))?;
    // Canonical, so that the "directly under the root" check of deletions compares like with
    // like (no symbolic link or `..` in the root itself).
    let root = args
        .root
        .canonicalize()
        .with_context(|| format!("resolving --root {}", args.root.display()))?;
    let client = kube::Client::try_default()
        .await
        .context("loading the Kubernetes configuration (KUBECONFIG or in-cluster)")?;

    tracing::info!(root = %root.display(), provisioner = %args.provisioner_name, node = %args.node_name, "starting");
    provisioner::run(
        client,
        ProvisionerConfig {
            name: args.provisioner_name,
            root,
            node_name: args.node_name,
        },
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}
