//! A node answers Raft RPCs only when they are addressed to its own node id: RPCs for another id
//! (or for none) are refused, so a follower that lost its volume and came back at the same
//! address under a new id refuses the leader's replication to the old id (instead of showing the
//! leader a log that went backwards), and the leader keeps serving until the operator replaces
//! the old member by the new one.

mod raft_common;

use futures::stream;
use proglog_node::raft::TARGET_NODE_HEADER;
use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, PromoteVoterRequest, RemoveNodeRequest,
};
use proglog_proto::proglog::raft::v1 as pb;
use proglog_proto::proglog::raft::v1::raft_client::RaftClient;
use raft_common::*;
use tonic::transport::Channel;
use tonic::{Code, Request};

/// `message` with the target-node header set to `target` (as text), or without it.
fn to_target<T>(message: T, target: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(target) = target {
        request
            .metadata_mut()
            .insert(TARGET_NODE_HEADER, target.parse().expect("ascii header"));
    }
    request
}

fn garbage() -> pb::RaftMessage {
    pb::RaftMessage {
        json: b"not json".to_vec().into(),
    }
}

async fn raft_client(cluster: &TestCluster, i: usize) -> RaftClient<Channel> {
    RaftClient::new(cluster.channel(i, "node").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_rpcs_for_another_node_id_or_none_are_refused() {
    let mut cluster = TestCluster::new(1);
    cluster.start(0).await;
    let this = cluster.node(0).node_id();
    let other = (this + 1).to_string();
    let other = Some(other.as_str());
    let mine = this.to_string();
    let mine = Some(mine.as_str());
    let mut client = raft_client(&cluster, 0).await;
    let misaddressed = format!("addressed to node {} but this is node {this}", this + 1);

    let refused = client
        .vote(to_target(garbage(), other))
        .await
        .expect_err("vote for another node");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains(&misaddressed), "{refused}");
    for refused in [
        client.pre_vote(to_target(garbage(), other)).await,
        client.transfer_leader(to_target(garbage(), other)).await,
        client
            .append_entries(to_target(pb::AppendEntriesRequest::default(), other))
            .await,
    ] {
        let refused = refused.expect_err("rpc for another node");
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
        assert!(refused.message().contains(&misaddressed), "{refused}");
    }
    let refused = client
        .stream_append(to_target(
            stream::iter(vec![pb::AppendEntriesRequest::default()]),
            other,
        ))
        .await
        .expect_err("replication stream for another node");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains(&misaddressed), "{refused}");
    let refused = client
        .install_snapshot(to_target(
            stream::iter(vec![pb::SnapshotChunk::default()]),
            other,
        ))
        .await
        .expect_err("snapshot for another node");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains(&misaddressed), "{refused}");
    assert_eq!(cluster.node(0).misaddressed_rpcs(), 6);

    // No target at all (an older peer) and a target that is not a number are refused too.
    let refused = client
        .vote(to_target(garbage(), None))
        .await
        .expect_err("vote without a target");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused}");
    assert!(refused.message().contains(TARGET_NODE_HEADER), "{refused}");
    let refused = client
        .append_entries(to_target(pb::AppendEntriesRequest::default(), Some("x1")))
        .await
        .expect_err("append with a malformed target");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused}");

    // Addressed to this node, the same requests get past the check (and fail on their content).
    let bad = client
        .vote(to_target(garbage(), mine))
        .await
        .expect_err("garbage vote");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad}");
    assert!(bad.message().contains("bad raft message"), "{bad}");
    let bad = client
        .install_snapshot(to_target(stream::iter(Vec::new()), mine))
        .await
        .expect_err("empty snapshot");
    assert_eq!(bad.code(), Code::InvalidArgument, "{bad}");
    assert!(bad.message().contains("empty snapshot stream"), "{bad}");

    // ForwardProduce is addressed to "the leader", not to an id: no target check.
    let forwarded = client
        .forward_produce(Request::new(pb::ForwardProduceRequest::default()))
        .await;
    if let Err(status) = forwarded {
        assert!(!status.message().contains(TARGET_NODE_HEADER), "{status}");
        assert_ne!(status.code(), Code::FailedPrecondition, "{status}");
    }
    assert!(
        !cluster.node(0).has_raft_state(),
        "a refused rpc leaves no raft state behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_that_lost_its_volume_is_refused_as_the_old_member_then_replaces_it() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let lost = (leader + 1) % 3;
    let mut client = cluster.log_client(leader).await;
    for i in 0..10u32 {
        produce(&mut client, format!("before-{i}"))
            .await
            .expect("produce before the volume loss");
    }
    cluster.wait_for_next_offset(lost, 10).await;

    // The follower's volume is lost: it comes back at the same address under a new id while
    // the leader still has the old id in its membership.
    let old_id = cluster.node(lost).node_id();
    cluster.stop(lost).await;
    std::fs::remove_dir_all(cluster.data_dir(lost)).expect("wipe the data directory");
    cluster.start(lost).await;
    let new_id = cluster.node(lost).node_id();
    assert_ne!(
        new_id, old_id,
        "a new data directory draws a new incarnation"
    );

    // The leader keeps replicating to the old id at that address; the new node refuses.
    let renewed = cluster.node(lost).clone();
    wait_until("the new incarnation refuses the leader's rpcs", || {
        (renewed.misaddressed_rpcs() >= 3).then_some(())
    })
    .await;
    for i in 0..20u32 {
        produce(&mut client, format!("during-{i}"))
            .await
            .expect("the leader keeps serving produces");
    }
    assert_eq!(
        cluster.wait_for_leader_among(&[leader]).await,
        leader,
        "the leader is still running and leading"
    );
    assert!(
        !renewed.has_raft_state(),
        "the new incarnation took nothing meant for the old member"
    );
    assert_eq!(renewed.user_log().applied_end(), 0);

    // The operator's replacement: remove the old id, add the new one, promote it.
    let mut admin = cluster.admin(leader).await;
    admin
        .remove_node(RemoveNodeRequest { node_id: old_id })
        .await
        .expect("remove the lost member");
    admin
        .add_learner(AddLearnerRequest {
            member: Some(cluster.member(lost)),
            wait_caught_up: true,
        })
        .await
        .expect("add the new incarnation");
    admin
        .promote_voter(PromoteVoterRequest { node_id: new_id })
        .await
        .expect("promote the new incarnation");
    for i in 0..5u32 {
        produce(&mut client, format!("after-{i}"))
            .await
            .expect("produce after the replacement");
    }
    cluster.wait_for_next_offset(lost, 35).await;
    assert_eq!(cluster.records(lost), cluster.records(leader));
    let voters = cluster
        .node(leader)
        .metrics()
        .membership_config
        .membership()
        .voter_ids()
        .collect::<Vec<_>>();
    assert!(voters.contains(&new_id), "{voters:?}");
    assert!(!voters.contains(&old_id), "{voters:?}");
}
