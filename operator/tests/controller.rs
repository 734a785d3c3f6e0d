//! The controller, run in-process against a real API server (no kubelet: pods stay Pending):
//! objects with owner references, status with conditions, Degraded on a bad spec, finalizer on
//! deletion, and Lease-based leader election.

mod common;

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service},
    events::v1::Event,
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use proglog_operator::{
    ca::CertificateInfo,
    controller::{Attempt, LeaderElector, LeaseConfig},
    crd::{ClusterCondition, FINALIZER, PAUSE_ANNOTATION, ProgLogCluster},
};
use serde_json::json;

fn condition<'a>(cluster: &'a ProgLogCluster, type_: &str) -> Option<&'a ClusterCondition> {
    cluster
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

async fn get<K>(api: &Api<K>, name: &str) -> Option<K>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.ok().flatten()
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn cluster_becomes_objects_with_owner_refs_status_and_finalizer() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-apply").await;
    let _controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    let created = clusters
        .create(
            &PostParams::default(),
            &common::cluster(
                "demo",
                json!({"replicas": 3, "acl": {"rules": [{"subject": "app", "action": "produce"}]}}),
            ),
        )
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let sts = common::eventually("the StatefulSet", || get(&statefulsets, "demo")).await;
    let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, uid);
    assert_eq!(owner.controller, Some(true));
    let spec = sts.spec.unwrap();
    // A new cluster starts with pod 0 only; the others join after initialization.
    assert_eq!(spec.replicas, Some(1));
    assert_eq!(spec.service_name.as_deref(), Some("demo-headless"));

    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let headless =
        common::eventually("the headless Service", || get(&services, "demo-headless")).await;
    assert_eq!(
        headless.spec.unwrap().publish_not_ready_addresses,
        Some(true)
    );
    assert!(get(&services, "demo").await.is_some());
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let config = get(&config_maps, "demo-config").await.expect("ConfigMap");
    assert!(config.data.unwrap()["acl.csv"].contains("app, *, produce"));
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &ns);
    assert!(get(&pdbs, "demo").await.is_some());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let node_tls = get(&secrets, "demo-node-tls")
        .await
        .expect("node TLS Secret");
    let cert = String::from_utf8(node_tls.data.unwrap()["tls.crt"].0.clone()).unwrap();
    let info = CertificateInfo::parse(&cert).unwrap();
    assert!(
        info.sans
            .contains(&format!("demo-2.demo-headless.{ns}.svc.cluster.local"))
    );
    assert!(get(&secrets, "demo-operator-tls").await.is_some());
    assert!(get(&secrets, "demo-ca").await.is_some());

    let cluster = common::eventually("a status with conditions", || {
        let clusters = clusters.clone();
        async move {
            let cluster = clusters.get("demo").await.ok()?;
            condition(&cluster, "Progressing")
                .is_some()
                .then_some(cluster)
        }
    })
    .await;
    let status = cluster.status.clone().unwrap();
    assert_eq!(status.observed_generation, cluster.metadata.generation);
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert!(status.ca_expiry.is_some() && status.certificate_expiry.is_some());
    assert_eq!(condition(&cluster, "Available").unwrap().status, "False");
    assert_eq!(condition(&cluster, "Degraded").unwrap().status, "False");
    assert!(
        cluster
            .metadata
            .finalizers
            .unwrap()
            .contains(&FINALIZER.to_owned())
    );

    // Significant steps are recorded as events on the cluster.
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let reasons = common::eventually("events about the cluster", || {
        let events = events.clone();
        async move {
            let reasons: Vec<String> = events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("demo"))
                .filter_map(|e| e.reason)
                .collect();
            (reasons.iter().any(|r| r == "Scaled")).then_some(reasons)
        }
    })
    .await;
    assert!(
        reasons.iter().any(|r| r == "CertificateIssued"),
        "{reasons:?}"
    );

    // Deleting runs the finalizer, then the object goes away.
    clusters
        .delete("demo", &DeleteParams::default())
        .await
        .unwrap();
    common::eventually("the ProgLogCluster to be deleted", || {
        let clusters = clusters.clone();
        async move { clusters.get_opt("demo").await.ok()?.is_none().then_some(()) }
    })
    .await;
    common::delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn bad_spec_gets_a_degraded_condition_not_a_crash() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-bad").await;
    let controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(
            &PostParams::default(),
            &common::cluster("broken", json!({"tls": {"caSecretName": "no-such-secret"}})),
        )
        .await
        .unwrap();
    let degraded = common::eventually("a Degraded condition", || {
        let clusters = clusters.clone();
        async move {
            let cluster = clusters.get("broken").await.ok()?;
            let degraded = condition(&cluster, "Degraded")?.clone();
            (degraded.status == "True").then_some(degraded)
        }
    })
    .await;
    assert_eq!(degraded.reason, "CASecretInvalid");
    assert!(
        degraded.message.contains("no-such-secret"),
        "{}",
        degraded.message
    );
    assert!(
        degraded.message.contains("not found"),
        "{}",
        degraded.message
    );
    // Nothing that needs the certificates was created, and the controller is still running.
    let statefulsets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    assert!(get(&statefulsets, "broken").await.is_none());
    assert!(
        !controller.0.is_finished(),
        "the controller must survive a bad spec"
    );

    // Fixing the spec (pointing at a real CA) recovers.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let cluster_ref = proglog_operator::builders::ClusterRef {
        name: "broken".to_owned(),
        namespace: ns.clone(),
        owner: Default::default(),
    };
    let ca =
        proglog_operator::ca::generate_ca(&cluster_ref, time::OffsetDateTime::now_utc()).unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "no-such-secret"},
        "type": "kubernetes.io/tls",
        "stringData": {"tls.crt": ca.cert_pem, "tls.key": ca.key_pem},
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    common::eventually("the StatefulSet after the fix", || {
        get(&statefulsets, "broken")
    })
    .await;
    common::delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn only_one_replica_holds_the_lease() {
    let client = common::client().await;
    let ns = common::namespace(&client, "plc-lease").await;
    let config = |identity: &str| LeaseConfig {
        name: "test-leader".to_owned(),
        ..LeaseConfig::new(ns.clone(), identity)
    };
    let first = LeaderElector::new(client.clone(), config("replica-a"));
    let second = LeaderElector::new(client.clone(), config("replica-b"));
    assert_eq!(first.try_acquire().await.unwrap(), Attempt::Acquired);
    assert_eq!(
        second.try_acquire().await.unwrap(),
        Attempt::HeldBy("replica-a".to_owned())
    );
    // Renewal by the holder keeps it.
    assert_eq!(first.try_acquire().await.unwrap(), Attempt::Acquired);
    common::delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn volumes_follow_the_retention_policy_on_delete() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-volumes").await;
    let _controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    for (name, retention) in [("keep", "Retain"), ("drop", "Delete")] {
        let spec =
            json!({"replicas": 1, "storage": {"size": "1Gi", "retentionOnDelete": retention}});
        clusters
            .create(&PostParams::default(), &common::cluster(name, spec))
            .await
            .unwrap();
    }
    // The StatefulSet controller (kube-controller-manager) creates each pod's claim.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    for claim in ["data-keep-0", "data-drop-0"] {
        common::eventually(&format!("PVC {claim}"), || get(&claims, claim)).await;
    }
    for name in ["keep", "drop"] {
        clusters
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    for name in ["keep", "drop"] {
        common::eventually(&format!("ProgLogCluster {name} to be deleted"), || {
            let clusters = clusters.clone();
            async move { clusters.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await;
    }
    common::eventually("the Delete-policy claim to be deleted", || {
        let claims = claims.clone();
        async move {
            match claims.get_opt("data-drop-0").await.ok()? {
                None => Some(()),
                Some(claim) => claim.metadata.deletion_timestamp.map(|_| ()),
            }
        }
    })
    .await;
    let kept = get(&claims, "data-keep-0")
        .await
        .expect("Retain keeps the claim");
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "Retain keeps the claim"
    );
    common::delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn a_paused_cluster_is_left_alone_until_the_annotation_goes() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-pause").await;
    let _controller = common::start_controller(&client, &ns);
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    clusters
        .create(
            &PostParams::default(),
            &common::cluster("paused", json!({"replicas": 1})),
        )
        .await
        .unwrap();
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    common::eventually("the client Service", || get(&services, "paused")).await;

    let merge = |patch: serde_json::Value| {
        let clusters = clusters.clone();
        async move {
            clusters
                .patch("paused", &PatchParams::default(), &Patch::Merge(patch))
                .await
                .unwrap()
        }
    };
    merge(json!({"metadata": {"annotations": {PAUSE_ANNOTATION: "true"}}})).await;
    // A spec change while paused: the operator must see it and leave the Service alone.
    let changed =
        merge(json!({"spec": {"service": {"annotations": {"example.com/lb": "internal"}}}})).await;
    let generation = changed.metadata.generation;
    let paused = common::eventually("the paused status at the new generation", || {
        let clusters = clusters.clone();
        async move {
            let cluster = clusters.get("paused").await.ok()?;
            let seen = condition(&cluster, "ReconciliationPaused")
                .is_some_and(|c| c.status == "True" && c.observed_generation == generation);
            seen.then_some(cluster)
        }
    })
    .await;
    assert_eq!(paused.status.unwrap().phase.as_deref(), Some("Paused"));
    let service = get(&services, "paused").await.unwrap();
    assert!(
        !service
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("example.com/lb"),
        "a paused cluster's Service changed"
    );

    merge(json!({"metadata": {"annotations": {PAUSE_ANNOTATION: null}}})).await;
    common::eventually("the Service annotation once resumed", || {
        let services = services.clone();
        async move {
            let service = services.get("paused").await.ok()?;
            service.metadata.annotations?.get("example.com/lb").cloned()
        }
    })
    .await;
    let resumed = common::eventually("the paused condition gone", || {
        let clusters = clusters.clone();
        async move {
            let cluster = clusters.get("paused").await.ok()?;
            let gone = condition(&cluster, "ReconciliationPaused").is_none()
                && cluster.status.as_ref()?.phase.as_deref() != Some("Paused");
            gone.then_some(cluster)
        }
    })
    .await;
    assert!(condition(&resumed, "Progressing").is_some());
    common::delete_namespace(&client, &ns).await;
}
