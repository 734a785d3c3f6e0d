//! The ProgLog log node: a replicated, durable commit log served over gRPC.
//!
//! Layout:
//! - [`log`]: the segmented commit-log storage engine (store files, memory-mapped indexes,
//!   segments, recovery, retention). Usable on its own.
//!
//! The binaries `proglog-node` (the server) and `proglog` (the CLI client) are thin wrappers over
//! this library.

pub mod log;
