//! The `proglog.admin.v1.Admin` service (membership and status), callable only by identities
//! with the ACL action `admin`. Any node accepts a membership change: the leader executes it
//! ([`super::membership`]); a follower, having authorized the caller, forwards it to the leader
//! over the internal Raft connection (`ForwardAdmin`) and returns the leader's answer.
//! `CheckAccess` and the status calls are answered by the node itself, without Raft.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use openraft::BasicNode;
use openraft::error::{InitializeError, RaftError};
use proglog_proto::proglog::admin::v1 as pb;
use proglog_proto::proglog::admin::v1::admin_server;
use proglog_proto::proglog::raft::v1::forward_admin_request::Request as AdminRequest;
use proglog_proto::proglog::raft::v1::forward_admin_response::Response as AdminResponse;
use tonic::{Request, Response, Status};

use super::check_access::check_access;
use super::forwarding::forward_admin;
use super::membership;
use super::node::RaftNode;
use super::types::NodeId;
use crate::acl::Action;
use crate::server::auth::Authorizer;

/// The admin service of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Arc<RaftNode>,
    authorizer: Authorizer,
}

impl AdminService {
    /// The admin service of `node`; every call needs the admin permission of `authorizer`.
    pub fn new(node: Arc<RaftNode>, authorizer: Authorizer) -> Self {
        Self { node, authorizer }
    }

    /// The tonic service to add to the node's gRPC server.
    pub fn into_server(self) -> admin_server::AdminServer<Self> {
        admin_server::AdminServer::new(self)
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.authorizer
            .authorize(request, Action::Admin)
            .map(|_| ())
    }

    /// Executes a membership change here when this node leads (or knows no leader, which then
    /// yields a clear "no leader known" error), else forwards it to the leader.
    async fn membership_change(&self, request: AdminRequest) -> Result<AdminResponse, Status> {
        match self.node.leader_elsewhere() {
            Some(leader_addr) => forward_admin(self.node.pool(), &leader_addr, request).await,
            None => membership::execute(&self.node, request).await,
        }
    }

    async fn membership_reply(
        &self,
        request: AdminRequest,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        match self.membership_change(request).await? {
            AdminResponse::Membership(membership) => Ok(Response::new(membership)),
            AdminResponse::TransferLeadership(_) => Err(Status::internal(
                "the leader answered a membership change with a leadership transfer",
            )),
        }
    }
}

#[tonic::async_trait]
impl admin_server::Admin for AdminService {
    async fn node_info(
        &self,
        request: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        self.check(&request)?;
        let identity = self.node.identity();
        Ok(Response::new(pb::NodeInfoResponse {
            node_id: identity.node_id(),
            rpc_addr: self.node.advertise_addr().to_owned(),
            ordinal: identity.ordinal,
            incarnation: identity.incarnation,
            has_raft_state: self.node.has_raft_state(),
        }))
    }

    async fn initialize(
        &self,
        request: Request<pb::InitializeRequest>,
    ) -> Result<Response<pb::InitializeResponse>, Status> {
        self.check(&request)?;
        let _one_at_a_time = self.node.membership_changes().lock().await;
        if self.node.has_raft_state() {
            return Err(Status::failed_precondition(
                "this node already has Raft state (it was initialized or joined a cluster); refusing to initialize again",
            ));
        }
        let mut members = BTreeMap::new();
        for member in request.into_inner().members {
            if member.rpc_addr.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "member {} has no rpc_addr",
                    member.node_id
                )));
            }
            members.insert(member.node_id, BasicNode::new(member.rpc_addr));
        }
        if members.is_empty() {
            members.insert(
                self.node.node_id(),
                BasicNode::new(self.node.advertise_addr()),
            );
        }
        if !members.contains_key(&self.node.node_id()) {
            return Err(Status::invalid_argument(format!(
                "the initial members must include this node ({})",
                self.node.node_id()
            )));
        }
        match self.node.raft().initialize(members).await {
            Ok(()) => Ok(Response::new(pb::InitializeResponse {})),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                Err(Status::failed_precondition(e.to_string()))
            }
            Err(RaftError::APIError(e)) => Err(Status::invalid_argument(e.to_string())),
            Err(RaftError::Fatal(e)) => Err(Status::unavailable(format!("raft stopped: {e}"))),
        }
    }

    async fn add_learner(
        &self,
        request: Request<pb::AddLearnerRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.check(&request)?;
        self.membership_reply(AdminRequest::AddLearner(request.into_inner()))
            .await
    }

    async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.check(&request)?;
        self.membership_reply(AdminRequest::PromoteVoter(request.into_inner()))
            .await
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.check(&request)?;
        self.membership_reply(AdminRequest::RemoveNode(request.into_inner()))
            .await
    }

    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TransferLeadershipResponse>, Status> {
        self.check(&request)?;
        match self
            .membership_change(AdminRequest::TransferLeadership(request.into_inner()))
            .await?
        {
            AdminResponse::TransferLeadership(done) => Ok(Response::new(done)),
            AdminResponse::Membership(_) => Err(Status::internal(
                "the leader answered a leadership transfer with a membership",
            )),
        }
    }

    async fn check_access(
        &self,
        request: Request<pb::CheckAccessRequest>,
    ) -> Result<Response<pb::CheckAccessResponse>, Status> {
        self.check(&request)?;
        // Local and immediate: the policy this node enforces, whatever its Raft role.
        check_access(self.authorizer.acl(), request.get_ref()).map(Response::new)
    }

    async fn cluster_status(
        &self,
        request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        self.check(&request)?;
        let metrics = self.node.metrics();
        let stored = metrics.membership_config.clone();
        let membership = stored.membership();
        let committed_membership = metrics.committed_membership_config.log_id() == stored.log_id();
        let last_log_index = metrics.last_log_index.unwrap_or_default();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let replication = metrics.replication.clone().unwrap_or_default();
        let members = membership
            .nodes()
            .map(|(id, node)| {
                let matched = if *id == metrics.id {
                    metrics.last_log_index
                } else {
                    replication.get(id).and_then(|m| m.map(|l| l.index))
                };
                pb::MemberStatus {
                    member: Some(pb::Member {
                        node_id: *id,
                        rpc_addr: node.addr.clone(),
                    }),
                    is_voter: voters.contains(id),
                    is_leader: metrics.current_leader == Some(*id),
                    matched_index: matched.unwrap_or_default(),
                    lag: match (metrics.state.is_leader(), matched) {
                        (true, Some(m)) => last_log_index.saturating_sub(m),
                        _ => 0,
                    },
                }
            })
            .collect();
        let state = if metrics.state.is_leader() {
            "leader"
        } else if metrics.state.is_candidate() {
            "candidate"
        } else if metrics.state.is_learner() || !voters.contains(&metrics.id) {
            "learner"
        } else {
            "follower"
        };
        let user_log = self.node.user_log();
        Ok(Response::new(pb::ClusterStatusResponse {
            node_id: metrics.id,
            leader_id: metrics.current_leader.unwrap_or_default(),
            term: metrics.current_term,
            members,
            last_log_index,
            committed_index: metrics.local_committed.map(|c| c.index).unwrap_or_default(),
            applied_index: metrics.last_applied.map(|a| a.index).unwrap_or_default(),
            lowest_offset: user_log.log().lowest_offset(),
            next_offset: user_log.applied_end(),
            state: state.into(),
            membership_log_index: stored.log_id().map(|l| l.index).unwrap_or_default(),
            membership_committed: committed_membership,
            snapshot_index: metrics.snapshot.map(|s| s.index).unwrap_or_default(),
            purged_index: metrics.purged.map(|p| p.index).unwrap_or_default(),
        }))
    }
}
