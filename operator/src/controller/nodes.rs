//! Reaching the cluster's nodes over their admin API, shared by everything that asks nodes
//! something (membership, CA rotation proofs, ACL enforcement of users): which pods are worth
//! asking, where their admin API is (the pod's stable address behind the headless Service,
//! verified against its own name), and one connection with the operator's credentials bounded
//! by the admin timeout.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::{Api, Client, api::ListParams};

use super::{ReconcileError, membership::pod_ordinal};
use crate::{
    admin::{AdminClient, AdminCredentials, AdminError},
    builders::{ClusterRef, INSTANCE_LABEL},
};

/// A running node to ask something: its pod and where its admin API is.
#[derive(Clone, Debug)]
pub struct ProbeTarget {
    /// Pod name (for status, messages and events).
    pub pod: String,
    /// `host:port` of the node's gRPC server.
    pub address: String,
    /// Name to verify the node's certificate against (`None`: the host of `address`).
    pub server_name: Option<String>,
}

impl ProbeTarget {
    /// Pod `ordinal` of the cluster at its stable address (what the operator uses in Kubernetes).
    pub fn pod(cluster_ref: &ClusterRef, ordinal: u32) -> Self {
        Self {
            pod: cluster_ref.pod_name(ordinal),
            address: cluster_ref.pod_address(ordinal),
            server_name: None,
        }
    }

    /// A connected admin client; `timeout` bounds the connection and every call.
    pub async fn connect(
        &self,
        credentials: &AdminCredentials,
        timeout: Duration,
    ) -> Result<AdminClient, AdminError> {
        AdminClient::connect(
            &self.address,
            self.server_name.as_deref(),
            credentials,
            timeout,
        )
        .await
    }
}

/// Running (phase `Running`) and not being deleted: a node that may answer. Whether it answers
/// is for the caller to find out; a pod that is not running has no process to ask.
pub(crate) fn is_running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

/// The running pods of the cluster, as targets at their stable addresses.
pub(crate) async fn running_pods(
    client: &Client,
    cluster_ref: &ClusterRef,
) -> Result<Vec<ProbeTarget>, ReconcileError> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &cluster_ref.namespace);
    let selector = format!("{INSTANCE_LABEL}={}", cluster_ref.name);
    let list = pods.list(&ListParams::default().labels(&selector)).await?;
    let mut targets: Vec<(u32, ProbeTarget)> = list
        .items
        .iter()
        .filter(|pod| is_running(pod))
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            let ordinal = pod_ordinal(&cluster_ref.name, name)?;
            let target = ProbeTarget {
                pod: name.to_owned(),
                ..ProbeTarget::pod(cluster_ref, ordinal)
            };
            Some((ordinal, target))
        })
        .collect();
    targets.sort_by_key(|(ordinal, _)| *ordinal);
    Ok(targets.into_iter().map(|(_, target)| target).collect())
}
