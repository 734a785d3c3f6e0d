//! The ProgLog log node: a replicated, durable commit log served over gRPC, with Raft
//! replication. The storage engine (segmented log files, recovery, the retention policy,
//! durable file operations) is the `proglog-log` crate, the client library `proglog-client`
//! and the `proglog` CLI `proglog-cli`; this crate is the server and Raft around them.
//!
//! Layout:
//! - [`storage`]: the node's side of the storage engine: a Tokio watch of a log's end and
//!   the periodic retention task.
//! - [`backend`]: `LogBackend`, the seam between the gRPC services and what stores records;
//!   `LocalBackend` is the single-node group-commit log.
//! - [`server`]: the gRPC server (`log.v1.Log`, health, reflection, limits, graceful shutdown).
//! - [`tls`], [`acl`]: mutual TLS with reloadable certificates; the ACL policy with reload.
//! - [`metrics`], [`telemetry`]: Prometheus metrics and the plain HTTP port; tracing setup.
//! - [`config`]: the node's command line, environment and config file.
//! - [`raft`]: replication with openraft (log storage, state machine, network, admin API).
//! - [`run`]: a whole node from its configuration — the single-node or Raft backend, the server,
//!   watchers, graceful shutdown — the composition root the binary calls, so that [`server`]
//!   does not depend on [`raft`].
//! - [`runtime`]: the async runtime a node runs on, sized by `--worker-threads`.
//! - [`test_ports`]: loopback ports for tests that no outgoing connection can take.
//!
//! The binary `proglog-node` is a thin wrapper over this library.

#![warn(missing_docs)]

pub mod acl;
pub mod backend;
pub mod config;
pub mod metrics;
pub mod raft;
pub mod run;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod telemetry;
pub mod test_ports;
pub mod tls;
