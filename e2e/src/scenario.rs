//! The frame of every scenario against running pods: a namespace with a user-supplied CA (so
//! the test issues its own client certificate) and the operator; helpers to create clusters,
//! read their status and wait for them; and [`Scenario::finish`], which dumps diagnostics when
//! the scenario failed or overran its deadline.

use std::{
    future::Future,
    sync::{Arc, Mutex},
};

use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Namespace, Pod, Secret},
};
use kube::{
    Api, Client,
    api::{DynamicObject, ListParams, Patch, PatchParams, PostParams},
    core::{ApiResource, GroupVersionKind},
};
use serde_json::{Value, json};
use tokio::time::Instant;

pub use crate::cordon::{Cordon, cordon_all_nodes};
pub use crate::status::{ClusterStatus, Condition, Member, pod_of_address};

use crate::{
    E2eError,
    cordon::uncordon_leftovers,
    crd, diagnostics, env,
    load::Ack,
    log_client::{self, PemPair},
    namespace::{self, TestNamespace},
    operator::Operator,
    port_forward::SharedForward,
    verify::{self, Verified},
    wait::{Check, until},
};

/// The client identity the test's ACL rules allow.
pub const CLIENT_IDENTITY: &str = "proglog-e2e";
/// The Secret holding the test's CA.
pub const CA_SECRET: &str = "e2e-ca";
/// The nodes' gRPC port (client Service and pods).
pub const GRPC_PORT: u16 = 8400;
/// Label of every object of a cluster (its value is the cluster name).
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// The ProgLogCluster resource.
pub fn cluster_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "proglog.dev",
        "v1alpha1",
        "ProgLogCluster",
    ))
}

/// A ProgLogCluster object named `name` with `spec`.
pub fn cluster_object(name: &str, spec: Value) -> Result<DynamicObject, E2eError> {
    serde_json::from_value(json!({
        "apiVersion": "proglog.dev/v1alpha1",
        "kind": "ProgLogCluster",
        "metadata": { "name": name },
        "spec": spec,
    }))
    .map_err(|err| E2eError::Unexpected(format!("bad ProgLogCluster object: {err}")))
}

/// ACL rules letting [`CLIENT_IDENTITY`] produce and consume.
pub fn acl_rules() -> Value {
    json!({ "rules": [
        { "subject": CLIENT_IDENTITY, "action": "produce" },
        { "subject": CLIENT_IDENTITY, "action": "consume" },
    ]})
}

/// The spec of a cluster of `replicas` running the node image under test with the test's CA.
pub fn pods_spec(replicas: i32) -> Value {
    json!({
        "replicas": replicas,
        "image": env::node_image(),
        "imagePullPolicy": "IfNotPresent",
        "storage": { "size": "1Gi" },
        // A CPU request makes the operator size each node's worker threads from it through the
        // downward API (rounded up: one), so every pod test runs that path.
        "resources": { "requests": { "cpu": "100m" } },
        "tls": { "caSecretName": CA_SECRET },
        "acl": acl_rules(),
    })
}

/// The StatefulSet's pod names of a cluster with `replicas` pods (`NAME-0`, `NAME-1`, ...).
pub fn pod_names(cluster: &str, replicas: usize) -> Vec<String> {
    (0..replicas).map(|i| format!("{cluster}-{i}")).collect()
}

/// Fails unless pods can run: a pod scenario run without pods must fail, never pass.
pub fn require_pods() -> Result<(), E2eError> {
    if env::pods_can_run() {
        Ok(())
    } else {
        Err(E2eError::Unexpected(
            "this scenario needs a cluster where pods run; it is run by scripts/e2e-pods.sh \
             (make e2e-pods), which sets PROGLOG_E2E_PODS=1, PROGLOG_E2E_OPERATOR=in-cluster \
             and PROGLOG_E2E_NODE_IMAGE"
                .to_owned(),
        ))
    }
}

/// One scenario's namespace, CA, client identity and operator.
pub struct Scenario {
    /// What the scenario is called (namespace prefix and messages).
    pub name: String,
    /// API client.
    pub client: Client,
    /// The namespace's name.
    pub ns: String,
    /// The test's CA (also in the Secret [`CA_SECRET`]).
    pub ca: PemPair,
    /// A client certificate for [`CLIENT_IDENTITY`].
    pub identity: PemPair,
    namespace: Option<TestNamespace>,
    operator: Mutex<Operator>,
    clusters: Mutex<Vec<String>>,
    started: Instant,
}

impl std::fmt::Debug for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scenario")
            .field("name", &self.name)
            .field("ns", &self.ns)
            .finish_non_exhaustive()
    }
}

impl Scenario {
    /// Checks that pods can run, installs the CRD, creates the namespace and the CA Secret,
    /// and starts (or relies on) the operator.
    pub async fn start(name: &str) -> Result<Self, E2eError> {
        require_pods()?;
        let started = Instant::now();
        let client = namespace::client().await?;
        uncordon_leftovers(&client).await?;
        for path in env::crd_paths() {
            crd::install(&client, &path).await?;
        }
        let namespace = TestNamespace::create(&client, name).await?;
        let ns = namespace.name.clone();
        eprintln!("[{name}] namespace {ns}");
        let operator = Operator::start(&ns)?;
        let ca = log_client::new_ca(&format!("proglog-e2e-ca {ns}"))?;
        let identity = log_client::issue_client_certificate(&ca, CLIENT_IDENTITY)?;
        let ca_secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": CA_SECRET },
            "type": "kubernetes.io/tls",
            "stringData": { "tls.crt": ca.cert_pem, "tls.key": ca.key_pem },
        }))
        .map_err(|err| E2eError::Unexpected(format!("CA Secret: {err}")))?;
        Api::<Secret>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &ca_secret)
            .await?;
        Ok(Self {
            name: name.to_owned(),
            client,
            ns,
            ca,
            identity,
            namespace: Some(namespace),
            operator: Mutex::new(operator),
            clusters: Mutex::new(Vec::new()),
            started,
        })
    }

    /// Prints a progress line with the time since the scenario started.
    pub fn log(&self, message: impl AsRef<str>) {
        eprintln!(
            "[{} +{:>6.1}s] {}",
            self.name,
            self.started.elapsed().as_secs_f64(),
            message.as_ref()
        );
    }

    /// ProgLogClusters of the namespace.
    pub fn clusters(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), &self.ns, &cluster_resource())
    }

    /// Pods of the namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Fails if a locally started operator exited.
    pub fn operator_alive(&self) -> Result<(), E2eError> {
        self.operator
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ensure_running()
    }

    /// Creates ProgLogCluster `name` with `spec`; it is included in the diagnostics.
    pub async fn create_cluster(&self, name: &str, spec: Value) -> Result<DynamicObject, E2eError> {
        self.clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.to_owned());
        Ok(self
            .clusters()
            .create(&PostParams::default(), &cluster_object(name, spec)?)
            .await?)
    }

    /// Merge-patches the spec of cluster `name`.
    pub async fn patch_spec(&self, name: &str, spec: Value) -> Result<(), E2eError> {
        self.clusters()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await?;
        Ok(())
    }

    /// The generation and status of cluster `name`.
    pub async fn status(&self, name: &str) -> Result<(Option<i64>, ClusterStatus), E2eError> {
        let cluster = self.clusters().get(name).await?;
        let status = match cluster.data.get("status") {
            Some(value) if !value.is_null() => serde_json::from_value(value.clone())
                .map_err(|err| E2eError::Unexpected(format!("unreadable status: {err}")))?,
            _ => ClusterStatus::default(),
        };
        Ok((cluster.metadata.generation, status))
    }

    /// Pods of cluster `name` (by label), with whether each is Ready and not terminating.
    pub async fn cluster_pods(&self, name: &str) -> Result<Vec<(String, bool)>, E2eError> {
        let pods = self
            .pods()
            .list(&ListParams::default().labels(&format!("{INSTANCE_LABEL}={name}")))
            .await?;
        let mut out: Vec<(String, bool)> = pods
            .items
            .iter()
            .map(|pod| {
                let ready = pod.metadata.deletion_timestamp.is_none() && is_ready(pod);
                (pod.metadata.name.clone().unwrap_or_default(), ready)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Waits until cluster `name` is healthy at `replicas`: the status describes the current
    /// generation, phase Running, Available True, Progressing and Degraded False, `replicas`
    /// voters (the pods `NAME-0..replicas`), no learner, a leader; exactly those pods exist and
    /// are Ready; the StatefulSet has `replicas`.
    pub async fn wait_healthy(
        &self,
        name: &str,
        replicas: usize,
    ) -> Result<ClusterStatus, E2eError> {
        let statefulsets: Api<StatefulSet> = Api::namespaced(self.client.clone(), &self.ns);
        let want_pods: Vec<String> = (0..replicas).map(|i| format!("{name}-{i}")).collect();
        until(
            &format!("cluster {name} to be healthy with {replicas} voters"),
            env::pod_timeout(),
            || async {
                self.operator_alive()?;
                let (generation, status) = self.status(name).await?;
                let pods = self.cluster_pods(name).await?;
                let sts_replicas = statefulsets
                    .get_opt(name)
                    .await?
                    .and_then(|s| s.spec)
                    .and_then(|s| s.replicas);
                let mut voter_pods: Vec<String> = status
                    .voters
                    .iter()
                    .map(|m| pod_of_address(&m.address).to_owned())
                    .collect();
                voter_pods.sort();
                let mut sorted_want = want_pods.clone();
                sorted_want.sort();
                let pod_names: Vec<String> = pods.iter().map(|(n, _)| n.clone()).collect();
                let healthy = status.observed_generation.is_some()
                    && status.observed_generation == generation
                    && status.phase.as_deref() == Some("Running")
                    && status.condition_is("Available", "True")
                    && status.condition_is("Progressing", "False")
                    && status.condition_is("Degraded", "False")
                    && status.ready_replicas == i32::try_from(replicas).unwrap_or(-1)
                    && status.leader.is_some()
                    && status.learners.is_empty()
                    && voter_pods == sorted_want
                    && status.healthy_member_pods().as_ref() == Some(&sorted_want)
                    && pod_names == sorted_want
                    && pods.iter().all(|(_, ready)| *ready)
                    && sts_replicas == i32::try_from(replicas).ok();
                Ok(if healthy {
                    Check::Done(status)
                } else {
                    Check::NotYet(format!(
                        "generation {generation:?}; {}; pods {pods:?}; StatefulSet replicas {sts_replicas:?}",
                        status.brief()
                    ))
                })
            },
        )
        .await
    }

    /// Reads every pod's whole log (each through its own port-forward, with this scenario's
    /// client identity) and checks that each acknowledged record is there at its offset and all
    /// pods agree.
    pub async fn verify_acks(&self, pods: &[String], acks: &[Ack]) -> Result<Verified, E2eError> {
        verify::verify_everywhere(
            &self.ns,
            pods,
            &self.ca.cert_pem,
            &self.identity,
            acks,
            env::pod_timeout(),
        )
        .await
    }

    /// A way in to the client Service of cluster `name` (its ClusterIP when this host reaches
    /// it, else a port-forward restarted when its pod goes away; logged).
    pub async fn service_forward(&self, name: &str) -> Result<Arc<SharedForward>, E2eError> {
        let forward = SharedForward::start(&self.ns, &format!("service/{name}"), GRPC_PORT).await?;
        self.log(format!(
            "a client reaches the cluster through {}",
            forward.describe().await
        ));
        Ok(Arc::new(forward))
    }

    /// Runs `body` within the scenario deadline (`PROGLOG_E2E_SCENARIO_TIMEOUT_SECS`).
    pub async fn within_deadline<T>(
        &self,
        body: impl Future<Output = anyhow::Result<T>>,
    ) -> anyhow::Result<T> {
        let deadline = env::scenario_timeout();
        match tokio::time::timeout(deadline, body).await {
            Ok(result) => result,
            Err(_) => Err(anyhow::anyhow!(
                "scenario {} overran its deadline of {deadline:?} (PROGLOG_E2E_SCENARIO_TIMEOUT_SECS)",
                self.name
            )),
        }
    }

    /// Ends the scenario: on failure dumps diagnostics (pods, events, status, logs, operator
    /// log); then deletes the namespace (unless `PROGLOG_E2E_KEEP_NAMESPACE=1` and it failed)
    /// and waits for it to go, so the next scenario has the machine to itself.
    pub async fn finish(mut self, result: anyhow::Result<()>) -> anyhow::Result<()> {
        let wall = self.started.elapsed();
        if let Err(err) = &result {
            eprintln!("[{}] FAILED after {wall:?}: {err:#}", self.name);
            let clusters = self
                .clusters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let names: Vec<&str> = clusters.iter().map(String::as_str).collect();
            let local_log = if env::operator_in_cluster() {
                None
            } else {
                Some(
                    self.operator
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .log_tail(),
                )
            };
            diagnostics::dump(&self.ns, &names, local_log).await;
        } else {
            eprintln!("[{}] PASSED in {wall:?}", self.name);
        }
        let keep = result.is_err() && env::keep_failed_namespace();
        if let Some(namespace) = self.namespace.take() {
            if keep {
                eprintln!(
                    "[{}] keeping namespace {} (PROGLOG_E2E_KEEP_NAMESPACE=1)",
                    self.name, self.ns
                );
            } else if let Err(err) = namespace.delete().await {
                // Never hide the scenario's own outcome behind a cleanup failure.
                eprintln!(
                    "[{}] warning: cannot delete namespace {}: {err}",
                    self.name, self.ns
                );
            } else {
                let namespaces = Api::<Namespace>::all(self.client.clone());
                let gone = until(
                    &format!("namespace {} to be deleted", self.ns),
                    env::pod_timeout(),
                    || async {
                        Ok(match namespaces.get_opt(&self.ns).await? {
                            None => Check::Done(()),
                            Some(_) => Check::NotYet("still terminating".to_owned()),
                        })
                    },
                )
                .await;
                if let Err(err) = gone {
                    eprintln!("[{}] warning: {err}", self.name);
                }
            }
        }
        result
    }
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pods_spec_uses_the_test_ca_and_acl() {
        let spec = pods_spec(3);
        assert_eq!(spec["replicas"], 3);
        assert_eq!(spec["tls"]["caSecretName"], CA_SECRET);
        assert_eq!(spec["acl"]["rules"][0]["subject"], CLIENT_IDENTITY);
    }
}
