//! The ProgLog log node: a replicated, durable commit log served over gRPC.
//!
//! Layout:
//! - [`log`]: the segmented commit-log storage engine (store files, memory-mapped indexes,
//!   segments, recovery, retention). Usable on its own.
//! - [`backend`]: `LogBackend`, the seam between the gRPC services and what stores records;
//!   `LocalBackend` is the single-node group-commit log.
//! - [`server`]: the gRPC server (`log.v1.Log`, health, reflection, limits, graceful shutdown).
//! - [`tls`], [`acl`]: mutual TLS with reloadable certificates; the ACL policy with reload.
//! - [`certs`]: a development CA (`proglog certs`, test fixtures).
//! - [`metrics`], [`telemetry`]: Prometheus metrics and the plain HTTP port; tracing setup.
//! - [`config`]: the node's command line, environment and config file.
//! - [`durable_fs`]: creating and renaming directories and files durably (parent fsync).
//! - [`raft`]: replication with openraft (log storage, state machine, network, admin API).
//! - [`cli`]: the subcommands of the `proglog` client CLI.
//! - [`test_ports`]: loopback ports for tests that no outgoing connection can take.
//!
//! The binaries `proglog-node` (the server) and `proglog` (the CLI client) are thin wrappers over
//! this library.

pub mod acl;
pub mod backend;
pub mod certs;
pub mod cli;
pub mod config;
pub mod durable_fs;
pub mod log;
pub mod metrics;
pub mod raft;
pub mod server;
pub mod telemetry;
pub mod test_ports;
pub mod tls;
