//! Multi-node behaviour of the Raft cluster, in process over loopback with real mutual TLS:
//! agreement, produce through a follower, leader failover without losing acknowledged records,
//! restart and catch-up, node removal, and the admin API's refusals.

mod raft_common;

use std::collections::BTreeSet;

use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, ClusterStatusRequest, InitializeRequest, RemoveNodeRequest,
};
use raft_common::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_agree_forward_fail_over_and_catch_up() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;

    // Produce through the leader, then through a follower (forwarded to the leader).
    let mut acked = Vec::new();
    let mut to_leader = cluster.log_client(leader).await;
    for i in 0..50u32 {
        let offset = produce(&mut to_leader, format!("leader-{i}"))
            .await
            .expect("produce via leader");
        acked.push((offset, format!("leader-{i}")));
    }
    let mut to_follower = cluster.log_client(follower).await;
    for i in 0..20u32 {
        let offset = produce(&mut to_follower, format!("follower-{i}"))
            .await
            .expect("produce via follower");
        acked.push((offset, format!("follower-{i}")));
    }
    let offsets: Vec<u64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (0..70).collect::<Vec<u64>>(),
        "offsets are contiguous in produce order"
    );

    // Every node holds the same records, and a follower serves consumes of committed records.
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 70).await;
    }
    assert_eq!(cluster.records(0), cluster.records(1));
    assert_eq!(cluster.records(0), cluster.records(2));
    let record = consume(&mut to_follower, 55)
        .await
        .expect("consume on a follower");
    assert_eq!(record.value, "follower-5".as_bytes());
    assert_eq!(record.offset, 55);

    // Kill the leader: the others elect a new one and keep every acknowledged record.
    cluster.stop(leader).await;
    let rest: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = cluster.wait_for_leader_among(&rest).await;
    assert_ne!(new_leader, leader);
    let mut to_new_leader = cluster.log_client(new_leader).await;
    for (offset, value) in &acked {
        let record = consume(&mut to_new_leader, *offset)
            .await
            .expect("acknowledged record survives");
        assert_eq!(record.value, value.as_bytes());
    }
    for i in 0..10u32 {
        let offset = produce(&mut to_new_leader, format!("after-{i}"))
            .await
            .expect("produce after failover");
        assert_eq!(offset, 70 + u64::from(i));
    }

    // Restart the old leader: it catches up as a follower.
    cluster.start(leader).await;
    cluster.wait_for_next_offset(leader, 80).await;
    assert_eq!(cluster.records(leader), cluster.records(new_leader));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_removed_node_gets_no_more_records_and_the_rest_continue() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let removed = (leader + 2) % 3;
    let mut client = cluster.log_client(leader).await;
    for i in 0..10u32 {
        produce(&mut client, format!("r{i}"))
            .await
            .expect("produce");
    }
    cluster.wait_for_next_offset(removed, 10).await;

    let mut admin = cluster.admin(leader).await;
    let removed_id = cluster.node(removed).node_id();
    let response = admin
        .remove_node(RemoveNodeRequest {
            node_id: removed_id,
        })
        .await
        .expect("remove node")
        .into_inner();
    let voters: BTreeSet<u64> = response.voters.iter().map(|m| m.node_id).collect();
    assert!(!voters.contains(&removed_id));
    assert_eq!(voters.len(), 2);

    for i in 10..30u32 {
        produce(&mut client, format!("r{i}"))
            .await
            .expect("produce after removal");
    }
    let kept = (leader + 1) % 3;
    cluster.wait_for_next_offset(kept, 30).await;
    assert_eq!(cluster.records(kept), cluster.records(leader));
    // The removed node stopped receiving at the removal point.
    assert_eq!(cluster.node(removed).user_log().applied_end(), 10);

    // GetServers on the leader lists only the remaining voters.
    let servers = client
        .get_servers(proglog_proto::log::v1::GetServersRequest {})
        .await
        .expect("get servers")
        .into_inner()
        .servers;
    assert_eq!(servers.len(), 2);
    assert_eq!(servers.iter().filter(|s| s.is_leader).count(), 1);
    assert!(servers.iter().all(|s| s.id != removed_id.to_string()));

    // Removing it again is refused with a clear error.
    let again = admin
        .remove_node(RemoveNodeRequest {
            node_id: removed_id,
        })
        .await
        .expect_err("second removal");
    assert_eq!(again.code(), Code::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn initialize_twice_is_refused_and_admin_input_is_checked() {
    let mut cluster = TestCluster::new(1);
    cluster.start(0).await;
    let mut admin = cluster.admin(0).await;

    let info = admin
        .node_info(proglog_proto::proglog::admin::v1::NodeInfoRequest {})
        .await
        .expect("node info")
        .into_inner();
    assert!(!info.has_raft_state);
    assert_eq!(info.node_id, info.incarnation * 10_000);

    // Without a leader a produce fails with UNAVAILABLE within the propose timeout, no hang.
    let mut client = cluster.log_client(0).await;
    let error = produce(&mut client, "too early")
        .await
        .expect_err("no cluster yet");
    assert_eq!(error.code(), Code::Unavailable, "{error}");

    admin
        .initialize(InitializeRequest { members: vec![] })
        .await
        .expect("first initialize");
    let again = admin
        .initialize(InitializeRequest { members: vec![] })
        .await
        .expect_err("second initialize");
    assert_eq!(again.code(), Code::FailedPrecondition, "{again}");
    cluster.wait_for_leader_among(&[0]).await;
    assert_eq!(produce(&mut client, "first").await.expect("produce"), 0);

    // Bad input is refused with a clear error.
    let missing = admin
        .add_learner(AddLearnerRequest {
            member: None,
            wait_caught_up: false,
        })
        .await
        .expect_err("missing member");
    assert_eq!(missing.code(), Code::InvalidArgument);
    let promote_unknown = admin
        .promote_voter(proglog_proto::proglog::admin::v1::PromoteVoterRequest { node_id: 42 })
        .await
        .expect_err("unknown node");
    assert_eq!(promote_unknown.code(), Code::NotFound);

    // Only the admin identity may call the admin API, only node identities the Raft API.
    let mut nobody = proglog_proto::proglog::admin::v1::admin_client::AdminClient::new(
        cluster.channel(0, "nobody").await,
    );
    let denied = nobody
        .cluster_status(ClusterStatusRequest {})
        .await
        .expect_err("nobody is not admin");
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut raft_as_root = proglog_proto::proglog::raft::v1::raft_client::RaftClient::new(
        cluster.channel(0, "root").await,
    );
    let denied = raft_as_root
        .vote(proglog_proto::proglog::raft::v1::RaftMessage {
            json: Default::default(),
        })
        .await
        .expect_err("root may not replicate");
    assert_eq!(denied.code(), Code::PermissionDenied);

    // After a restart the node still refuses to initialize.
    cluster.stop(0).await;
    cluster.start(0).await;
    let mut admin = cluster.admin(0).await;
    let after_restart = admin
        .initialize(InitializeRequest { members: vec![] })
        .await
        .expect_err("initialize after restart");
    assert_eq!(after_restart.code(), Code::FailedPrecondition);
    cluster.wait_for_leader_among(&[0]).await;
    let status = admin
        .cluster_status(ClusterStatusRequest {})
        .await
        .expect("status")
        .into_inner();
    assert_eq!(status.next_offset, 1, "the record survived the restart");
    assert_eq!(status.state, "leader");
}
