//! Observes the cluster for the planner (pods, each node's identity, the Raft membership) over
//! the nodes' admin API, and executes the planner's membership steps. [`observe_nodes`] and
//! [`Observation::execute`] take node addresses rather than Kubernetes objects, so the operator's
//! tests drive real `proglog-node` processes with exactly this code.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

use super::{
    Context, ReconcileError,
    nodes::{ProbeTarget, is_running},
};
use crate::{
    admin::{AdminClient, AdminCredentials},
    builders::ClusterRef,
    planner::{ObservedMembership, ObservedPod, Step, ordinal_of},
};

/// What the operator saw this pass.
#[derive(Debug, Default)]
pub struct Observation {
    /// Pods with their node identity (when their admin API answered).
    pub pods: Vec<ObservedPod>,
    /// Ready pods.
    pub ready: i32,
    /// Ordinals of the Ready pods.
    pub ready_ordinals: Vec<u32>,
    /// Membership from the leader (or any node that knows one).
    pub membership: Option<ObservedMembership>,
    /// `membership` is the leader's own answer (only the leader knows every member's lag).
    pub reported_by_leader: bool,
    /// Connected admin clients by ordinal.
    clients: BTreeMap<u32, AdminClient>,
}

/// The ordinal in a StatefulSet pod name `NAME-N`.
pub(crate) fn pod_ordinal(cluster_name: &str, pod_name: &str) -> Option<u32> {
    pod_name
        .strip_prefix(cluster_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// One pod of the StatefulSet as the observation needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodView {
    /// Its ordinal.
    pub ordinal: u32,
    /// Running (and not being deleted): worth asking over the admin API.
    pub running: bool,
    /// Ready.
    pub ready: bool,
}

/// Where the admin API of the pod with an ordinal is: its address and the name to verify its
/// certificate against (`None`: the address's host).
pub type Endpoint = (String, Option<String>);

/// Asks every running pod for its identity, then the membership from the nodes with Raft state.
pub(crate) async fn observe(
    ctx: &Context,
    cluster_ref: &ClusterRef,
    credentials: &AdminCredentials,
    pods: &[Pod],
) -> Observation {
    let views: Vec<PodView> = pods
        .iter()
        .filter_map(|pod| {
            let name = pod.metadata.name.as_deref()?;
            Some(PodView {
                ordinal: pod_ordinal(&cluster_ref.name, name)?,
                running: is_running(pod),
                ready: is_ready(pod),
            })
        })
        .collect();
    let endpoint = |ordinal| {
        let target = ProbeTarget::pod(cluster_ref, ordinal);
        (target.address, target.server_name)
    };
    observe_nodes(&views, endpoint, credentials, ctx.config.admin_timeout).await
}

/// `observe` over pods whose admin APIs are at `endpoint(ordinal)`.
pub async fn observe_nodes(
    pods: &[PodView],
    endpoint: impl Fn(u32) -> Endpoint,
    credentials: &AdminCredentials,
    admin_timeout: std::time::Duration,
) -> Observation {
    let mut observation = Observation::default();
    let mut running = Vec::new();
    for pod in pods {
        if pod.ready {
            observation.ready += 1;
            observation.ready_ordinals.push(pod.ordinal);
        }
        if pod.running {
            running.push(pod.ordinal);
        } else {
            observation.pods.push(ObservedPod {
                ordinal: pod.ordinal,
                node: None,
            });
        }
    }
    // Ask the running pods concurrently, so unreachable pods cost one timeout, not one each.
    let endpoint = &endpoint;
    let answers = futures::future::join_all(running.into_iter().map(|ordinal| async move {
        let (address, server_name) = endpoint(ordinal);
        let target = ProbeTarget {
            pod: ordinal.to_string(),
            address,
            server_name,
        };
        let answer = async {
            let mut client = target.connect(credentials, admin_timeout).await?;
            let info = client.node_info().await?;
            Ok::<_, crate::admin::AdminError>((client, info))
        }
        .await;
        (ordinal, answer)
    }))
    .await;
    for (ordinal, answer) in answers {
        match answer {
            Ok((client, info)) => {
                observation.clients.insert(ordinal, client);
                observation.pods.push(ObservedPod {
                    ordinal,
                    node: Some(info),
                });
            }
            Err(error) => {
                tracing::debug!(%error, ordinal, "node did not answer NodeInfo");
                observation.pods.push(ObservedPod {
                    ordinal,
                    node: None,
                });
            }
        }
    }
    observation.pods.sort_by_key(|pod| pod.ordinal);

    // Ask nodes with Raft state; the leader's answer has the replication lag of every member.
    let with_state: Vec<u32> = observation
        .pods
        .iter()
        .filter(|pod| pod.node.as_ref().is_some_and(|n| n.has_raft_state))
        .map(|pod| pod.ordinal)
        .collect();
    let mut fallback = None;
    for ordinal in with_state {
        let Some(client) = observation.clients.get_mut(&ordinal) else {
            continue;
        };
        match client.cluster_status().await {
            Ok(membership) => {
                let answered_by_leader = observation
                    .pods
                    .iter()
                    .find(|pod| pod.ordinal == ordinal)
                    .and_then(|pod| pod.node.as_ref())
                    .is_some_and(|node| Some(node.node_id) == membership.leader_id);
                if answered_by_leader {
                    observation.membership = Some(membership);
                    observation.reported_by_leader = true;
                    return observation;
                }
                if fallback.is_none() || membership.leader_id.is_some() {
                    fallback = Some(membership);
                }
            }
            Err(error) => tracing::debug!(%error, "ClusterStatus failed"),
        }
    }
    // Only the leader knows replication progress; a follower reports lag 0 for everyone, which
    // must not read as "caught up" (the planner would promote a learner too early).
    if let Some(membership) = fallback.as_mut() {
        for member in membership.members.iter_mut().filter(|m| !m.voter) {
            member.lag = u64::MAX;
        }
    }
    observation.membership = fallback;
    observation
}

impl Observation {
    fn client(&mut self, ordinal: u32) -> Result<&mut AdminClient, ReconcileError> {
        self.clients
            .get_mut(&ordinal)
            .ok_or_else(|| no_client(ordinal))
    }

    fn leader(&mut self) -> Result<&mut AdminClient, ReconcileError> {
        let leader = self
            .membership
            .as_ref()
            .and_then(|m| m.leader_id)
            .ok_or_else(|| ReconcileError::NodeUnavailable("no Raft leader is known".to_owned()))?;
        self.client(ordinal_of(leader))
    }

    /// Executes a membership step (other steps are handled by the reconciler).
    pub async fn execute(&mut self, step: &Step) -> Result<(), ReconcileError> {
        match step {
            Step::Initialize { .. } => self.client(0)?.initialize().await?,
            Step::AddLearner {
                node_id, address, ..
            } => self.leader()?.add_learner(*node_id, address).await?,
            Step::Promote { node_id } => self.leader()?.promote(*node_id).await?,
            Step::RemoveVoter { node_id } | Step::RemoveLearner { node_id } => {
                self.leader()?.remove(*node_id).await?
            }
            Step::ReplaceMember { old_node_id, .. } => self.leader()?.remove(*old_node_id).await?,
            Step::ReplaceFailedMember {
                remove_node_id: Some(node_id),
                ..
            } => self.leader()?.remove(*node_id).await?,
            Step::ReplaceFailedMember {
                remove_node_id: None,
                ..
            } => {}
            Step::TransferLeadership { to, .. } => self.leader()?.transfer_leadership(*to).await?,
            Step::ScaleStatefulSet { .. }
            | Step::Wait { .. }
            | Step::RefuseScaleDown { .. }
            | Step::Stuck { .. }
            | Step::Steady => {}
        }
        Ok(())
    }
}

fn no_client(ordinal: u32) -> ReconcileError {
    ReconcileError::NodeUnavailable(format!(
        "pod {ordinal} stopped answering between observation and action"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_come_from_pod_names() {
        assert_eq!(pod_ordinal("demo", "demo-0"), Some(0));
        assert_eq!(pod_ordinal("demo", "demo-12"), Some(12));
        assert_eq!(pod_ordinal("demo", "demo-x"), None);
        assert_eq!(pod_ordinal("demo", "demox-1"), None);
        assert_eq!(pod_ordinal("de", "demo-1"), None);
    }
}
