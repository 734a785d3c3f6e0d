//! Any node accepts any request: a follower forwards linearizable `GetLogBounds` and the admin
//! membership changes (AddLearner, PromoteVoter, RemoveNode, TransferLeadership) to the leader
//! over the internal Raft connection and returns the leader's answer; only node identities may
//! use that internal path; without a leader every error says so plainly; and a refused produce
//! carries the structured not-executed mark, which a forwarding node passes on.

mod raft_common;

use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, InitializeRequest, MembershipResponse, PromoteVoterRequest,
    RemoveNodeRequest, TransferLeadershipRequest,
};
use proglog_proto::proglog::raft::v1::forward_admin_request::Request as AdminRequest;
use proglog_proto::proglog::raft::v1::raft_client::RaftClient;
use proglog_proto::proglog::raft::v1::{ForwardAdminRequest, ForwardLinearizableBoundsRequest};
use raft_common::{TestCluster, linearizable_bounds, produce, wait_until};
use tonic::Code;

use proglog_node::backend::BackendError;
use proglog_node::raft::{ChannelPool, NetworkConfig};
use proglog_node::tls::{ClientTlsFiles, ReloadingClientTls};
use proglog_proto::log::v1::Record;

const NO_LEADER: &str = "no leader known; the cluster may be electing or has lost quorum";

/// Starts nodes `0..3` of `cluster` and forms a three-voter cluster; returns the leader's index.
async fn form_three(cluster: &mut TestCluster) -> usize {
    for i in 0..3 {
        cluster.start(i).await;
    }
    let mut admin = cluster.admin(0).await;
    admin
        .initialize(InitializeRequest { members: vec![] })
        .await
        .expect("initialize node 0");
    cluster.wait_for_leader_among(&[0]).await;
    for i in 1..3 {
        admin
            .add_learner(AddLearnerRequest {
                member: Some(cluster.member(i)),
                wait_caught_up: true,
            })
            .await
            .expect("add learner");
        admin
            .promote_voter(PromoteVoterRequest {
                node_id: cluster.node(i).node_id(),
            })
            .await
            .expect("promote voter");
    }
    cluster.wait_for_leader_among(&[0, 1, 2]).await
}

fn ids(members: &[proglog_proto::proglog::admin::v1::Member]) -> Vec<u64> {
    members.iter().map(|m| m.node_id).collect()
}

fn leader_membership_has(cluster: &TestCluster, leader: usize, id: u64) -> (bool, bool) {
    let metrics = cluster.node(leader).metrics();
    let membership = metrics.membership_config.membership();
    (
        membership.voter_ids().any(|v| v == id),
        membership.learner_ids().any(|l| l == id),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linearizable_bounds_through_a_follower_equal_the_leaders() {
    let mut cluster = TestCluster::new(3);
    let leader = form_three(&mut cluster).await;
    let follower = (leader + 1) % 3;
    let mut leader_client = cluster.log_client(leader).await;
    let mut follower_client = cluster.log_client(follower).await;
    for i in 0..7 {
        produce(&mut follower_client, format!("record {i}"))
            .await
            .expect("produce through the follower");
    }
    let from_leader = linearizable_bounds(&mut leader_client)
        .await
        .expect("the leader answers");
    let from_follower = linearizable_bounds(&mut follower_client)
        .await
        .expect("the follower forwards to the leader");
    assert_eq!(from_leader, (0, 7));
    assert_eq!(from_follower, from_leader);

    // The internal RPC behind it is for node identities only.
    let mut raft_as_root = RaftClient::new(cluster.channel(follower, "root").await);
    let denied = raft_as_root
        .forward_linearizable_bounds(ForwardLinearizableBoundsRequest {})
        .await
        .expect_err("root is not a node identity");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_through_followers_are_executed_by_the_leader() {
    let mut cluster = TestCluster::new(4);
    let leader = form_three(&mut cluster).await;
    let follower = (leader + 1) % 3;
    let other_follower = (leader + 2) % 3;
    cluster.start(3).await;
    let new_id = cluster.node(3).node_id();
    let mut via_follower = cluster.admin(follower).await;

    // Bad input reaches the leader and its refusal comes back unchanged.
    let missing = via_follower
        .add_learner(AddLearnerRequest {
            member: None,
            wait_caught_up: false,
        })
        .await
        .expect_err("a learner without member");
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");
    let unknown = via_follower
        .promote_voter(PromoteVoterRequest { node_id: 42 })
        .await
        .expect_err("promoting a non-member");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");

    let added: MembershipResponse = via_follower
        .add_learner(AddLearnerRequest {
            member: Some(cluster.member(3)),
            wait_caught_up: true,
        })
        .await
        .expect("add a learner through a follower")
        .into_inner();
    assert!(ids(&added.learners).contains(&new_id), "{added:?}");
    assert_eq!(
        leader_membership_has(&cluster, leader, new_id),
        (false, true)
    );

    let promoted = via_follower
        .promote_voter(PromoteVoterRequest { node_id: new_id })
        .await
        .expect("promote through a follower")
        .into_inner();
    assert!(ids(&promoted.voters).contains(&new_id), "{promoted:?}");
    assert_eq!(
        leader_membership_has(&cluster, leader, new_id),
        (true, false)
    );

    let mut via_other = cluster.admin(other_follower).await;
    let removed = via_other
        .remove_node(RemoveNodeRequest { node_id: new_id })
        .await
        .expect("remove through a follower")
        .into_inner();
    assert!(
        !ids(&removed.voters).contains(&new_id) && !ids(&removed.learners).contains(&new_id),
        "{removed:?}"
    );
    assert_eq!(
        leader_membership_has(&cluster, leader, new_id),
        (false, false)
    );

    // Leadership hand-over asked of one follower, to the other.
    let target = cluster.node(other_follower).node_id();
    via_follower
        .transfer_leadership(TransferLeadershipRequest { to_node_id: target })
        .await
        .expect("transfer through a follower");
    // The hand-over is asynchronous: wait until every node follows the target.
    wait_until("the target leads", || {
        (0..3)
            .all(|i| cluster.node(i).metrics().current_leader == Some(target))
            .then_some(())
    })
    .await;

    // Only node identities may hand admin requests on: the admin identity itself cannot skip
    // the follower's authorization by calling the internal RPC.
    let mut raft_as_root = RaftClient::new(cluster.channel(follower, "root").await);
    let denied = raft_as_root
        .forward_admin(ForwardAdminRequest {
            request: Some(AdminRequest::RemoveNode(RemoveNodeRequest {
                node_id: cluster.node(follower).node_id(),
            })),
        })
        .await
        .expect_err("root is not a node identity");
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
}

fn assert_no_leader(status: &tonic::Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains(NO_LEADER), "{status:?}");
    assert!(
        !status.message().contains("None"),
        "no openraft debug text: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_leader_errors_say_no_leader_is_known() {
    // A node that is not part of any cluster yet knows no leader.
    let mut cluster = TestCluster::new(1);
    cluster.start(0).await;
    let mut client = cluster.log_client(0).await;
    let produced = produce(&mut client, "nowhere")
        .await
        .expect_err("no produce without a leader");
    assert_no_leader(&produced);
    assert!(
        proglog_proto::retry::says_not_executed(&produced),
        "a refused produce carries the not-executed metadata: {produced:?}"
    );
    assert!(
        produced
            .message()
            .contains(proglog_client::NOT_EXECUTED_MARK),
        "and says so in words: {produced:?}"
    );
    assert_no_leader(
        &linearizable_bounds(&mut client)
            .await
            .expect_err("no linearizable read without a leader"),
    );
    let mut admin = cluster.admin(0).await;
    assert_no_leader(
        &admin
            .transfer_leadership(TransferLeadershipRequest { to_node_id: 1 })
            .await
            .expect_err("no transfer without a leader"),
    );
    // A change first waits (bounded) for a leader, then gives up with the same words.
    assert_no_leader(
        &admin
            .add_learner(AddLearnerRequest {
                member: Some(proglog_proto::proglog::admin::v1::Member {
                    node_id: 1,
                    rpc_addr: "127.0.0.1:1".into(),
                }),
                wait_caught_up: false,
            })
            .await
            .expect_err("no membership change without a leader"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_lost_its_quorum_says_no_leader_is_known() {
    let mut cluster = TestCluster::new(3);
    let leader = form_three(&mut cluster).await;
    let survivor = (leader + 1) % 3;
    for i in (0..3).filter(|&i| i != survivor) {
        cluster.stop(i).await;
    }
    // Pre-Vote keeps it from campaigning without a quorum (so openraft still names the old
    // leader), but once the leader has been silent past the contact bound the node knows no
    // leader any more.
    wait_until("the survivor forgets the leader", || {
        cluster.node(survivor).leader().is_none().then_some(())
    })
    .await;
    let mut client = cluster.log_client(survivor).await;
    assert_no_leader(
        &linearizable_bounds(&mut client)
            .await
            .expect_err("no linearizable read without a leader"),
    );
    let produced = produce(&mut client, "nowhere")
        .await
        .expect_err("no produce without a quorum");
    assert_eq!(produced.code(), Code::Unavailable, "{produced:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forward_refused_by_a_node_that_does_not_lead_stays_not_executed() {
    let mut cluster = TestCluster::new(3);
    let leader = form_three(&mut cluster).await;
    let follower = (leader + 1) % 3;
    // What a node that still takes `follower` for the leader sends it: one hop only, so the
    // follower refuses, and says on the wire (metadata) that nothing was executed; the
    // forwarding node keeps that mark for its own client.
    let tls = ReloadingClientTls::load(ClientTlsFiles {
        ca: cluster.certs.join("ca.pem"),
        cert: Some(cluster.certs.join("node.pem")),
        key: Some(cluster.certs.join("node-key.pem")),
        server_name: None,
    })
    .expect("node client tls");
    let pool = ChannelPool::new(tls, NetworkConfig::default());
    let record = Record {
        value: "stale leader".into(),
        ..Record::default()
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let error = proglog_node::raft::forwarding::forward_produce(
        &pool,
        &cluster.addrs[follower],
        vec![record],
        deadline,
    )
    .await
    .expect_err("only the leader executes a forwarded produce");
    assert!(matches!(error, BackendError::NotExecuted(_)), "{error:?}");
    let status = proglog_node::server::status::backend_status(&error);
    assert!(
        proglog_proto::retry::says_not_executed(&status),
        "{status:?}"
    );
    assert_eq!(
        linearizable_bounds(&mut cluster.log_client(leader).await)
            .await
            .expect("bounds"),
        (0, 0),
        "nothing was appended"
    );
}
