//! A CA rotation against the API server and three real `proglog-node` processes while an
//! application produces and consumes: the operator's certificate code
//! ([`ca_rotation::ensure_certificates`], exactly what each reconciliation runs) writes the
//! Secrets, a stand-in for the kubelet copies them into the nodes' files the way a Secret
//! volume changes (one symlink swap), the nodes reload them, and the rotation advances only on
//! what the nodes prove over TLS. The workload reloads its user Secret like an application
//! would; no operation may fail for good.
//!
//! `#[ignore]`d: needs `KUBECONFIG` (scripts/control-plane/with-control-plane.sh) and the
//! `proglog-node` binary (`cargo build -p proglog-node`); `make test-operator` does both.

mod common;
#[path = "ca_rotation/harness.rs"]
mod harness;

use std::{
    collections::BTreeMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use harness::*;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
};
use proglog_operator::{
    builders::{self, ClusterRef},
    ca,
    ca_rotation::{GENERATION_ANNOTATION, Phase, ROTATE_ANNOTATION},
    controller::{
        ca_rotation::{self, ProbeTarget},
        membership::{self, PodView},
    },
    crd::ProgLogCluster,
    user_crd::ProgLogUser,
};
use serde_json::json;
use time::OffsetDateTime;
use tokio::sync::watch;

async fn create_objects(client: &Client, ns: &str) -> ProgLogCluster {
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), ns);
    let spec = json!({"replicas": NODES, "log": {"maxStoreBytes": 4194304, "retentionAge": "7d"}});
    let cluster = clusters
        .create(&PostParams::default(), &common::cluster("demo", spec))
        .await
        .unwrap();
    let users: Api<ProgLogUser> = Api::namespaced(client.clone(), ns);
    let user: ProgLogUser = serde_json::from_value(json!({
        "apiVersion": "proglog.dev/v1alpha1", "kind": "ProgLogUser",
        "metadata": {"name": "app"},
        "spec": {"cluster": "demo", "acl": [{"action": "produce"}, {"action": "consume"}]},
    }))
    .unwrap();
    users.create(&PostParams::default(), &user).await.unwrap();
    cluster
}

#[tokio::test]
#[ignore = "needs KUBECONFIG and the proglog-node binary (make test-operator)"]
async fn the_ca_is_replaced_under_load_without_a_failed_request() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plca").await;
    let cluster = create_objects(&client, &ns).await;
    let cluster_ref = ClusterRef::of(&cluster).unwrap();
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);

    // Generation 1: the CA, node and operator Secrets, and the user's.
    let tls = ca_rotation::ensure_certificates(&client, &cluster, NODES, Some(&[]), CALL_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(tls.ca_set.generation, 1);
    ca_rotation::ensure_user_certificates(&client, &cluster)
        .await
        .unwrap();
    let old_ca = tls.ca_set.signing.clone();

    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().to_owned();
    let users: Api<ProgLogUser> = Api::namespaced(client.clone(), &ns);
    let user = users.get("app").await.unwrap();
    std::fs::write(
        files.join("proglog.toml"),
        builders::node_config(&cluster).unwrap(),
    )
    .unwrap();
    std::fs::write(
        files.join("acl.csv"),
        builders::acl_policy(&cluster, &cluster_ref, std::slice::from_ref(&user)),
    )
    .unwrap();
    for name in ["tls.crt", "tls.key", "ca.crt"] {
        std::os::unix::fs::symlink(format!("current/{name}"), files.join(name)).unwrap();
    }
    let (user_tx, user_rx) = watch::channel(None);
    let mut kubelet = Kubelet {
        secrets: secrets.clone(),
        files: files.clone(),
        node_secret: cluster_ref.node_tls_secret_name(),
        user_secret: "app-user-tls".to_owned(),
        last: None,
        swaps: 0,
        user: user_tx,
    };
    kubelet.sync().await;
    let nodes: Vec<Node> = (0..NODES).map(|o| Node::start(o, &files)).collect();
    form_cluster(&nodes, &tls.credentials).await;
    let kubelet = tokio::spawn(async move {
        loop {
            kubelet.sync().await;
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });

    let stats = Arc::new(Workload::default());
    let seeds: Vec<String> = nodes.iter().map(Node::address).collect();
    let workload = tokio::spawn(run_workload(seeds, user_rx, stats.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = stats.acknowledged.load(Ordering::SeqCst);
    assert!(before > 0, "the workload runs before the rotation");

    // Request the rotation the way a person does.
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_ANNOTATION: "test-1"}}})),
        )
        .await
        .unwrap();
    let targets: Vec<ProbeTarget> = nodes
        .iter()
        .map(|n| ProbeTarget {
            pod: format!("demo-{}", n.ordinal),
            address: n.address(),
            server_name: Some("localhost".to_owned()),
        })
        .collect();
    let started = Instant::now();
    let mut phases = vec![Phase::Idle];
    let mut operations = Vec::new();
    let final_tls = loop {
        assert!(
            started.elapsed() < ROTATION_TIMEOUT,
            "rotation stuck in {:?}; last status {:?}",
            phases.last(),
            operations.last()
        );
        // Each pass starts from what is stored, like an operator that may have restarted.
        let cluster = clusters.get("demo").await.unwrap();
        let tls = ca_rotation::ensure_certificates(
            &client,
            &cluster,
            NODES,
            Some(&targets),
            CALL_TIMEOUT,
        )
        .await
        .unwrap();
        // The operator's own credentials work at every step of the rotation.
        let pods: Vec<PodView> = (0..NODES)
            .map(|ordinal| PodView {
                ordinal,
                running: true,
                ready: true,
            })
            .collect();
        let endpoint = |o: u32| {
            (
                targets[o as usize].address.clone(),
                Some("localhost".into()),
            )
        };
        let observed =
            membership::observe_nodes(&pods, endpoint, &tls.credentials, CALL_TIMEOUT).await;
        assert!(
            observed.membership.is_some(),
            "the operator lost the nodes during {}",
            tls.ca_set.phase
        );
        if phases.last() != Some(&tls.ca_set.phase) {
            phases.push(tls.ca_set.phase);
        }
        operations.push(tls.rotation.clone());
        if tls.ca_set.phase == Phase::Idle && tls.ca_set.generation == 2 {
            break tls;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let rotation_time = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stats.stop.store(true, Ordering::SeqCst);
    workload.await.unwrap();
    kubelet.abort();

    assert_eq!(
        phases,
        [
            Phase::Idle,
            Phase::TrustBoth,
            Phase::Reissue,
            Phase::DropOld,
            Phase::Idle
        ]
    );
    assert!(
        operations
            .iter()
            .flatten()
            .any(|op| op.starts_with("CA rotation: TrustBoth")),
        "{operations:?}"
    );
    let acknowledged = stats.acknowledged.load(Ordering::SeqCst);
    let retried = stats.retried.load(Ordering::SeqCst);
    let failed = stats.failed.load(Ordering::SeqCst);
    eprintln!(
        "CA rotated in {rotation_time:?} under load: {acknowledged} produce+consume pairs \
         acknowledged, {retried} retried, {failed} failed"
    );
    assert_eq!(failed, 0, "operations failed for good during the rotation");
    assert!(
        acknowledged > before,
        "the workload progressed during the rotation"
    );

    // Every Secret now trusts only the new CA and holds a certificate it signed.
    let new_ca = final_tls.ca_set.signing.clone();
    assert_ne!(new_ca, old_ca);
    let now = OffsetDateTime::now_utc();
    for name in [
        cluster_ref.node_tls_secret_name(),
        cluster_ref.operator_tls_secret_name(),
        "app-user-tls".to_owned(),
    ] {
        let secret = secrets.get(&name).await.unwrap();
        assert_eq!(text(&secret, "ca.crt"), new_ca.cert_pem, "{name}");
        assert!(
            ca::verifies(&text(&secret, "tls.crt"), &new_ca.cert_pem, now),
            "{name}"
        );
        let annotations: BTreeMap<String, String> =
            secret.metadata.annotations.clone().unwrap_or_default();
        assert_eq!(
            annotations.get(GENERATION_ANNOTATION).map(String::as_str),
            Some("2")
        );
    }
    let ca_secret = secrets.get(&cluster_ref.ca_secret_name()).await.unwrap();
    let keys: Vec<&String> = ca_secret.data.as_ref().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["ca.crt", "tls.crt", "tls.key"],
        "the old CA's key is gone"
    );
    // A second pass with the same token starts nothing.
    let cluster = clusters.get("demo").await.unwrap();
    let again =
        ca_rotation::ensure_certificates(&client, &cluster, NODES, Some(&targets), CALL_TIMEOUT)
            .await
            .unwrap();
    assert_eq!(again.ca_set.phase, Phase::Idle);
    assert!(
        again.rotation_notes.is_empty() && again.issued.is_empty(),
        "{again:?}"
    );
    common::delete_namespace(&client, &ns).await;
}

/// The controller itself, triggered by the annotation: the control plane runs no pods, so no
/// node has to prove anything and the rotation walks through its phases pass by pass; the
/// status, events and Secrets show it, and the handled token does not start it again.
#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn the_controller_rotates_the_ca_when_annotated_and_reports_it() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plcac").await;
    let _controller = common::start_controller(&client, &ns);
    let cluster = create_objects(&client, &ns).await;
    let cluster_ref = ClusterRef::of(&cluster).unwrap();
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let generation_of = |secret: &Secret| {
        secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(GENERATION_ANNOTATION).cloned())
    };
    let first = common::eventually("generation 1 reported in the status", || {
        let clusters = clusters.clone();
        async move {
            let status = clusters.get("demo").await.ok()?.status?;
            (status.trusted_cas.len() == 1 && status.trusted_cas[0].generation == 1)
                // Lazily: a status without its CAs yet must wait, not index an empty list.
                .then(|| status.trusted_cas[0].clone())
        }
    })
    .await;
    assert!(first.signing);
    let user_secret = common::eventually("the user's Secret", || {
        let secrets = secrets.clone();
        async move { secrets.get_opt("app-user-tls").await.ok()? }
    })
    .await;
    assert_eq!(generation_of(&user_secret).as_deref(), Some("1"));

    clusters
        .patch(
            "demo",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {ROTATE_ANNOTATION: "ctl-1"}}})),
        )
        .await
        .unwrap();
    let ca_name = cluster_ref.ca_secret_name();
    common::eventually("generation 2 as the only trusted CA, rotation idle", || {
        let (clusters, secrets, ca_name) = (clusters.clone(), secrets.clone(), ca_name.clone());
        async move {
            let status = clusters.get("demo").await.ok()?.status?;
            let ca = secrets.get(&ca_name).await.ok()?;
            let idle = !ca
                .metadata
                .annotations
                .as_ref()?
                .contains_key(proglog_operator::ca_rotation::PHASE_ANNOTATION);
            (idle && status.trusted_cas.len() == 1 && status.trusted_cas[0].generation == 2)
                .then_some(())
        }
    })
    .await;
    let ca_secret = secrets.get(&cluster_ref.ca_secret_name()).await.unwrap();
    let new_ca = text(&ca_secret, "tls.crt");
    assert_eq!(generation_of(&ca_secret).as_deref(), Some("2"));
    let now = OffsetDateTime::now_utc();
    for name in [
        cluster_ref.node_tls_secret_name(),
        cluster_ref.operator_tls_secret_name(),
        "app-user-tls".to_owned(),
    ] {
        let secret = secrets.get(&name).await.unwrap();
        assert_eq!(generation_of(&secret).as_deref(), Some("2"), "{name}");
        assert_eq!(text(&secret, "ca.crt"), new_ca, "{name}");
        assert!(
            ca::verifies(&text(&secret, "tls.crt"), &new_ca, now),
            "{name}"
        );
    }
    let notes = common::event_notes(&client, &ns, "CARotation").await;
    for phase in ["TrustBoth", "Reissue", "DropOld", "complete"] {
        assert!(
            notes.iter().any(|n| n.contains(phase)),
            "no CARotation event for {phase}: {notes:?}"
        );
    }
    // The handled token starts nothing more.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ca_secret = secrets.get(&cluster_ref.ca_secret_name()).await.unwrap();
    assert_eq!(text(&ca_secret, "tls.crt"), new_ca);
    assert_eq!(generation_of(&ca_secret).as_deref(), Some("2"));
    common::delete_namespace(&client, &ns).await;
}
