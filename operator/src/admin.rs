//! Client of a node's `proglog.admin.v1.Admin` service over mutual TLS with the operator's
//! certificate, and the conversion of its answers into the planner's observations.

use std::time::Duration;

use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, CheckAccessRequest, ClusterStatusRequest, ClusterStatusResponse,
    InitializeRequest, Member, NodeInfoRequest, PromoteVoterRequest, RemoveNodeRequest,
    TransferLeadershipRequest, admin_client::AdminClient as GrpcAdminClient,
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::planner::{NodeIdentity, ObservedMember, ObservedMembership};

/// Errors talking to a node's admin API.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address is not `host:port`.
    #[error("invalid node address {address:?}: {reason}")]
    InvalidAddress {
        /// The address.
        address: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS channel could not be set up or connected.
    #[error("connecting to {address}: {source}")]
    Connect {
        /// The address.
        address: String,
        /// Cause.
        #[source]
        source: tonic::transport::Error,
    },
    /// The node answered with an error.
    #[error("{method} on {address} failed: {code:?}: {message}")]
    Rpc {
        /// The RPC.
        method: &'static str,
        /// The address.
        address: String,
        /// gRPC status code.
        code: tonic::Code,
        /// Status message.
        message: String,
    },
}

/// The operator's TLS material for one cluster.
#[derive(Clone)]
pub struct AdminCredentials {
    /// PEM CA certificate(s) that issued the node certificates.
    pub ca_pem: String,
    /// PEM client certificate (CN `proglog-operator`).
    pub cert_pem: String,
    /// PEM private key of the client certificate.
    pub key_pem: String,
}

impl std::fmt::Debug for AdminCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminCredentials")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A connected admin client for one node.
#[derive(Debug, Clone)]
pub struct AdminClient {
    address: String,
    grpc: GrpcAdminClient<Channel>,
}

fn host_of(address: &str) -> Result<&str, AdminError> {
    let invalid = |reason: &str| AdminError::InvalidAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = address
        .rsplit_once(':')
        .ok_or_else(|| invalid("missing :port"))?;
    port.parse::<u16>()
        .map_err(|_| invalid("port is not a number"))?;
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    Ok(host.trim_start_matches('[').trim_end_matches(']'))
}

impl AdminClient {
    /// Connects to `address` (`host:port`), verifying the node certificate for `server_name`
    /// (the host of `address` when `None`). `timeout` bounds the connection and every call.
    pub async fn connect(
        address: &str,
        server_name: Option<&str>,
        credentials: &AdminCredentials,
        timeout: Duration,
    ) -> Result<Self, AdminError> {
        let host = host_of(address)?;
        let connect_error = |source| AdminError::Connect {
            address: address.to_owned(),
            source,
        };
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&credentials.ca_pem))
            .identity(Identity::from_pem(
                &credentials.cert_pem,
                &credentials.key_pem,
            ))
            .domain_name(server_name.unwrap_or(host));
        let channel = Endpoint::from_shared(format!("https://{address}"))
            .map_err(connect_error)?
            .tls_config(tls)
            .map_err(connect_error)?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect()
            .await
            .map_err(connect_error)?;
        Ok(Self {
            address: address.to_owned(),
            grpc: GrpcAdminClient::new(channel),
        })
    }

    /// The node's address.
    pub fn address(&self) -> &str {
        &self.address
    }

    fn rpc_error(&self, method: &'static str) -> impl FnOnce(tonic::Status) -> AdminError + '_ {
        move |status| AdminError::Rpc {
            method,
            address: self.address.clone(),
            code: status.code(),
            message: status.message().to_owned(),
        }
    }

    /// The node's identity.
    pub async fn node_info(&mut self) -> Result<NodeIdentity, AdminError> {
        let info = self
            .grpc
            .clone()
            .node_info(NodeInfoRequest {})
            .await
            .map_err(self.rpc_error("NodeInfo"))?
            .into_inner();
        Ok(NodeIdentity {
            node_id: info.node_id,
            address: info.rpc_addr,
            has_raft_state: info.has_raft_state,
        })
    }

    /// The membership as this node sees it.
    pub async fn cluster_status(&mut self) -> Result<ObservedMembership, AdminError> {
        let status = self
            .grpc
            .clone()
            .cluster_status(ClusterStatusRequest {})
            .await
            .map_err(self.rpc_error("ClusterStatus"))?
            .into_inner();
        Ok(membership_from_status(&status))
    }

    /// Whether the ACL policy the node enforces now allows `subject` to perform `action` on
    /// `object` (the policy file's vocabulary; `*` as object asks for a rule on every object).
    pub async fn check_access(
        &mut self,
        subject: &str,
        object: &str,
        action: &str,
    ) -> Result<bool, AdminError> {
        let answer = self
            .grpc
            .clone()
            .check_access(CheckAccessRequest {
                subject: subject.to_owned(),
                object: object.to_owned(),
                action: action.to_owned(),
            })
            .await
            .map_err(self.rpc_error("CheckAccess"))?
            .into_inner();
        Ok(answer.allowed)
    }

    /// Makes this node the single voter of a new cluster.
    pub async fn initialize(&mut self) -> Result<(), AdminError> {
        self.grpc
            .clone()
            .initialize(InitializeRequest { members: vec![] })
            .await
            .map_err(self.rpc_error("Initialize"))?;
        Ok(())
    }

    /// Adds a learner without waiting for it to catch up (the planner promotes it later).
    pub async fn add_learner(&mut self, node_id: u64, address: &str) -> Result<(), AdminError> {
        let member = Member {
            node_id,
            rpc_addr: address.to_owned(),
        };
        self.grpc
            .clone()
            .add_learner(AddLearnerRequest {
                member: Some(member),
                wait_caught_up: false,
            })
            .await
            .map_err(self.rpc_error("AddLearner"))?;
        Ok(())
    }

    /// Promotes a learner.
    pub async fn promote(&mut self, node_id: u64) -> Result<(), AdminError> {
        self.grpc
            .clone()
            .promote_voter(PromoteVoterRequest { node_id })
            .await
            .map_err(self.rpc_error("PromoteVoter"))?;
        Ok(())
    }

    /// Removes a voter or learner.
    pub async fn remove(&mut self, node_id: u64) -> Result<(), AdminError> {
        self.grpc
            .clone()
            .remove_node(RemoveNodeRequest { node_id })
            .await
            .map_err(self.rpc_error("RemoveNode"))?;
        Ok(())
    }

    /// Asks the leader to hand leadership to `to_node_id`.
    pub async fn transfer_leadership(&mut self, to_node_id: u64) -> Result<(), AdminError> {
        self.grpc
            .clone()
            .transfer_leadership(TransferLeadershipRequest { to_node_id })
            .await
            .map_err(self.rpc_error("TransferLeadership"))?;
        Ok(())
    }
}

/// The planner's view of a `ClusterStatus` answer.
pub fn membership_from_status(status: &ClusterStatusResponse) -> ObservedMembership {
    let members = status
        .members
        .iter()
        .filter_map(|m| {
            let member = m.member.as_ref()?;
            Some(ObservedMember {
                node_id: member.node_id,
                address: member.rpc_addr.clone(),
                voter: m.is_voter,
                lag: m.lag,
                matched_index: m.matched_index,
            })
        })
        .collect();
    ObservedMembership {
        leader_id: (status.leader_id != 0).then_some(status.leader_id),
        members,
        committed: status.membership_committed,
    }
}

#[cfg(test)]
mod tests {
    use proglog_proto::proglog::admin::v1::MemberStatus;

    use super::*;

    #[test]
    fn status_conversion_keeps_roles_lag_and_leader() {
        let member = |node_id, is_voter, lag| MemberStatus {
            member: Some(Member {
                node_id,
                rpc_addr: format!("n{node_id}:8400"),
            }),
            is_voter,
            is_leader: node_id == 10_000,
            matched_index: 0,
            lag,
        };
        let status = ClusterStatusResponse {
            leader_id: 10_000,
            members: vec![member(10_000, true, 0), member(10_001, false, 42)],
            membership_committed: true,
            ..ClusterStatusResponse::default()
        };
        let observed = membership_from_status(&status);
        assert_eq!(observed.leader_id, Some(10_000));
        assert!(observed.committed);
        assert_eq!(observed.members.len(), 2);
        assert!(!observed.members[1].voter);
        assert_eq!(observed.members[1].lag, 42);
        let no_leader = ClusterStatusResponse::default();
        assert_eq!(membership_from_status(&no_leader).leader_id, None);
    }

    #[test]
    fn addresses_are_validated() {
        assert_eq!(host_of("a.b.svc:8400").unwrap(), "a.b.svc");
        assert_eq!(host_of("[::1]:8400").unwrap(), "::1");
        assert!(host_of("nohost").is_err());
        assert!(host_of(":8400").is_err());
        assert!(host_of("h:port").is_err());
    }
}
