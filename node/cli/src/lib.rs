//! The `proglog` command-line client (the binary is a thin `main` over [`run`]). Each
//! subcommand lives in its own module:
//! [`produce`] (values from arguments or stdin lines), [`consume`] (`--from`, `--follow`),
//! [`servers`] (cluster members, log bounds), [`certs`] (dev CA) and [`bench`](mod@bench) (load
//! generator behind `produce --bench` and `consume --bench`), [`cluster`] (membership, admin),
//! [`config_cmd`] (the config file of [`context`]s, so flags need not be repeated). [`output`]
//! owns `--output text|json` and progress bars.
//!
//! `produce`, `consume` and `servers` go through the client library ([`proglog_client`]) pinned
//! to `--addr` ([`ClientConfig::seeds_only`]: the address may be a port-forward or a Service,
//! and the node forwards produces to the leader), so a produce is retried exactly when it was
//! certainly not executed. The benchmarks call each RPC mode directly and retry nothing; the
//! admin commands use the admin service.
//!
//! [`dev_ca`] is the development certificate authority behind `proglog certs` (also the TLS
//! fixture of the node's and the fault suite's tests); the PEM files the CLI connects with are
//! loaded by [`proglog_client::tls_files`]. This crate talks to nodes only over gRPC: it does not depend on the node
//! (`proglog-node`), so neither Raft nor the server is compiled into the CLI.

#![warn(missing_docs)]

pub mod bench;
pub mod certs;
pub mod cluster;
pub mod config_cmd;
pub mod consume;
pub mod context;
pub mod dev_ca;
pub mod output;
pub mod produce;
pub mod servers;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use proglog_proto::log::v1::log_client::LogClient;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};

use self::output::OutputFormat;
use proglog_client::tls_files::{ClientTlsFiles, TlsFileError, client_tls_config};
use proglog_client::{ClientConfig, ClientError, ClusterClient, DEFAULT_MAX_MESSAGE_BYTES};

/// Largest message the CLI sends or accepts (the client library's default).
const MAX_MESSAGE_BYTES: usize = DEFAULT_MAX_MESSAGE_BYTES;

/// A failed CLI command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line or config file asks for something impossible; `proglog` exits with
    /// status 64 (EX_USAGE) for these, and 1 for every other error.
    #[error("{0}")]
    Usage(String),
    /// A CA, certificate or key file cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] TlsFileError),
    /// No connection to the node could be made.
    #[error("connecting to {addr}: {source}")]
    Connect {
        /// The address dialled.
        addr: String,
        /// Why it failed.
        source: tonic::transport::Error,
    },
    /// The node answered with an error status.
    #[error("{code:?}: {message}", code = .0.code(), message = .0.message())]
    Rpc(#[from] tonic::Status),
    /// The client library gave up (after the retries that are safe).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Reading input or writing output failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// `proglog certs` could not make or write a certificate.
    #[error(transparent)]
    Certs(#[from] crate::dev_ca::CertsError),
    /// The config file could not be replaced durably.
    #[error(transparent)]
    DurableFs(#[from] proglog_log::durable_fs::DurableFsError),
}

/// The `proglog` command line.
#[derive(Debug, Parser)]
#[command(name = "proglog", version, about = "ProgLog command-line client")]
pub struct Cli {
    /// Where the node is and who to be.
    #[command(flatten)]
    pub connection: ConnectionFlags,
    /// How results are printed.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach and authenticate to a node, as given on the command line or in the
/// environment; what is not given comes from the config file's context ([`context`]).
#[derive(Debug, Clone, Args)]
pub struct ConnectionFlags {
    /// Node or Service address, HOST:PORT [default: the context's, else 127.0.0.1:8400].
    #[arg(long, global = true, env = "PROGLOG_ADDR")]
    pub addr: Option<String>,
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
    /// Tries of a produce, consume or servers call that failed in a way safe to retry (the
    /// first included; 1: no retry). Retries wait 100 ms, doubling up to 2 s.
    #[arg(long, global = true, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_attempts: u32,
    /// Context of the config file to use [default: its current-context].
    #[arg(long, global = true, env = "PROGLOG_CONTEXT")]
    pub context: Option<String>,
    /// Config file [default: $XDG_CONFIG_HOME/proglog/config.toml, ~/.config/proglog/config.toml].
    #[arg(long, global = true, env = "PROGLOG_CONFIG")]
    pub config: Option<PathBuf>,
}

/// Where a node is and how to authenticate to it: flags and environment over the context.
#[derive(Debug, Clone)]
pub struct ConnectionArgs {
    /// Node address, HOST:PORT.
    pub addr: String,
    /// CA certificate (PEM).
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM).
    pub cert: Option<PathBuf>,
    /// Private key (PEM) of `cert`.
    pub key: Option<PathBuf>,
    /// Name to verify the node's certificate against.
    pub server_name: Option<String>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Tries of a retryable call (at least 1).
    pub max_attempts: u32,
}

/// The address used when neither a flag nor a context names one.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8400";

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
    /// The config file's contexts: set-context|use-context|get-contexts|view.
    Config(config_cmd::ConfigArgs),
    /// Print a shell completion script (e.g. `proglog completions bash > /etc/bash_completion.d/proglog`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl ConnectionFlags {
    /// The config file this invocation reads.
    pub fn config_path(&self) -> Result<PathBuf, CliError> {
        self.config
            .clone()
            .or_else(context::default_config_path)
            .ok_or_else(|| {
                CliError::Usage("no config file: set --config, PROGLOG_CONFIG or HOME".to_owned())
            })
    }

    /// Fills what the flags leave unset from the selected context of the config file.
    pub fn resolve(&self) -> Result<ConnectionArgs, CliError> {
        let config = context::ConfigFile::load(&self.config_path()?)?;
        let from_file = config
            .select(self.context.as_deref())?
            .map(|(_, context)| context.clone())
            .unwrap_or_default();
        Ok(self.over(from_file))
    }

    /// These flags over `context`.
    fn over(&self, context: context::Context) -> ConnectionArgs {
        ConnectionArgs {
            addr: self
                .addr
                .clone()
                .or(context.addr)
                .unwrap_or_else(|| DEFAULT_ADDR.to_owned()),
            ca: self.ca.clone().or(context.ca),
            cert: self.cert.clone().or(context.cert),
            key: self.key.clone().or(context.key),
            server_name: self.server_name.clone().or(context.server_name),
            connect_timeout: Duration::from(self.connect_timeout),
            max_attempts: self.max_attempts,
        }
    }
}

impl ConnectionArgs {
    fn tls(&self) -> Result<ClientTlsConfig, CliError> {
        let ca = self.ca.clone().ok_or_else(|| {
            CliError::Usage(
                "--ca (or PROGLOG_CA, or a config context: `proglog config set-context`) is \
                 required to verify the node"
                    .to_owned(),
            )
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
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(connect_err)
    }

    /// A client-library client that sends every call to `--addr` (see the module docs).
    pub async fn cluster_client(&self) -> Result<ClusterClient, CliError> {
        let mut config = ClientConfig::new(vec![self.addr.clone()], self.tls()?);
        config.connect_timeout = self.connect_timeout;
        config.max_attempts = self.max_attempts;
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
    let output = cli.output;
    match cli.command {
        Command::Certs(args) => certs::run(&args),
        Command::Config(args) => config_cmd::run(&cli.connection, output, args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "proglog", &mut std::io::stdout());
            Ok(())
        }
        // Only commands that talk to a node read the config file.
        Command::Produce(args) => produce::run(&cli.connection.resolve()?, output, args).await,
        Command::Consume(args) => consume::run(&cli.connection.resolve()?, output, args).await,
        Command::Servers => servers::run(&cli.connection.resolve()?, output).await,
        Command::Cluster(args) => cluster::run(&cli.connection.resolve()?, output, args).await,
    }
}
