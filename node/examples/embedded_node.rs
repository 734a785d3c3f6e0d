//! A ProgLog node served in-process: a single node on loopback with development certificates,
//! written to and read back through the client library, then shut down gracefully — what the
//! `proglog-node` binary does, from a program (for tests and embedding).
//!
//! Run: `cargo run -p proglog-node --example embedded_node`

use std::path::Path;

use clap::Parser;
use proglog_client::{ClientConfig, ClientTlsFiles, ClusterClient, client_tls_config};
use proglog_node::config::NodeArgs;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let certs = dir.path().join("certs");
    // The same files `proglog certs` writes: a CA, the node's certificate, clients, an ACL.
    proglog_cli::dev_ca::write_dev_certs(&certs)?;
    let port = proglog_node::test_ports::reserve_port();
    let metrics_port = proglog_node::test_ports::reserve_port();
    let path = |p: &Path| p.display().to_string();
    // The node's own command line, so the example exercises the binary's configuration path.
    let config = NodeArgs::try_parse_from([
        "proglog-node".to_owned(),
        "--data-dir".into(),
        path(&dir.path().join("data")),
        "--bind-addr".into(),
        format!("127.0.0.1:{port}"),
        "--metrics-addr".into(),
        format!("127.0.0.1:{metrics_port}"),
        "--tls-cert".into(),
        path(&certs.join("node.pem")),
        "--tls-key".into(),
        path(&certs.join("node-key.pem")),
        "--tls-ca".into(),
        path(&certs.join("ca.pem")),
        "--acl-file".into(),
        path(&certs.join("acl.csv")),
    ])?
    .resolve()?;

    let shutdown = CancellationToken::new();
    let node = tokio::spawn(proglog_node::run::run_node(config, shutdown.clone()));

    // `root` may produce and consume under the dev ACL.
    let tls = client_tls_config(&ClientTlsFiles {
        ca: certs.join("ca.pem"),
        cert: Some(certs.join("root.pem")),
        key: Some(certs.join("root-key.pem")),
        server_name: None,
    })?;
    let mut config = ClientConfig::new(vec![format!("127.0.0.1:{port}")], tls);
    config.seeds_only = true;
    // The node may still be binding its port: the client retries connects it knows failed.
    let client = ClusterClient::connect(config).await?;
    let offset = client.produce("hello from an embedded node").await?;
    let record = client.consume(offset).await?;
    println!(
        "offset {offset}: {}",
        String::from_utf8_lossy(&record.value)
    );

    shutdown.cancel();
    node.await??;
    println!("node stopped");
    Ok(())
}
