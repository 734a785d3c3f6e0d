//! The objects a cluster's pods read, applied every pass (server-side apply, idempotent): the
//! ConfigMap (node configuration and the ACL with every user's rules), the headless, client and
//! external Services, and the PodDisruptionBudget; external Services no longer wanted are deleted.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Service;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ListParams},
};

use super::{Context, ReconcileError, reconcile::apply_object, users};
use crate::{
    builders::{self, ClusterRef, INSTANCE_LABEL},
    crd::ProgLogCluster,
};

/// Configuration (with every user's ACL rules), Services and the PodDisruptionBudget: desired
/// state, applied every pass (idempotent); external Services no longer wanted are deleted.
pub(super) async fn apply_owned_objects(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    named_pods: u32,
) -> Result<(), ReconcileError> {
    let ns = cluster_ref.namespace.as_str();
    let client = &ctx.client;
    let users = users::users_of(ctx, ns, &cluster_ref.name).await?;
    let config_map = builders::config_map(cluster, cluster_ref, &users)?;
    apply_object(&Api::namespaced(client.clone(), ns), &config_map).await?;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    apply_object(&services, &builders::headless_service(cluster_ref)).await?;
    apply_object(&services, &builders::client_service(cluster, cluster_ref)).await?;
    let external = builders::external_services(cluster, cluster_ref, named_pods);
    for service in &external {
        apply_object(&services, service).await?;
    }
    delete_stale_external_services(&services, cluster_ref, &external).await?;
    apply_object(
        &Api::namespaced(client.clone(), ns),
        &builders::pod_disruption_budget(cluster_ref),
    )
    .await?;
    Ok(())
}

async fn delete_stale_external_services(
    services: &Api<Service>,
    cluster_ref: &ClusterRef,
    wanted: &[Service],
) -> Result<(), ReconcileError> {
    let wanted: BTreeSet<String> = wanted
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    let selector = format!("{INSTANCE_LABEL}={}", cluster_ref.name);
    for service in services
        .list(&ListParams::default().labels(&selector))
        .await?
    {
        let name = service.name_any();
        if name.ends_with("-external") && !wanted.contains(&name) {
            services.delete(&name, &DeleteParams::default()).await?;
        }
    }
    Ok(())
}
