//! Cordoning nodes, so that a deleted pod cannot come back before the scenario allows it.

use k8s_openapi::api::core::v1::Node;
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use crate::E2eError;

/// Annotation on nodes the suite cordoned, so an interrupted run's cordon can be undone.
pub const CORDON_ANNOTATION: &str = "proglog.dev/e2e-cordoned";

/// Nodes cordoned by [`cordon_all_nodes`]; [`Cordon::release`] uncordons them.
pub struct Cordon {
    client: Client,
    nodes: Vec<String>,
}

impl std::fmt::Debug for Cordon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cordon")
            .field("nodes", &self.nodes)
            .finish_non_exhaustive()
    }
}

/// Marks every schedulable node unschedulable (running pods stay; new pods stay Pending), so
/// a deleted pod cannot come back until [`Cordon::release`].
pub async fn cordon_all_nodes(client: &Client) -> Result<Cordon, E2eError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut cordoned = Vec::new();
    for node in nodes.list(&ListParams::default()).await? {
        if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
            continue;
        }
        let name = node.metadata.name.clone().unwrap_or_default();
        nodes
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({
                    "metadata": { "annotations": { CORDON_ANNOTATION: "true" } },
                    "spec": { "unschedulable": true },
                })),
            )
            .await?;
        cordoned.push(name);
    }
    Ok(Cordon {
        client: client.clone(),
        nodes: cordoned,
    })
}

/// Uncordons every node carrying [`CORDON_ANNOTATION`] (left over by an interrupted run).
pub async fn uncordon_leftovers(client: &Client) -> Result<(), E2eError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let names: Vec<String> = nodes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|n| {
            n.metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(CORDON_ANNOTATION))
        })
        .filter_map(|n| n.metadata.name)
        .collect();
    Cordon {
        client: client.clone(),
        nodes: names,
    }
    .release()
    .await
}

impl Cordon {
    /// Makes the cordoned nodes schedulable again.
    pub async fn release(self) -> Result<(), E2eError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        for name in &self.nodes {
            nodes
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({
                        "metadata": { "annotations": { CORDON_ANNOTATION: null } },
                        "spec": { "unschedulable": null },
                    })),
                )
                .await?;
        }
        Ok(())
    }
}
