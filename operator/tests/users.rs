//! ProgLogUsers against a real API server and the in-process controller: a user gets a client
//! certificate from its cluster's CA in its own Secret and its rules in the cluster's ACL; a
//! reserved identity gets neither; deleting the user removes both.

mod common;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::{
    Api,
    api::{ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams},
};
use proglog_operator::{
    ca::CertificateInfo,
    crd::ProgLogCluster,
    user_crd::{ProgLogUser, ProgLogUserStatus},
};
use serde_json::json;

fn user(name: &str, spec: serde_json::Value) -> ProgLogUser {
    serde_json::from_value(json!({
        "apiVersion": "proglog.dev/v1alpha1",
        "kind": "ProgLogUser",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("ProgLogUser object")
}

fn ready(status: &ProgLogUserStatus) -> Option<(&str, &str)> {
    let c = status.conditions.iter().find(|c| c.type_ == "Ready")?;
    Some((c.status.as_str(), c.reason.as_str()))
}

fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn a_user_gets_a_certificate_and_acl_rules_and_loses_both_when_deleted() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plu").await;
    let _controller = common::start_controller(&client, &ns);
    let users: Api<ProgLogUser> = Api::namespaced(client.clone(), &ns);
    // A user created before its cluster waits, saying why.
    users
        .create(
            &PostParams::default(),
            &user(
                "orders",
                json!({"cluster": "logs", "acl": [{"action": "produce"}, {"action": "consume", "object": "log"}]}),
            ),
        )
        .await
        .unwrap();
    common::eventually("ClusterNotFound", || {
        let users = users.clone();
        async move {
            let user = users.get("orders").await.ok()?;
            (ready(user.status.as_ref()?)? == ("False", "ClusterNotFound")).then_some(())
        }
    })
    .await;

    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(
            &PostParams::default(),
            &common::cluster("logs", json!({"replicas": 1})),
        )
        .await
        .unwrap();
    let ready_user = common::eventually("the user Ready", || {
        let users = users.clone();
        async move {
            let user = users.get("orders").await.ok()?;
            (ready(user.status.as_ref()?)?.0 == "True").then_some(user)
        }
    })
    .await;
    let status = ready_user.status.unwrap();
    // No node runs here (no kubelet): the rules in the ConfigMap are all it waits for.
    assert_eq!(ready(&status), Some(("True", "AccessEnforced")));
    assert_eq!(status.identity.as_deref(), Some("orders"));
    assert_eq!(status.secret_name.as_deref(), Some("orders-user-tls"));
    assert!(status.certificate_expiry.is_some());

    // The certificate: the user's identity, issued by the cluster's CA, owned by the user.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret = secrets.get("orders-user-tls").await.unwrap();
    let cert = CertificateInfo::parse(&text(&secret, "tls.crt")).unwrap();
    assert_eq!(cert.common_name.as_deref(), Some("orders"));
    assert!(!cert.is_ca);
    let ca = secrets.get("logs-ca").await.unwrap();
    assert_eq!(text(&secret, "ca.crt"), text(&ca, "tls.crt"));
    let owner = &secret.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("ProgLogUser", "orders")
    );

    // The rules, in the ACL the nodes read.
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let acl_has = |needle: &'static str| {
        let config_maps = config_maps.clone();
        async move {
            let map = config_maps.get("logs-config").await.ok()?;
            Some(map.data?.get("acl.csv")?.contains(needle))
        }
    };
    common::eventually("the user's rules in the ACL", || async {
        (acl_has("orders, *, produce").await? && acl_has("orders, log, consume").await?)
            .then_some(())
    })
    .await;

    // A user named like the nodes' identity gets no certificate and no rules.
    users
        .create(
            &PostParams::default(),
            &user(
                "logs-node",
                json!({"cluster": "logs", "acl": [{"action": "admin"}]}),
            ),
        )
        .await
        .unwrap();
    common::eventually("ReservedIdentity", || {
        let users = users.clone();
        async move {
            let user = users.get("logs-node").await.ok()?;
            (ready(user.status.as_ref()?)? == ("False", "ReservedIdentity")).then_some(())
        }
    })
    .await;
    assert!(
        secrets
            .get_opt("logs-node-user-tls")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(acl_has("logs-node, *, admin").await, Some(false));

    // The API server refuses what the schema forbids: replication rights, another cluster.
    // (Sent as raw JSON: the Rust type cannot even express it.)
    let raw: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &ns, &ApiResource::erase::<ProgLogUser>(&()));
    let raw_user = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "proglog.dev/v1alpha1", "kind": "ProgLogUser",
            "metadata": {"name": name}, "spec": spec,
        }))
        .unwrap()
    };
    let refused = raw
        .create(
            &PostParams::default(),
            &raw_user(
                "raft",
                json!({"cluster": "logs", "acl": [{"action": "replicate"}]}),
            ),
        )
        .await;
    assert!(
        refused.is_err(),
        "replicate must not be grantable: {refused:?}"
    );
    let moved = raw
        .patch(
            "orders",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"cluster": "elsewhere"}})),
        )
        .await;
    let message = format!("{moved:?}");
    assert!(message.contains("cluster cannot change"), "{message}");

    // Deleted: the rules leave the ACL and the Secret is garbage-collected.
    users
        .delete("orders", &DeleteParams::foreground())
        .await
        .unwrap();
    common::eventually("the rules gone from the ACL", || async {
        (!acl_has("orders, ").await?).then_some(())
    })
    .await;
    common::eventually("the Secret garbage-collected", || {
        let secrets = secrets.clone();
        async move {
            secrets
                .get_opt("orders-user-tls")
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    common::delete_namespace(&client, &ns).await;
}
