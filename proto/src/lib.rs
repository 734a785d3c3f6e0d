//! ProgLog's wire API, generated from `proto/proto/**.proto` at build time.
//!
//! Layout:
//! - [`log::v1`]: the public `log.v1.Log` service, wire-compatible with the book's clients.
//! - [`FILE_DESCRIPTOR_SET`]: encoded descriptors of every service, for gRPC server reflection.
//! - [`limits`]: record and message size limits the node and the operator share.
//! - [`retry`]: which failed produces are safe to retry (node forwarding, client, e2e load).
//!
//! - [`proglog::admin::v1`]: the node admin (membership) service, for the operator and admins.
//! - [`proglog::raft::v1`]: the internal node-to-node Raft transport.

pub mod limits;
pub mod retry;

/// The public log API (`package log.v1`).
pub mod log {
    /// Version 1 of the log API.
    pub mod v1 {
        tonic::include_proto!("log.v1");
    }
}

/// ProgLog-internal services (not part of the book's API).
pub mod proglog {
    /// Node administration: membership changes and cluster status.
    pub mod admin {
        /// Version 1 of the admin API.
        pub mod v1 {
            tonic::include_proto!("proglog.admin.v1");
        }
    }

    /// Node-to-node Raft transport (only node identities may call it).
    pub mod raft {
        /// Version 1 of the Raft transport.
        pub mod v1 {
            tonic::include_proto!("proglog.raft.v1");
        }
    }
}

/// Encoded `FileDescriptorSet` of every compiled proto file (for `tonic-reflection`).
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("proglog_descriptor");
