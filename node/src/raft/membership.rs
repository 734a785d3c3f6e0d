//! Membership changes executed on this node: AddLearner, PromoteVoter, RemoveNode and
//! TransferLeadership, whether asked of this node's admin service or forwarded by a follower
//! (`ForwardAdmin`). They run one at a time per node (the node's membership lock), first wait
//! (bounded) for the previous membership to commit, and openraft refuses a change while another
//! is uncommitted, so changes never overlap. Only a leader executes them: on another node they
//! fail with `UNAVAILABLE` naming the leader (no second hop, so no loops during elections).

use std::collections::BTreeSet;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::errors::ForwardToLeader;
use openraft::raft::ClientWriteResponse;
use openraft::{BasicNode, ChangeMembers, Membership};
use proglog_proto::proglog::admin::v1 as pb;
use proglog_proto::proglog::raft::v1::forward_admin_request::Request as AdminRequest;
use proglog_proto::proglog::raft::v1::forward_admin_response::Response as AdminResponse;
use tonic::Status;

use super::forwarding::{no_leader_error, not_leader_error};
use super::node::RaftNode;
use super::types::{NodeId, TypeConfig};
use crate::server::status::backend_status;

/// Longest a membership change waits for the previous one to commit.
const MEMBERSHIP_SETTLE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a refused change says it did not do.
const NOT_EXECUTED: &str = "the membership change was not executed";

/// Executes `request` on this node, which must be the leader.
pub async fn execute(node: &RaftNode, request: AdminRequest) -> Result<AdminResponse, Status> {
    match request {
        AdminRequest::AddLearner(r) => add_learner(node, r).await.map(AdminResponse::Membership),
        AdminRequest::PromoteVoter(r) => promote_voter(node, r.node_id)
            .await
            .map(AdminResponse::Membership),
        AdminRequest::RemoveNode(r) => remove_node(node, r.node_id)
            .await
            .map(AdminResponse::Membership),
        AdminRequest::TransferLeadership(r) => transfer_leadership(node, r.to_node_id)
            .await
            .map(|()| AdminResponse::TransferLeadership(pb::TransferLeadershipResponse {})),
    }
}

fn membership_response(
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

/// Waits (bounded) until no membership change is in flight, so a change requested right after
/// `Initialize` or after another change is not refused for overlapping it.
async fn wait_membership_settled(node: &RaftNode) -> Result<(), Status> {
    node.raft()
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
            if node.metrics().current_leader.is_none() {
                backend_status(&no_leader_error(NOT_EXECUTED))
            } else {
                Status::unavailable(format!(
                    "the previous membership change has not committed yet ({e}); retry shortly"
                ))
            }
        })
}

fn write_status(error: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            backend_status(&not_leader_error(&forward, NOT_EXECUTED))
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            Status::failed_precondition(e.to_string())
        }
        RaftError::APIError(other) => Status::unavailable(other.to_string()),
        RaftError::Fatal(fatal) => Status::unavailable(format!("raft stopped: {fatal}")),
    }
}

async fn change(
    node: &RaftNode,
    change: ChangeMembers<NodeId, BasicNode>,
) -> Result<pb::MembershipResponse, Status> {
    let _one_at_a_time = node.membership_changes().lock().await;
    wait_membership_settled(node).await?;
    let response = node
        .raft()
        .change_membership(change, false)
        .await
        .map_err(write_status)?;
    Ok(committed_membership(node, &response))
}

/// The membership a committed change produced (the node's current one if openraft omits it).
fn committed_membership(
    node: &RaftNode,
    response: &ClientWriteResponse<TypeConfig>,
) -> pb::MembershipResponse {
    let membership = response
        .membership
        .clone()
        .unwrap_or_else(|| node.metrics().membership_config.membership().clone());
    membership_response(response.log_id.index, &membership)
}

async fn add_learner(
    node: &RaftNode,
    request: pb::AddLearnerRequest,
) -> Result<pb::MembershipResponse, Status> {
    let member = request
        .member
        .ok_or_else(|| Status::invalid_argument("member is required"))?;
    if member.rpc_addr.is_empty() {
        return Err(Status::invalid_argument("member.rpc_addr is required"));
    }
    let _one_at_a_time = node.membership_changes().lock().await;
    wait_membership_settled(node).await?;
    let response = node
        .raft()
        .add_learner(
            member.node_id,
            BasicNode::new(member.rpc_addr),
            request.wait_caught_up,
        )
        .await
        .map_err(write_status)?;
    Ok(committed_membership(node, &response))
}

async fn promote_voter(node: &RaftNode, id: NodeId) -> Result<pb::MembershipResponse, Status> {
    let membership = node.metrics().membership_config.membership().clone();
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
    change(node, ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await
}

async fn remove_node(node: &RaftNode, id: NodeId) -> Result<pb::MembershipResponse, Status> {
    let membership = node.metrics().membership_config.membership().clone();
    if membership.get_node(&id).is_none() {
        return Err(Status::not_found(format!("node {id} is not a member")));
    }
    if membership.voter_ids().any(|v| v == id) {
        // retain=false in `change` also drops it from the learners.
        change(node, ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await
    } else {
        change(node, ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await
    }
}

async fn transfer_leadership(node: &RaftNode, to: NodeId) -> Result<(), Status> {
    let metrics = node.metrics();
    if metrics.current_leader != Some(node.node_id()) {
        let forward = match node.leader() {
            Some((id, addr)) => ForwardToLeader::new(id, BasicNode::new(addr)),
            None => ForwardToLeader::empty(),
        };
        return Err(backend_status(&not_leader_error(&forward, NOT_EXECUTED)));
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
    node.raft()
        .trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| Status::unavailable(format!("raft stopped: {e}")))
}
