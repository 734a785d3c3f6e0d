//! Volume growth: raising the storage request of a cluster's PersistentVolumeClaims to
//! `spec.storage.size`, and saying which claims the API server refused to grow.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::{
    Api, ResourceExt,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use super::{Context, ReconcileError, status::Problem};
use crate::{builders::ClusterRef, crd::ProgLogCluster};

/// Raises the storage request of existing PVCs to `spec.storage.size` (volume expansion); the
/// schema guarantees the size never shrinks.
pub(super) async fn grow_volumes(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    selector: &str,
) -> Result<Option<Problem>, ReconcileError> {
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &cluster_ref.namespace);
    let wanted = &cluster.spec.storage.size;
    let mut refused = Vec::new();
    for claim in claims.list(&ListParams::default().labels(selector)).await? {
        let current = claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref())
            .and_then(|r| r.get("storage"))
            .map(|q| q.0.clone());
        if current.as_deref() != Some(wanted.as_str()) {
            let patch = json!({"spec": {"resources": {"requests": {"storage": wanted}}}});
            let grown = claims
                .patch(
                    &claim.name_any(),
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await;
            match grown {
                Ok(_) => {}
                // Invalid or Forbidden: this claim cannot grow (a StorageClass without
                // allowVolumeExpansion, a claim not bound yet). Say so; the rest of the
                // cluster's changes must not wait for it.
                Err(kube::Error::Api(e)) if matches!(e.code, 403 | 422) => {
                    refused.push(format!("{}: {}", claim.name_any(), e.message));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok((!refused.is_empty()).then(|| Problem {
        reason: "VolumeGrowthRefused".to_owned(),
        message: format!(
            "spec.storage.size is {wanted} but the API server refused to grow: {}",
            refused.join("; ")
        ),
    }))
}
