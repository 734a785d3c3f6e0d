//! A ProgLogUser is Ready only once every running node of its cluster enforces its rules:
//! against the API server and two real `proglog-node` processes, each reading its own copy of
//! the ACL (as each pod's kubelet syncs the ConfigMap volume on its own schedule), the user
//! controller's reconciliation ([`users::reconcile_user`], exactly what the controller runs)
//! keeps the user not Ready while one node's file lacks its rules, makes it Ready once that
//! node reloaded them, keeps it Ready when a node later goes away, and checks again when the
//! user's spec changes. A running node that does not answer is never counted as enforcing.
//!
//! `#[ignore]`d: needs `KUBECONFIG` (scripts/control-plane/with-control-plane.sh) and the
//! `proglog-node` binary (`cargo build -p proglog-node`); `make test-operator` does both.

mod common;

use common::node_process::NodeProcess;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use proglog_operator::{
    builders::{self, ClusterRef},
    controller::{FIELD_MANAGER, OperatorConfig, ca_rotation, nodes::ProbeTarget, users},
    crd::ProgLogCluster,
    user_crd::ProgLogUser,
};
use serde_json::json;

const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One node process with its own ACL file.
struct Node {
    acl: PathBuf,
    port: u16,
    child: NodeProcess,
}

impl Node {
    fn start(ordinal: u32, files: &Path, acl: &str) -> Self {
        let acl_file = files.join(format!("acl-{ordinal}.csv"));
        std::fs::write(&acl_file, acl).unwrap();
        let port = proglog_node::test_ports::reserve_port();
        let child = common::node_process::spawn_node_with_acl(
            files,
            &acl_file,
            &files.join(format!("data-{ordinal}")),
            ordinal,
            port,
            proglog_node::test_ports::reserve_port(),
        );
        Self {
            acl: acl_file,
            port,
            child: NodeProcess::running(child),
        }
    }

    fn target(&self, pod: &str) -> ProbeTarget {
        ProbeTarget {
            pod: pod.to_owned(),
            address: format!("127.0.0.1:{}", self.port),
            server_name: Some("localhost".to_owned()),
        }
    }

    /// The kubelet's sync of this pod's ConfigMap volume (one atomic replace).
    fn sync_acl(&self, acl: &str) {
        let tmp = self.acl.with_extension("tmp");
        std::fs::write(&tmp, acl).unwrap();
        std::fs::rename(&tmp, &self.acl).unwrap();
    }

    fn stop(&mut self) {
        self.child.stop();
    }
}

fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// Reconciles the user once (as the controller does, asking `targets`) and returns its Ready
/// condition's (status, reason, message).
async fn reconcile(
    client: &Client,
    users: &Api<ProgLogUser>,
    targets: &[ProbeTarget],
) -> (String, String, String) {
    let config = OperatorConfig {
        admin_timeout: CALL_TIMEOUT,
        ..OperatorConfig::default()
    };
    let user = users.get("app").await.unwrap();
    users::reconcile_user(client, &config, &user, Some(targets))
        .await
        .expect("reconcile");
    let user = users.get("app").await.unwrap();
    let ready = user
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .expect("a Ready condition");
    (ready.status, ready.reason, ready.message)
}

/// Reconciles until the Ready condition satisfies `check`; returns it.
async fn reconcile_until(
    client: &Client,
    users: &Api<ProgLogUser>,
    targets: &[ProbeTarget],
    what: &str,
    check: impl Fn(&(String, String, String)) -> bool,
) -> (String, String, String) {
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        let ready = reconcile(client, users, targets).await;
        if check(&ready) {
            return ready;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; last Ready condition {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The cluster controller's part: the ACL ConfigMap with the current users' rules.
async fn write_config_map(client: &Client, ns: &str, cluster: &ProgLogCluster) -> String {
    let cluster_ref = ClusterRef::of(cluster).unwrap();
    let users: Vec<ProgLogUser> = Api::<ProgLogUser>::namespaced(client.clone(), ns)
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let map = builders::config_map(cluster, &cluster_ref, &users).unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .patch(
            &cluster_ref.config_map_name(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&map),
        )
        .await
        .unwrap();
    builders::acl_policy(cluster, &cluster_ref, &users)
}

#[tokio::test]
#[ignore = "needs KUBECONFIG and the proglog-node binary (make test-operator)"]
async fn a_user_is_ready_only_once_every_running_node_enforces_its_rules() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plua").await;
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    let spec = json!({"replicas": 2, "log": {"maxStoreBytes": 4194304, "retentionAge": "7d"}});
    let cluster = clusters
        .create(&PostParams::default(), &common::cluster("demo", spec))
        .await
        .unwrap();
    let cluster_ref = ClusterRef::of(&cluster).unwrap();
    let users: Api<ProgLogUser> = Api::namespaced(client.clone(), &ns);
    let user: ProgLogUser = serde_json::from_value(json!({
        "apiVersion": "proglog.dev/v1alpha1", "kind": "ProgLogUser",
        "metadata": {"name": "app"},
        "spec": {"cluster": "demo", "acl": [{"action": "produce"}, {"action": "consume", "object": "log"}]},
    }))
    .unwrap();
    users.create(&PostParams::default(), &user).await.unwrap();

    // The cluster's Secrets (CA, node, operator) and ConfigMap, as the cluster controller
    // writes them.
    let tls = ca_rotation::ensure_certificates(&client, &cluster, 2, Some(&[]), CALL_TIMEOUT)
        .await
        .unwrap();
    let with_user = write_config_map(&client, &ns, &cluster).await;
    let without_user = builders::acl_policy(&cluster, &cluster_ref, &[]);
    assert!(with_user.contains("app, log, consume"), "{with_user}");

    // Two nodes: pod 0 has synced the ConfigMap, pod 1 still has the ACL from before the user.
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let node_secret = secrets
        .get(&cluster_ref.node_tls_secret_name())
        .await
        .unwrap();
    for key in ["tls.crt", "tls.key", "ca.crt"] {
        std::fs::write(files.join(key), text(&node_secret, key)).unwrap();
    }
    std::fs::write(
        files.join("proglog.toml"),
        builders::node_config(&cluster).unwrap(),
    )
    .unwrap();
    let node0 = Node::start(0, files, &with_user);
    let mut node1 = Node::start(1, files, &without_user);
    let targets = [node0.target("demo-0"), node1.target("demo-1")];
    common::eventually("both nodes to answer", || async {
        for target in &targets {
            let mut admin = target.connect(&tls.credentials, CALL_TIMEOUT).await.ok()?;
            admin.node_info().await.ok()?;
        }
        Some(())
    })
    .await;

    // Pod 1 refuses the user: not Ready, and the message names pod 1 only.
    let (status, reason, message) = reconcile(&client, &users, &targets).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AclPropagating"),
        "{message}"
    );
    assert!(message.contains("demo-1"), "{message}");
    assert!(!message.contains("demo-0"), "{message}");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (status, _, message) = reconcile(&client, &users, &targets).await;
        assert_eq!(status, "False", "Ready while pod 1 denies: {message}");
    }

    // Pod 1's kubelet syncs the ConfigMap; once the node reloaded it the user is Ready.
    node1.sync_acl(&with_user);
    let (_, reason, message) =
        reconcile_until(&client, &users, &targets, "Ready", |r| r.0 == "True").await;
    assert_eq!(reason, "AccessEnforced", "{message}");

    // Confirmed for this generation: a pod that stops answering later does not flip it back.
    node1.stop();
    let (status, reason, _) = reconcile(&client, &users, &targets).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AccessEnforced")
    );

    // A new rule (new generation): checked again. First the ConfigMap lacks it.
    users
        .patch(
            "app",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"acl": [
                {"action": "produce"}, {"action": "consume", "object": "log"},
                {"action": "consume", "object": "audit"}]}})),
        )
        .await
        .unwrap();
    let (status, reason, message) = reconcile(&client, &users, &targets).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "AclPropagating"),
        "{message}"
    );
    assert!(message.contains("demo-config"), "{message}");

    // In the ConfigMap and on pod 0, but pod 1 is "Running" and does not answer: not Ready.
    let with_audit = write_config_map(&client, &ns, &cluster).await;
    assert!(with_audit.contains("app, audit, consume"), "{with_audit}");
    node0.sync_acl(&with_audit);
    let (_, _, message) = reconcile_until(
        &client,
        &users,
        &targets,
        "only the unreachable pod 1 named",
        |r| !r.2.contains("demo-0"),
    )
    .await;
    assert!(message.contains("demo-1"), "{message}");
    let (status, _, _) = reconcile(&client, &users, &targets).await;
    assert_eq!(status, "False", "an unreachable running pod must not count");

    // Pod 1 is no longer running (no target): it mounts the current ConfigMap when it starts,
    // so the running pods decide.
    let (status, reason, message) = reconcile(&client, &users, &targets[..1]).await;
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "AccessEnforced"),
        "{message}"
    );
    common::delete_namespace(&client, &ns).await;
}
