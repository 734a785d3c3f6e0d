//! The node's configuration: command-line flags, each also settable by an environment variable
//! and by a key of an optional TOML file (`--config`). Precedence: flag > environment > file >
//! default. [`NodeArgs::resolve`] validates everything up front so a bad setting stops the node
//! with a clear message (the binary exits with status 64, `EX_USAGE`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use proglog_log::{LogConfig, RetentionPolicy};
use proglog_proto::limits;
use serde::Deserialize;

use crate::backend::GroupCommitConfig;
use crate::server::{ServerLimits, ServiceLimits};
use crate::telemetry::{LogFormat, OtlpExport};
use crate::tls::ServerTlsFiles;

/// Exit status for invalid configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_INVALID_CONFIG: i32 = 64;
/// Kubernetes' default `terminationMessagePath`.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// An unusable configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The `--config` file could not be read.
    #[error("reading config file {path}: {source}")]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The `--config` file is not valid TOML for the node (unknown keys are refused).
    #[error("config file {path}: {source}")]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// Where and why parsing failed.
        source: Box<toml::de::Error>,
    },
    /// A setting without a default was given nowhere (its flag name).
    #[error("{0} is required (flag --{0}, or env/config file)")]
    Missing(&'static str),
    /// A setting's value is out of range or inconsistent with another.
    #[error("{name}: {reason}")]
    Invalid {
        /// The setting's flag name.
        name: &'static str,
        /// Why the value is refused.
        reason: String,
    },
}

/// Flags of `proglog-node`. Every field is optional here so the file can fill the gaps.
#[derive(Debug, Default, Parser, Deserialize)]
#[command(name = "proglog-node", version, about = "Runs one ProgLog log node")]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct NodeArgs {
    /// TOML file with any of these settings (keys are the flag names).
    #[arg(long, env = "PROGLOG_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory of the log's data.
    #[arg(long, env = "PROGLOG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Address of the gRPC (mTLS) port [default: 0.0.0.0:8400].
    #[arg(long, env = "PROGLOG_BIND_ADDR")]
    pub bind_addr: Option<SocketAddr>,
    /// Address other nodes and clients reach this node at [default: the bind address, or
    /// the hostname with its port when bound to 0.0.0.0].
    #[arg(long, env = "PROGLOG_ADVERTISE_ADDR")]
    pub advertise_addr: Option<String>,
    /// Address of the plain HTTP port (/metrics, /healthz, /readyz, h2c gRPC health)
    /// [default: 0.0.0.0:9400].
    #[arg(long, env = "PROGLOG_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// This node's ordinal [default: the `-N` suffix of the hostname, else 0].
    #[arg(long, env = "PROGLOG_ORDINAL")]
    pub ordinal: Option<u64>,
    /// PEM certificate chain of this node.
    #[arg(long, env = "PROGLOG_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of this node.
    #[arg(long, env = "PROGLOG_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s) that client certificates must chain to.
    #[arg(long, env = "PROGLOG_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// ACL policy file (`subject, object, action` lines; default deny).
    #[arg(long, env = "PROGLOG_ACL_FILE")]
    pub acl_file: Option<PathBuf>,
    /// Largest record value accepted, in bytes [default: 1048576].
    #[arg(long, env = "PROGLOG_MAX_RECORD_SIZE")]
    pub max_record_size: Option<u64>,
    /// Largest gRPC message accepted, in bytes [default: 4194304].
    #[arg(long, env = "PROGLOG_MAX_MESSAGE_SIZE")]
    pub max_message_size: Option<u64>,
    /// Largest segment store file, in bytes [default: 67108864].
    #[arg(long, env = "PROGLOG_SEGMENT_MAX_STORE_BYTES")]
    pub segment_max_store_bytes: Option<u64>,
    /// Largest segment index file, in bytes (12 per record) [default: 12582912].
    #[arg(long, env = "PROGLOG_SEGMENT_MAX_INDEX_BYTES")]
    pub segment_max_index_bytes: Option<u64>,
    /// Delete the oldest segments once the log exceeds this many bytes [default: keep all].
    #[arg(long, env = "PROGLOG_RETENTION_BYTES")]
    pub retention_bytes: Option<u64>,
    /// Delete segments whose last record is older than this, e.g. `7d` [default: keep all].
    #[arg(long, env = "PROGLOG_RETENTION_AGE")]
    #[serde(default, deserialize_with = "de_duration")]
    pub retention_age: Option<humantime::Duration>,
    /// HTTP/2 streams (concurrent calls) per connection [default: 256].
    #[arg(long, env = "PROGLOG_MAX_CONCURRENT_STREAMS")]
    pub max_concurrent_streams: Option<u32>,
    /// Interval of keep-alive pings to clients [default: 30s].
    #[arg(long, env = "PROGLOG_KEEPALIVE_INTERVAL")]
    #[serde(default, deserialize_with = "de_duration")]
    pub keepalive_interval: Option<humantime::Duration>,
    /// Close a connection whose client does not answer a ping within this [default: 10s].
    #[arg(long, env = "PROGLOG_KEEPALIVE_TIMEOUT")]
    #[serde(default, deserialize_with = "de_duration")]
    pub keepalive_timeout: Option<humantime::Duration>,
    /// Drop connections that have not completed the TLS handshake after this [default: 10s].
    #[arg(long, env = "PROGLOG_HANDSHAKE_TIMEOUT")]
    #[serde(default, deserialize_with = "de_duration")]
    pub handshake_timeout: Option<humantime::Duration>,
    /// Fail a call whose client, having announced a request message, keeps the node waiting
    /// for its bytes longer than this in all (the message's memory budget is released)
    /// [default: 30s].
    #[arg(long, env = "PROGLOG_MESSAGE_TIMEOUT")]
    #[serde(default, deserialize_with = "de_duration")]
    pub message_timeout: Option<humantime::Duration>,
    /// Memory budget for record bytes in flight in client calls (requests being received and
    /// appended, responses being read and sent); calls wait while it is spent, and one record
    /// larger than it runs alone [default: 268435456 (256 MiB); at least 1 MiB].
    #[arg(long, env = "PROGLOG_MEMORY_BUDGET_BYTES")]
    pub memory_budget_bytes: Option<u64>,
    /// Connections at once (clients and peers); further ones wait in the listen backlog
    /// [default: 1024].
    #[arg(long, env = "PROGLOG_MAX_CONNECTIONS")]
    pub max_connections: Option<u64>,
    /// Connections at once without a verified client certificate: TLS handshakes in progress,
    /// and clients without a certificate (health, reflection) [default: 128].
    #[arg(long, env = "PROGLOG_MAX_UNAUTHENTICATED_CONNECTIONS")]
    pub max_unauthenticated_connections: Option<u64>,
    /// Close a connection without a client certificate this long after it was accepted, idle
    /// or not [default: 10s].
    #[arg(long, env = "PROGLOG_UNAUTHENTICATED_TIMEOUT")]
    #[serde(default, deserialize_with = "de_duration")]
    pub unauthenticated_timeout: Option<humantime::Duration>,
    /// HTTP/2 stream window: bytes a client may send on one call before the node reads them
    /// [default: 1048576].
    #[arg(long, env = "PROGLOG_HTTP2_STREAM_WINDOW_BYTES")]
    pub http2_stream_window_bytes: Option<u32>,
    /// HTTP/2 connection window: bytes a client may send on one connection before the node
    /// reads them [default: 1048576].
    #[arg(long, env = "PROGLOG_HTTP2_CONNECTION_WINDOW_BYTES")]
    pub http2_connection_window_bytes: Option<u32>,
    /// Largest HTTP/2 frame accepted [default: 16384].
    #[arg(long, env = "PROGLOG_HTTP2_MAX_FRAME_BYTES")]
    pub http2_max_frame_bytes: Option<u32>,
    /// Largest HTTP/2 header list (a call's metadata) accepted [default: 16384].
    #[arg(long, env = "PROGLOG_HTTP2_MAX_HEADER_LIST_BYTES")]
    pub http2_max_header_list_bytes: Option<u32>,
    /// How often certificate and ACL files are checked for changes [default: 5s].
    #[arg(long, env = "PROGLOG_RELOAD_INTERVAL")]
    #[serde(default, deserialize_with = "de_duration")]
    pub reload_interval: Option<humantime::Duration>,
    /// Replicate with Raft (`true`): the node joins a cluster through the admin API
    /// (`proglog cluster init|add|promote`) [default: false, a single node].
    #[arg(long, env = "PROGLOG_RAFT")]
    pub raft: Option<bool>,
    /// Raft mode: take a snapshot after this many log entries since the last one; the log
    /// entries it covers are then purged [default: 20000].
    #[arg(long, env = "PROGLOG_SNAPSHOT_ENTRIES")]
    pub snapshot_entries: Option<u64>,
    /// Raft mode: log entries kept behind a snapshot, so a briefly lagging follower catches up
    /// from the log instead of a snapshot [default: 5000].
    #[arg(long, env = "PROGLOG_SNAPSHOT_KEEP_ENTRIES")]
    pub snapshot_keep_entries: Option<u64>,
    /// Log output format [default: text].
    #[arg(long, env = "PROGLOG_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// How long in-flight calls may take to finish on SIGTERM/SIGINT [default: 10s].
    #[arg(long, env = "PROGLOG_SHUTDOWN_GRACE")]
    #[serde(default, deserialize_with = "de_duration")]
    pub shutdown_grace: Option<humantime::Duration>,
    /// Export tracing spans over OTLP/gRPC to this collector, e.g. `http://127.0.0.1:4317`
    /// [default: no export].
    #[arg(long, env = "PROGLOG_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// File that gets the reason when the node exits on an error, if it exists (Kubernetes'
    /// terminationMessagePath) [default: /dev/termination-log].
    #[arg(long, env = "PROGLOG_TERMINATION_LOG")]
    pub termination_log: Option<PathBuf>,
    /// How long a node whose Raft core stopped keeps failing its probes, with the reason, before
    /// it exits [default: 5s].
    #[arg(long, env = "PROGLOG_FATAL_EXIT_DELAY")]
    #[serde(default, deserialize_with = "de_duration")]
    pub fatal_exit_delay: Option<humantime::Duration>,
    /// Threads that run the node's async tasks; 0 means one per CPU the process may use
    /// (cgroup quota included) [default: 0]. Size it to the CPUs the node can count on.
    #[arg(long, env = "PROGLOG_WORKER_THREADS")]
    pub worker_threads: Option<u64>,
}

fn de_duration<'de, D>(deserializer: D) -> Result<Option<humantime::Duration>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text = Option::<String>::deserialize(deserializer)?;
    text.map(|t| {
        t.parse::<humantime::Duration>()
            .map_err(serde::de::Error::custom)
    })
    .transpose()
}

/// A validated node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Where the logs and the Raft state live.
    pub data_dir: PathBuf,
    /// The gRPC (mTLS) listening address.
    pub bind_addr: SocketAddr,
    /// The address other nodes and clients reach this node at (`HOST:PORT`).
    pub advertise_addr: String,
    /// The plain HTTP port: metrics, health and readiness probes.
    pub metrics_addr: SocketAddr,
    /// This node's ordinal in its StatefulSet (the low digits of its Raft id).
    pub ordinal: u64,
    /// The node's certificate, key and the CA client certificates must chain to.
    pub tls: ServerTlsFiles,
    /// The ACL policy file (reloaded when it changes).
    pub acl_file: PathBuf,
    /// Segment and record limits of the logs.
    pub log: LogConfig,
    /// What the user log keeps; the default keeps everything.
    pub retention: RetentionPolicy,
    /// How a single node batches appends into one fsync.
    pub group_commit: GroupCommitConfig,
    /// Connection, request and memory limits of the gRPC server.
    pub limits: ServerLimits,
    /// How often certificate and ACL files are checked for changes.
    pub reload_interval: Duration,
    /// Log output format (text or JSON lines).
    pub log_format: LogFormat,
    /// How long in-flight calls may take to finish on SIGTERM/SIGINT.
    pub shutdown_grace: Duration,
    /// Replicate with Raft instead of running a single node.
    pub raft: bool,
    /// When Raft mode snapshots and what it keeps behind a snapshot.
    pub snapshots: SnapshotPolicy,
    /// OTLP trace export (`--otlp-endpoint`), off when `None`.
    pub otlp: Option<OtlpExport>,
    /// Where the exit reason goes (`--termination-log`).
    pub termination_log: PathBuf,
    /// Fail-stop delay after the Raft core stopped (`--fatal-exit-delay`).
    pub fatal_exit_delay: Duration,
    /// The async runtime's worker threads (`--worker-threads`).
    pub worker_threads: crate::runtime::WorkerThreads,
}

impl NodeArgs {
    /// Fills unset flags from the config file (if any).
    pub fn merge_file(self) -> Result<Self, ConfigError> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let file = Self::from_file(&path)?;
        Ok(Self {
            config: self.config,
            data_dir: self.data_dir.or(file.data_dir),
            bind_addr: self.bind_addr.or(file.bind_addr),
            advertise_addr: self.advertise_addr.or(file.advertise_addr),
            metrics_addr: self.metrics_addr.or(file.metrics_addr),
            ordinal: self.ordinal.or(file.ordinal),
            tls_cert: self.tls_cert.or(file.tls_cert),
            tls_key: self.tls_key.or(file.tls_key),
            tls_ca: self.tls_ca.or(file.tls_ca),
            acl_file: self.acl_file.or(file.acl_file),
            max_record_size: self.max_record_size.or(file.max_record_size),
            max_message_size: self.max_message_size.or(file.max_message_size),
            segment_max_store_bytes: self
                .segment_max_store_bytes
                .or(file.segment_max_store_bytes),
            segment_max_index_bytes: self
                .segment_max_index_bytes
                .or(file.segment_max_index_bytes),
            retention_bytes: self.retention_bytes.or(file.retention_bytes),
            retention_age: self.retention_age.or(file.retention_age),
            max_concurrent_streams: self.max_concurrent_streams.or(file.max_concurrent_streams),
            keepalive_interval: self.keepalive_interval.or(file.keepalive_interval),
            keepalive_timeout: self.keepalive_timeout.or(file.keepalive_timeout),
            handshake_timeout: self.handshake_timeout.or(file.handshake_timeout),
            message_timeout: self.message_timeout.or(file.message_timeout),
            memory_budget_bytes: self.memory_budget_bytes.or(file.memory_budget_bytes),
            max_connections: self.max_connections.or(file.max_connections),
            max_unauthenticated_connections: self
                .max_unauthenticated_connections
                .or(file.max_unauthenticated_connections),
            unauthenticated_timeout: self
                .unauthenticated_timeout
                .or(file.unauthenticated_timeout),
            http2_stream_window_bytes: self
                .http2_stream_window_bytes
                .or(file.http2_stream_window_bytes),
            http2_connection_window_bytes: self
                .http2_connection_window_bytes
                .or(file.http2_connection_window_bytes),
            http2_max_frame_bytes: self.http2_max_frame_bytes.or(file.http2_max_frame_bytes),
            http2_max_header_list_bytes: self
                .http2_max_header_list_bytes
                .or(file.http2_max_header_list_bytes),
            reload_interval: self.reload_interval.or(file.reload_interval),
            raft: self.raft.or(file.raft),
            snapshot_entries: self.snapshot_entries.or(file.snapshot_entries),
            snapshot_keep_entries: self.snapshot_keep_entries.or(file.snapshot_keep_entries),
            log_format: self.log_format.or(file.log_format),
            shutdown_grace: self.shutdown_grace.or(file.shutdown_grace),
            otlp_endpoint: self.otlp_endpoint.or(file.otlp_endpoint),
            termination_log: self.termination_log.or(file.termination_log),
            fatal_exit_delay: self.fatal_exit_delay.or(file.fatal_exit_delay),
            worker_threads: self.worker_threads.or(file.worker_threads),
        })
    }

    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::ParseFile {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }

    /// Merges the config file, applies defaults and validates.
    pub fn resolve(self) -> Result<NodeConfig, ConfigError> {
        let args = self.merge_file()?;
        let resources = resources::Resources::from_args(&args)?;
        let data_dir = args.data_dir.ok_or(ConfigError::Missing("data-dir"))?;
        let tls = ServerTlsFiles {
            cert: args.tls_cert.ok_or(ConfigError::Missing("tls-cert"))?,
            key: args.tls_key.ok_or(ConfigError::Missing("tls-key"))?,
            ca: args.tls_ca.ok_or(ConfigError::Missing("tls-ca"))?,
        };
        let acl_file = args.acl_file.ok_or(ConfigError::Missing("acl-file"))?;
        let bind_addr = args
            .bind_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8400)));
        let metrics_addr = args
            .metrics_addr
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 9400)));
        if metrics_addr == bind_addr && bind_addr.port() != 0 {
            return Err(ConfigError::Invalid {
                name: "metrics-addr",
                reason: format!("must differ from --bind-addr ({bind_addr})"),
            });
        }
        let hostname = hostname();
        let advertise_addr = match args.advertise_addr {
            Some(addr) => {
                validate_host_port(&addr)?;
                addr
            }
            None if bind_addr.ip().is_unspecified() => {
                format!(
                    "{}:{}",
                    hostname.as_deref().unwrap_or("localhost"),
                    bind_addr.port()
                )
            }
            None => bind_addr.to_string(),
        };
        let ordinal = args
            .ordinal
            .or_else(|| hostname.as_deref().and_then(ordinal_of_hostname))
            .unwrap_or(0);

        let defaults = LogConfig::default();
        let max_record_bytes = args
            .max_record_size
            .unwrap_or(limits::DEFAULT_MAX_RECORD_BYTES);
        let max_message_bytes = args
            .max_message_size
            .unwrap_or(limits::DEFAULT_MAX_MESSAGE_BYTES);
        // The operator validates specs with this same function (see proglog_proto::limits).
        limits::check_record_limits(max_record_bytes, max_message_bytes)
            .map_err(|e| invalid(e.flag(), e.to_string()))?;
        let log = LogConfig {
            max_store_bytes: args
                .segment_max_store_bytes
                .unwrap_or(defaults.max_store_bytes),
            max_index_bytes: args
                .segment_max_index_bytes
                .unwrap_or(defaults.max_index_bytes),
            initial_offset: 0,
            // The log stores the encoded record (value plus a few bytes of fields). A record
            // larger than a segment gets a segment of its own, so segment sizes do not limit it.
            max_record_bytes: limits::encoded_record_bytes(max_record_bytes),
        };
        log.validate().map_err(|e| ConfigError::Invalid {
            name: "segment limits",
            reason: e.to_string(),
        })?;
        let max_message_bytes = usize::try_from(max_message_bytes)
            .map_err(|_| invalid("max-message-size", "too large for this platform"))?;
        let max_concurrent_streams = args.max_concurrent_streams.unwrap_or(256);
        if max_concurrent_streams == 0 {
            return Err(invalid("max-concurrent-streams", "must be at least 1"));
        }
        let duration = |value: Option<humantime::Duration>, default: u64, name: &'static str| {
            let d = value.map_or(Duration::from_secs(default), Into::into);
            if d.is_zero() {
                Err(invalid(name, "must be greater than zero"))
            } else {
                Ok(d)
            }
        };
        let limits = resources.apply(ServerLimits {
            service: ServiceLimits {
                max_record_bytes,
                ..ServiceLimits::default()
            },
            max_message_bytes,
            max_concurrent_streams,
            keepalive_interval: duration(args.keepalive_interval, 30, "keepalive-interval")?,
            keepalive_timeout: duration(args.keepalive_timeout, 10, "keepalive-timeout")?,
            handshake_timeout: duration(args.handshake_timeout, 10, "handshake-timeout")?,
            message_timeout: duration(args.message_timeout, 30, "message-timeout")?,
            ..ServerLimits::default()
        });
        let otlp = args
            .otlp_endpoint
            .map(|text| {
                crate::telemetry::parse_otlp_endpoint(&text).map(|endpoint| OtlpExport {
                    endpoint,
                    node_ordinal: ordinal,
                    node_address: advertise_addr.clone(),
                })
            })
            .transpose()
            .map_err(|reason| invalid("otlp-endpoint", reason))?;
        Ok(NodeConfig {
            data_dir,
            bind_addr,
            advertise_addr,
            metrics_addr,
            ordinal,
            tls,
            acl_file,
            log,
            retention: RetentionPolicy {
                max_bytes: args.retention_bytes,
                max_age: args.retention_age.map(Into::into),
            },
            group_commit: GroupCommitConfig::default(),
            limits,
            reload_interval: duration(args.reload_interval, 5, "reload-interval")?,
            log_format: args.log_format.unwrap_or(LogFormat::Text),
            shutdown_grace: args
                .shutdown_grace
                .map_or(Duration::from_secs(10), Into::into),
            raft: args.raft.unwrap_or(false),
            snapshots: SnapshotPolicy {
                entries: positive(args.snapshot_entries, 20_000, "snapshot-entries")?,
                keep_entries: args.snapshot_keep_entries.unwrap_or(5_000),
            },
            otlp,
            termination_log: args
                .termination_log
                .unwrap_or_else(|| PathBuf::from(DEFAULT_TERMINATION_LOG)),
            fatal_exit_delay: args
                .fatal_exit_delay
                .map_or(crate::raft::fatal::DEFAULT_EXIT_DELAY, Into::into),
            worker_threads: crate::runtime::WorkerThreads::from_arg(args.worker_threads)
                .map_err(|reason| invalid("worker-threads", reason))?,
        })
    }
}

/// Raft snapshots (`--snapshot-entries`, `--snapshot-keep-entries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotPolicy {
    /// A snapshot after this many entries since the last one.
    pub entries: u64,
    /// Entries kept behind a snapshot.
    pub keep_entries: u64,
}

fn positive(value: Option<u64>, default: u64, name: &'static str) -> Result<u64, ConfigError> {
    match value.unwrap_or(default) {
        0 => Err(invalid(name, "must be at least 1")),
        n => Ok(n),
    }
}

fn invalid(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        name,
        reason: reason.into(),
    }
}

fn validate_host_port(addr: &str) -> Result<(), ConfigError> {
    let bad = || invalid("advertise-addr", format!("{addr:?} is not HOST:PORT"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(bad());
    }
    Ok(())
}

fn hostname() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// The ordinal of a StatefulSet pod name such as `proglog-2`.
pub fn ordinal_of_hostname(hostname: &str) -> Option<u64> {
    let short = hostname.split('.').next()?;
    short.rsplit_once('-')?.1.parse().ok()
}

#[path = "config_resources.rs"]
mod resources;

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
