//! Replication: the log node as a member of an openraft cluster.
//!
//! - [`types`]: the openraft type configuration (entries carry batches of records).
//! - [`codec`]: binary encoding of Raft entries (on disk and on the wire).
//! - One write per record: [`user_log`] holds the records, written when their entry is
//!   appended; [`log_store`]: openraft log storage on the segmented log, each entry stored as
//!   [`stored_entry`] (where its records are), with group-committed flushes of both logs;
//!   [`tail_cache`]: its newest entries in memory; [`storage_pair`]: opening both halves.
//! - [`state_machine`]: the user-visible commit log as the state machine (applying moves the
//!   end readers see); [`snapshot`]: snapshot data as a view of that log; [`snapshot_install`]:
//!   installing one, crash-atomically.
//! - [`network`] (client) and [`service`] (server): the `proglog.raft.v1.Raft` gRPC transport
//!   ([`append_split`]: AppendEntries as messages that fit);
//!   [`channel_pool`]: the channels to peers, renewed when the client certificates reload.
//! - [`node`]: the runtime tying it together; [`node_config`]: its settings and the openraft
//!   settings ProgLog departs from the defaults with (and why); [`batcher`]: group commit of concurrent
//!   produces, as one Raft entry on the leader ([`proposer`]) or one forward RPC on a follower;
//!   [`backend`]: the Raft
//!   [`LogBackend`](crate::backend::LogBackend) the `log.v1` service uses.
//! - [`run`]: starting Raft inside `proglog-node` (`--raft true`).
//! - [`admin`]: the `proglog.admin.v1.Admin` membership service; [`membership`]: the changes it
//!   executes on the leader; [`check_access`]: its local answer from the ACL in force; [`forwarding`]: produces, reads and admin changes a follower sends
//!   on to the leader, and the "not the leader" (not executed) errors.
//! - [`identity`]: node ids from the ordinal and a persisted incarnation; [`startup_check`]:
//!   a node refuses to start on a Raft log that lost entries its state machine applied.
//! - [`durable_file`]: atomically replaced, versioned state files; [`durable_index`]: how far
//!   the Raft log is durable, so the state machine never persists a position beyond it; [`error`]: the storage error
//!   type.
//! - [`fatal`]: fail-stop when the Raft core stops (exit statuses, the one error line);
//!   [`health`]: liveness and readiness from the node's Raft state.
//! - [`handover`]: leaving on SIGTERM: no more elections, leadership handed over first.
//! - [`metrics_view`]: this node's Raft state into its Prometheus gauges.
//! - `read_index`: linearizable reads (read-index plus the leader's whole log applied).
//! - `failpoint` (cargo feature `failpoints`, tests only): injected apply failures and crashes.

pub mod admin;
pub mod append_split;
pub mod backend;
pub mod batcher;
#[cfg(test)]
mod blocking_io_tests;
pub mod channel_pool;
pub mod check_access;
pub mod codec;
#[cfg(test)]
mod durable_dirs_tests;
pub mod durable_file;
#[cfg(test)]
mod durable_gate_tests;
pub mod durable_index;
pub mod error;
#[cfg(feature = "failpoints")]
pub mod failpoint;
pub mod fatal;
pub mod forwarding;
pub mod handover;
pub mod health;
pub mod identity;
mod leadership;
pub mod log_store;
pub mod membership;
pub mod metrics_view;
pub mod network;
pub mod node;
pub mod node_config;
#[cfg(test)]
mod one_write_tests;
pub mod produce_batch;
pub mod proposer;
mod read_index;
pub mod run;
pub mod service;
pub mod snapshot;
pub mod snapshot_install;
pub mod startup_check;
#[cfg(test)]
mod state_file_race_tests;
pub mod state_machine;
pub mod storage_pair;
pub mod stored_entry;
pub mod tail_cache;
pub mod types;
pub mod user_log;

pub use admin::AdminService;
pub use backend::RaftBackend;
pub use error::RaftStoreError;
pub use identity::NodeIdentity;
pub use network::{ChannelPool, NetworkConfig, TARGET_NODE_HEADER};
pub use node::{RaftNode, RaftNodeError};
pub use node_config::{RaftNodeConfig, default_raft_config};
pub use service::RaftService;
pub use types::{NodeId, TypeConfig};
