//! Helpers of the integration tests against a real API server (`KUBECONFIG` from the
//! environment, e.g. under `scripts/control-plane/with-control-plane.sh`).

#![allow(dead_code)] // each test binary uses a different subset

pub mod node_process;

use std::{future::Future, time::Duration};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, CustomResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
};
use proglog_operator::{
    controller::{self, OperatorConfig},
    crd::ProgLogCluster,
    user_crd::ProgLogUser,
};

/// Generous bound for anything the API server or controller does; never a performance assertion.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// A client for `KUBECONFIG`; fails clearly when it is not set.
pub async fn client() -> Client {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: run these tests under scripts/control-plane/with-control-plane.sh \
         (make test-operator)"
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default().await.expect("client from KUBECONFIG")
}

/// Polls `check` until it returns `Some`, panicking with `what` after [`TIMEOUT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Applies the generated CRD and waits until it is Established.
pub async fn install_crd(client: &Client) {
    install_one(client, ProgLogCluster::crd()).await;
    install_one(client, ProgLogUser::crd()).await;
    // Discovery may lag Established slightly: wait until the resources are listable.
    let clusters: Api<ProgLogCluster> = Api::all(client.clone());
    let users: Api<ProgLogUser> = Api::all(client.clone());
    eventually("ProgLogClusters and ProgLogUsers to be served", || {
        let (clusters, users) = (clusters.clone(), users.clone());
        async move {
            clusters.list(&Default::default()).await.ok()?;
            users.list(&Default::default()).await.ok().map(|_| ())
        }
    })
    .await;
}

/// Applies one CRD and waits until it is Established.
async fn install_one(client: &Client, crd: CustomResourceDefinition) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let name = crd.metadata.name.clone().expect("CRD name");
    crds.patch(
        &name,
        &PatchParams::apply("proglog-operator-tests").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("the API server accepts the CRD (structural schema)");
    eventually("the CRD to be Established", || {
        let crds = crds.clone();
        let name = name.clone();
        async move {
            let crd = crds.get(&name).await.ok()?;
            let established = crd
                .status?
                .conditions?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(())
        }
    })
    .await;
}

/// A fresh namespace for one test.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    let name = format!("{prefix}-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
    }))
    .expect("namespace object");
    match namespaces.create(&PostParams::default(), &ns).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating namespace {name}: {e}"),
    }
    // The ServiceAccount controller must create "default" before pods/objects referencing it
    // matter; nothing here needs it, so no wait.
    name
}

/// Deletes a namespace (best effort; there is no namespace controller finalizing it without
/// kube-controller-manager, which the local control plane runs).
pub async fn delete_namespace(client: &Client, name: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete(name, &DeleteParams::default()).await;
}

/// The notes of the events in `namespace` with reason `reason` (events.k8s.io).
pub async fn event_notes(client: &Client, namespace: &str, reason: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> =
        Api::namespaced(client.clone(), namespace);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .filter_map(|e| e.note)
        .collect()
}

/// A ProgLogCluster from a JSON spec.
pub fn cluster(name: &str, spec: serde_json::Value) -> ProgLogCluster {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "proglog.dev/v1alpha1",
        "kind": "ProgLogCluster",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("ProgLogCluster object")
}

/// Runs the controller for one namespace in this process; aborted when dropped.
pub struct RunningController(pub tokio::task::JoinHandle<()>);

impl Drop for RunningController {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub fn start_controller(client: &Client, namespace: &str) -> RunningController {
    let config = OperatorConfig {
        namespaces: vec![namespace.to_owned()],
        progress_requeue: Duration::from_secs(1),
        admin_timeout: Duration::from_secs(1),
        ..OperatorConfig::default()
    };
    let client = client.clone();
    RunningController(tokio::spawn(async move {
        if let Err(error) = controller::run(client, config).await {
            panic!("controller stopped: {error}");
        }
    }))
}
