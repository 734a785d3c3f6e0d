//! `CheckAccess` (admin API) answers from the ACL policy each node enforces right now: on the
//! leader, on a learner and on a node that has not joined any cluster, without Raft (it still
//! answers while the cluster has no leader). A change of the ACL file shows in the answer once
//! the node reloaded it. Bad requests are INVALID_ARGUMENT; callers without the admin
//! permission are refused like on every admin RPC.

mod raft_common;

use std::time::Duration;

use proglog_cli::dev_ca::DEV_ACL;
use proglog_proto::proglog::admin::v1::admin_client::AdminClient;
use proglog_proto::proglog::admin::v1::{
    AddLearnerRequest, CheckAccessRequest, CheckAccessResponse, InitializeRequest,
};
use raft_common::*;
use tonic::Code;
use tonic::transport::Channel;

fn request(subject: &str, object: &str, action: &str) -> CheckAccessRequest {
    CheckAccessRequest {
        subject: subject.into(),
        object: object.into(),
        action: action.into(),
    }
}

async fn ask(
    admin: &mut AdminClient<Channel>,
    subject: &str,
    object: &str,
    action: &str,
) -> Result<CheckAccessResponse, tonic::Status> {
    tokio::time::timeout(
        Duration::from_secs(5),
        admin.check_access(request(subject, object, action)),
    )
    .await
    .expect("CheckAccess answers at once")
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_access_reflects_the_policy_each_node_enforces() {
    let mut cluster = TestCluster::new(3);
    cluster.acl_reload_interval = Some(Duration::from_millis(100));
    for i in 0..3 {
        cluster.start(i).await;
    }
    // Node 0 leads, node 1 is its learner, node 2 has no Raft state at all.
    let mut leader = cluster.admin(0).await;
    leader
        .initialize(InitializeRequest { members: vec![] })
        .await
        .expect("initialize node 0");
    cluster.wait_for_leader_among(&[0]).await;
    leader
        .add_learner(AddLearnerRequest {
            member: Some(cluster.member(1)),
            wait_caught_up: true,
        })
        .await
        .expect("add learner");
    let mut admins = Vec::new();
    for i in 0..3 {
        admins.push(cluster.admin(i).await);
    }

    // The dev ACL as loaded at startup.
    let mut loaded_at = Vec::new();
    for (i, admin) in admins.iter_mut().enumerate() {
        let root = ask(admin, "root", "*", "produce").await.unwrap();
        assert!(root.allowed, "node {i}: root may produce everywhere");
        assert_eq!(root.policy_rules, 6, "node {i}: {root:?}");
        assert!(
            ask(admin, "proglog-node", "raft", "replicate")
                .await
                .unwrap()
                .allowed
        );
        assert!(
            !ask(admin, "nobody", "log", "consume")
                .await
                .unwrap()
                .allowed
        );
        assert!(!ask(admin, "app", "log", "produce").await.unwrap().allowed);
        loaded_at.push(root.policy_loaded_unix_ms);
    }

    // A new rule in the file: every node allows it once it has reloaded the file.
    std::fs::write(
        cluster.certs.join("acl.csv"),
        format!("{DEV_ACL}app, log, produce\n"),
    )
    .unwrap();
    for (i, admin) in admins.iter_mut().enumerate() {
        let deadline = tokio::time::Instant::now() + WAIT;
        let answer = loop {
            let answer = ask(admin, "app", "log", "produce").await.unwrap();
            if answer.allowed {
                break answer;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "node {i} never enforced the new rule: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(answer.policy_rules, 7, "node {i}: {answer:?}");
        assert!(answer.policy_loaded_unix_ms >= loaded_at[i], "{answer:?}");
        // Only what the rule grants.
        assert!(!ask(admin, "app", "log", "consume").await.unwrap().allowed);
        assert!(!ask(admin, "app", "*", "produce").await.unwrap().allowed);
    }

    // Bad requests name their problem.
    for (subject, object, action, expected) in [
        ("", "log", "produce", "subject is empty"),
        ("app", "", "produce", "object is empty"),
        ("app", "log", "fly", "unknown action \"fly\""),
        ("app", "log", "*", "wildcard"),
    ] {
        let status = ask(&mut admins[1], subject, object, action)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(expected), "{status:?}");
    }

    // Only the admin identity may ask (even a malformed question).
    let mut nobody = AdminClient::new(cluster.channel(0, "nobody").await);
    for (subject, action) in [("app", "produce"), ("", "fly")] {
        let status = ask(&mut nobody, subject, "log", action).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // Without a leader the learner still answers at once: no Raft round trip.
    cluster.stop(0).await;
    assert!(
        ask(&mut admins[1], "app", "log", "produce")
            .await
            .unwrap()
            .allowed
    );
    assert!(
        ask(&mut admins[2], "app", "log", "produce")
            .await
            .unwrap()
            .allowed
    );
}
