//! The kube-runtime controller: watches ProgLogClusters (and the objects they own), reconciles
//! each into Services, ConfigMap, Secrets, StatefulSet and PodDisruptionBudget by server-side
//! apply, drives Raft membership one planner step at a time, rolls pods onto a new template one
//! at a time (`rolling`), and writes the status.
//! [`run`] is what the `proglog-operator` binary and the integration tests call.

mod apply;
pub mod ca_rotation;
mod certificates;
mod events;
mod leader;
mod member_failures;
pub mod membership;
pub mod metrics;
pub mod nodes;
mod owned;
mod reconcile;
pub mod replacement;
mod rolling;
mod status;
mod user_access;
pub mod users;
mod validation;
mod volumes;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Service},
    policy::v1::PodDisruptionBudget,
};
use kube::{
    Api, Client,
    runtime::{
        controller::{Action, Controller},
        events::{Recorder, Reporter},
        reflector::ObjectRef,
        watcher,
    },
};

pub use events::membership_event;
pub use leader::{Attempt, LeaderElector, LeaseConfig};
pub use metrics::Metrics;

use crate::{
    admin::AdminError, builders::BuildError, ca::CaError, crd::ProgLogCluster,
    user_crd::ProgLogUser,
};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "proglog-operator";

/// How the controller runs.
#[derive(Clone, Debug)]
pub struct OperatorConfig {
    /// Watch only these namespaces (empty: every namespace).
    pub namespaces: Vec<String>,
    /// Run only while holding this Lease (`None`: no leader election, e.g. in tests).
    pub leader_election: Option<LeaseConfig>,
    /// Timeout of each admin API call to a node.
    pub admin_timeout: Duration,
    /// Requeue interval of a steady cluster (membership and certificates are re-checked).
    pub steady_requeue: Duration,
    /// Requeue interval while a membership change is in progress.
    pub progress_requeue: Duration,
    /// Identity of this replica in events (its pod name).
    pub instance: Option<String>,
    /// Metrics shared with the HTTP server.
    pub metrics: Arc<Metrics>,
}

impl Default for OperatorConfig {
    fn default() -> Self {
        Self {
            namespaces: Vec::new(),
            leader_election: None,
            admin_timeout: Duration::from_secs(5),
            steady_requeue: Duration::from_secs(60),
            progress_requeue: Duration::from_secs(5),
            instance: None,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// Errors of one reconciliation. Each becomes a Degraded condition and a Warning event.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Building resources failed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The Kubernetes API refused a request.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// Certificates could not be generated or parsed.
    #[error("certificates: {0}")]
    Ca(#[from] CaError),
    /// A Secret the spec points at is missing or malformed.
    #[error("Secret {name}: {reason}")]
    InvalidSecret {
        /// Secret name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A node's admin API failed while executing a membership step.
    #[error("membership change: {0}")]
    Admin(#[from] AdminError),
    /// A node needed for a membership step is not reachable.
    #[error("node unavailable: {0}")]
    NodeUnavailable(String),
    /// The finalizer machinery failed.
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl ReconcileError {
    /// The condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Build(_) => "InvalidSpec",
            ReconcileError::Kube(_) => "KubernetesApiError",
            ReconcileError::Ca(_) => "CertificateError",
            ReconcileError::InvalidSecret { .. } => "CASecretInvalid",
            ReconcileError::Admin(_) => "MembershipChangeFailed",
            ReconcileError::NodeUnavailable(_) => "NodeUnavailable",
            ReconcileError::Finalizer(_) => "FinalizerFailed",
        }
    }
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// The ProgLogCluster or ProgLogUser CRD is not installed (or not served yet).
    #[error("a ProgLog CRD (ProgLogCluster, ProgLogUser) is not installed: {0}")]
    CrdMissing(kube::Error),
    /// Leadership was lost; the process should exit and restart as a follower.
    #[error("lost the leader Lease")]
    LostLeadership,
}

/// Shared state of every reconciliation.
pub(crate) struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub config: OperatorConfig,
    /// Consecutive failures per object, for exponential backoff in `error_policy`.
    pub failures: Mutex<HashMap<ObjectRef<ProgLogCluster>, u32>>,
}

impl Context {
    /// The context of a controller (or of one reconciliation in tests) using `client`.
    pub(crate) fn new(client: Client, config: OperatorConfig) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_owned(),
            instance: config.instance.clone(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Backoff after `failures` consecutive failures: 5 s doubling to 5 minutes, so a broken
/// cluster never hot-loops the API server.
pub fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    Duration::from_secs(5 * (1 << exponent)).min(Duration::from_secs(300))
}

fn error_policy(cluster: Arc<ProgLogCluster>, error: &ReconcileError, ctx: Arc<Context>) -> Action {
    let key = ObjectRef::from(cluster.as_ref());
    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = map.entry(key).or_insert(0);
        *count += 1;
        *count
    };
    let delay = backoff(failures);
    tracing::warn!(cluster = %crate::builders::display_name(&cluster), %error, failures, ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn user_error_policy(user: Arc<ProgLogUser>, error: &ReconcileError, _: Arc<Context>) -> Action {
    tracing::warn!(user = %user.metadata.name.as_deref().unwrap_or_default(), %error, "user reconcile failed");
    Action::requeue(backoff(2))
}

/// Runs the controller until shutdown (SIGTERM/ctrl-c) or, with leader election, until the
/// Lease is lost. Waits for the Lease first when leader election is configured.
pub async fn run(client: Client, config: OperatorConfig) -> Result<(), ControllerError> {
    // One watch scope per namespace, or one cluster-wide scope.
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    for scope in &scopes {
        // Fail fast with a clear message when a CRD is missing.
        api::<ProgLogCluster>(&client, scope.as_deref())
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(ControllerError::CrdMissing)?;
        api::<ProgLogUser>(&client, scope.as_deref())
            .list(&kube::api::ListParams::default().limit(1))
            .await
            .map_err(ControllerError::CrdMissing)?;
    }

    let elector = config
        .leader_election
        .clone()
        .map(|lease| LeaderElector::new(client.clone(), lease));
    if let Some(elector) = &elector {
        elector.acquire().await;
    }
    config.metrics.set_leader(true);

    let metrics = config.metrics.clone();
    let ctx = Arc::new(Context::new(client.clone(), config));
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let holder = elector.map(|elector| {
        tokio::spawn(async move {
            elector.hold().await;
            let _ = lost_tx.send(());
        })
    });
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lost_flag = lost.clone();
    // Without leader election the sender is dropped at once and this waits forever.
    let shutdown = async move {
        if lost_rx.await.is_ok() {
            lost_flag.store(true, std::sync::atomic::Ordering::SeqCst);
        } else {
            std::future::pending::<()>().await;
        }
    };

    let shutdown = shutdown.boxed().shared();
    let controllers = scopes.iter().map(|scope| {
        let ns = scope.as_deref();
        Controller::new(
            api::<ProgLogCluster>(&client, ns),
            watcher::Config::default(),
        )
        .owns(api::<StatefulSet>(&client, ns), watcher::Config::default())
        .owns(api::<Service>(&client, ns), watcher::Config::default())
        .owns(api::<ConfigMap>(&client, ns), watcher::Config::default())
        .owns(
            api::<PodDisruptionBudget>(&client, ns),
            watcher::Config::default(),
        )
        // A user's rules live in its cluster's ACL: any change of a user reconciles the cluster.
        .watches(
            api::<ProgLogUser>(&client, ns),
            watcher::Config::default(),
            |user| {
                let namespace = user.metadata.namespace.clone()?;
                Some(ObjectRef::<ProgLogCluster>::new(&user.spec.cluster).within(&namespace))
            },
        )
        .shutdown_on_signal()
        .graceful_shutdown_on(shutdown.clone())
        .run(reconcile::reconcile, error_policy, ctx.clone())
        .boxed()
    });
    let user_controllers = scopes.iter().map(|scope| {
        Controller::new(
            api::<ProgLogUser>(&client, scope.as_deref()),
            watcher::Config::default(),
        )
        .shutdown_on_signal()
        .graceful_shutdown_on(shutdown.clone())
        .run(users::reconcile, user_error_policy, ctx.clone())
        .map(|result| result.map(|_| ()).map_err(|e| e.to_string()))
        .boxed()
    });
    let controllers = controllers.map(|stream| {
        stream
            .map(|result| result.map(|_| ()).map_err(|e| e.to_string()))
            .boxed()
    });
    futures::stream::select_all(controllers.chain(user_controllers))
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "controller event");
            }
        })
        .await;
    if let Some(holder) = holder {
        holder.abort();
    }
    metrics.set_leader(false);
    if lost.load(std::sync::atomic::Ordering::SeqCst) {
        metrics.set_healthy(false);
        return Err(ControllerError::LostLeadership);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_secs(5));
        assert_eq!(backoff(2), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(40));
        assert_eq!(backoff(50), Duration::from_secs(300));
        assert!(
            backoff(0) >= Duration::from_secs(5),
            "never zero: no hot loop"
        );
    }
}
