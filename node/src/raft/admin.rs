//! The `proglog.admin.v1.Admin` service (membership and status), callable only by identities
//! with the ACL action `admin`. Membership changes run one at a time on this node and openraft
//! refuses a change while another is uncommitted, so two changes never overlap. Changes must be
//! made on the leader: a follower answers `UNAVAILABLE` naming the leader's address, which
//! `proglog cluster` follows automatically.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, InitializeError, RaftError};
use openraft::{BasicNode, ChangeMembers, Membership};
use proglog_proto::proglog::admin::v1 as pb;
use proglog_proto::proglog::admin::v1::admin_server;
use tonic::{Request, Response, Status};

use super::node::RaftNode;
use super::types::{NodeId, TypeConfig};
use crate::acl::Action;
use crate::server::auth::Authorizer;

/// Longest a membership change waits for the previous one to commit.
const MEMBERSHIP_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin service of one node.
#[derive(Debug, Clone)]
pub struct AdminService {
    node: Arc<RaftNode>,
    authorizer: Authorizer,
    /// Serialises membership changes requested through this node.
    changing: Arc<tokio::sync::Mutex<()>>,
}

impl AdminService {
    pub fn new(node: Arc<RaftNode>, authorizer: Authorizer) -> Self {
        Self {
            node,
            authorizer,
            changing: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    pub fn into_server(self) -> admin_server::AdminServer<Self> {
        admin_server::AdminServer::new(self)
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.authorizer
            .authorize(request, Action::Admin)
            .map(|_| ())
    }

    fn membership_response(
        &self,
        log_index: u64,
        membership: &Membership<NodeId, BasicNode>,
    ) -> pb::MembershipResponse {
        let member = |id: NodeId| pb::Member {
            node_id: id,
            rpc_addr: membership
                .get_node(&id)
                .map(|n| n.addr.clone())
                .unwrap_or_default(),
        };
        pb::MembershipResponse {
            voters: membership.voter_ids().map(member).collect(),
            learners: membership.learner_ids().map(member).collect(),
            log_index,
        }
    }

    /// Waits (bounded) until no membership change is in flight, so a change requested right
    /// after `Initialize` or after another change is not refused for overlapping it.
    async fn wait_membership_settled(&self) -> Result<(), Status> {
        self.node
            .raft()
            .wait(Some(MEMBERSHIP_SETTLE_TIMEOUT))
            .metrics(
                |m| {
                    m.current_leader.is_some()
                        && m.committed_membership_config.log_id() == m.membership_config.log_id()
                },
                "membership committed",
            )
            .await
            .map(|_| ())
            .map_err(|e| {
                Status::unavailable(format!(
                    "the previous membership change has not committed yet ({e}); retry shortly"
                ))
            })
    }

    async fn change(
        &self,
        change: ChangeMembers<NodeId, BasicNode>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let _one_at_a_time = self.changing.lock().await;
        self.wait_membership_settled().await?;
        let response = self
            .node
            .raft()
            .change_membership(change, false)
            .await
            .map_err(write_status)?;
        let membership = response
            .membership
            .clone()
            .unwrap_or_else(|| self.node.metrics().membership_config.membership().clone());
        Ok(Response::new(
            self.membership_response(response.log_id.index, &membership),
        ))
    }
}

fn write_status(error: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            match forward.leader_node {
                Some(node) => Status::unavailable(format!(
                    "this node is not the leader; send membership changes to the leader {} at {}",
                    forward.leader_id.unwrap_or_default(),
                    node.addr
                )),
                None => Status::unavailable("no leader is known yet; retry shortly"),
            }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Status::failed_precondition(e.to_string())
        }
        RaftError::APIError(other) => Status::unavailable(other.to_string()),
        RaftError::Fatal(fatal) => Status::unavailable(format!("raft stopped: {fatal}")),
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
        let _one_at_a_time = self.changing.lock().await;
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
        let request = request.into_inner();
        let member = request
            .member
            .ok_or_else(|| Status::invalid_argument("member is required"))?;
        if member.rpc_addr.is_empty() {
            return Err(Status::invalid_argument("member.rpc_addr is required"));
        }
        let _one_at_a_time = self.changing.lock().await;
        self.wait_membership_settled().await?;
        let response = self
            .node
            .raft()
            .add_learner(
                member.node_id,
                BasicNode::new(member.rpc_addr),
                request.wait_caught_up,
            )
            .await
            .map_err(write_status)?;
        let membership = response
            .membership
            .clone()
            .unwrap_or_else(|| self.node.metrics().membership_config.membership().clone());
        Ok(Response::new(
            self.membership_response(response.log_id.index, &membership),
        ))
    }

    async fn promote_voter(
        &self,
        request: Request<pb::PromoteVoterRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.check(&request)?;
        let id = request.into_inner().node_id;
        let membership = self.node.metrics().membership_config.membership().clone();
        if membership.voter_ids().any(|v| v == id) {
            return Err(Status::failed_precondition(format!(
                "node {id} is already a voter"
            )));
        }
        if membership.get_node(&id).is_none() {
            return Err(Status::not_found(format!(
                "node {id} is not a member; add it as a learner first"
            )));
        }
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id])))
            .await
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        self.check(&request)?;
        let id = request.into_inner().node_id;
        let membership = self.node.metrics().membership_config.membership().clone();
        if membership.get_node(&id).is_none() {
            return Err(Status::not_found(format!("node {id} is not a member")));
        }
        if membership.voter_ids().any(|v| v == id) {
            // retain=false in `change` also drops it from the learners.
            self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id])))
                .await
        } else {
            self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                .await
        }
    }

    async fn transfer_leadership(
        &self,
        request: Request<pb::TransferLeadershipRequest>,
    ) -> Result<Response<pb::TransferLeadershipResponse>, Status> {
        self.check(&request)?;
        let to = request.into_inner().to_node_id;
        let metrics = self.node.metrics();
        if metrics.current_leader != Some(self.node.node_id()) {
            return Err(match self.node.leader() {
                Some((id, addr)) => Status::unavailable(format!(
                    "this node is not the leader; send the transfer to the leader {id} at {addr}"
                )),
                None => Status::unavailable("no leader is known yet; retry shortly"),
            });
        }
        if !metrics
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == to)
        {
            return Err(Status::failed_precondition(format!(
                "node {to} is not a voter"
            )));
        }
        self.node
            .raft()
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))?;
        Ok(Response::new(pb::TransferLeadershipResponse {}))
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
            lowest_offset: user_log.lowest_offset(),
            next_offset: user_log.next_offset(),
            state: state.into(),
            membership_log_index: stored.log_id().map(|l| l.index).unwrap_or_default(),
            membership_committed: committed_membership,
        }))
    }
}
