//! The `proglog` command-line client. Each subcommand lives in its own module:
//! [`produce`] (values from arguments or stdin lines), [`consume`] (`--from`, `--follow`),
//! [`servers`] (cluster members, log bounds), [`certs`] (dev CA) and [`bench`] (load
//! generator behind `produce --bench` and `consume --bench`), [`cluster`] (membership, admin).
//!
//! `produce`, `consume` and `servers` go through the client library ([`crate::client`]) pinned
//! to `--addr` ([`ClientConfig::seeds_only`]: the address may be a port-forward or a Service,
//! and the node forwards produces to the leader), so a produce is retried exactly when it was
//! certainly not executed. The benchmarks call each RPC mode directly and retry nothing; the
//! admin commands use the admin service.

pub mod bench;
pub mod certs;
pub mod cluster;
pub mod consume;
pub mod produce;
pub mod servers;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use proglog_proto::log::v1::log_client::LogClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use crate::client::{ClientConfig, ClientError, ClusterClient, DEFAULT_MAX_MESSAGE_BYTES};
use crate::tls::{ClientTlsFiles, TlsError, client_tls_config};

/// Largest message the CLI sends or accepts (the client library's default).
const MAX_MESSAGE_BYTES: usize = DEFAULT_MAX_MESSAGE_BYTES;

/// A failed CLI command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        source: tonic::transport::Error,
    },
    #[error("{code:?}: {message}", code = .0.code(), message = .0.message())]
    Rpc(#[from] tonic::Status),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Certs(#[from] crate::certs::CertsError),
}

/// The `proglog` command line.
#[derive(Debug, Parser)]
#[command(name = "proglog", version, about = "ProgLog command-line client")]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach and authenticate to a node.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Node address, HOST:PORT.
    #[arg(
        long,
        global = true,
        env = "PROGLOG_ADDR",
        default_value = "127.0.0.1:8400"
    )]
    pub addr: String,
    /// CA certificate (PEM) that signed the node's certificate.
    #[arg(long, global = true, env = "PROGLOG_CA")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM); its CN is your identity for the ACL.
    #[arg(long, global = true, env = "PROGLOG_CERT")]
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of --cert.
    #[arg(long, global = true, env = "PROGLOG_KEY")]
    pub key: Option<PathBuf>,
    /// Name to verify the node's certificate against [default: the host of --addr].
    #[arg(long, global = true, env = "PROGLOG_SERVER_NAME")]
    pub server_name: Option<String>,
    /// Give up connecting after this long.
    #[arg(long, global = true, default_value = "10s")]
    pub connect_timeout: humantime::Duration,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Append records (arguments, or one per stdin line); prints their offsets.
    Produce(produce::ProduceArgs),
    /// Print records from an offset; with --follow, keep waiting for new ones.
    Consume(consume::ConsumeArgs),
    /// List the cluster's servers and the log's bounds.
    Servers,
    /// Write a development CA, node and client certificates and a dev ACL.
    Certs(certs::CertsArgs),
    /// Cluster membership and status (admin identity): status|init|add|promote|remove|transfer.
    Cluster(cluster::ClusterArgs),
}

impl ConnectionArgs {
    fn tls(&self) -> Result<ClientTlsConfig, CliError> {
        let ca = self.ca.clone().ok_or_else(|| {
            CliError::Usage("--ca (or PROGLOG_CA) is required to verify the node".to_owned())
        })?;
        Ok(client_tls_config(&ClientTlsFiles {
            ca,
            cert: self.cert.clone(),
            key: self.key.clone(),
            server_name: self.server_name.clone(),
        })?)
    }

    /// A channel to the node over mutual TLS.
    pub async fn channel(&self) -> Result<Channel, CliError> {
        let tls = self.tls()?;
        let connect_err = |source| CliError::Connect {
            addr: self.addr.clone(),
            source,
        };
        Endpoint::from_shared(format!("https://{}", self.addr))
            .map_err(connect_err)?
            .tls_config(tls)
            .map_err(connect_err)?
            .connect_timeout(Duration::from(self.connect_timeout))
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(connect_err)
    }

    /// A client-library client that sends every call to `--addr` (see the module docs).
    pub async fn cluster_client(&self) -> Result<ClusterClient, CliError> {
        let mut config = ClientConfig::new(vec![self.addr.clone()], self.tls()?);
        config.connect_timeout = Duration::from(self.connect_timeout);
        config.seeds_only = true;
        config.max_message_bytes = MAX_MESSAGE_BYTES;
        Ok(ClusterClient::connect(config).await?)
    }
}

/// A `log.v1.Log` client over `channel` with generous message limits.
pub fn log_client(channel: Channel) -> LogClient<Channel> {
    LogClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES)
}

/// Runs one CLI invocation.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Produce(args) => produce::run(&cli.connection, args).await,
        Command::Consume(args) => consume::run(&cli.connection, args).await,
        Command::Servers => servers::run(&cli.connection).await,
        Command::Certs(args) => certs::run(&args),
        Command::Cluster(args) => cluster::run(&cli.connection, args).await,
    }
}
