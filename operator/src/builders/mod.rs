//! Pure resource builders: a `ProgLogCluster` in, the Kubernetes objects it needs out. Nothing
//! here talks to the API server, so every builder is unit-tested on its output.
//!
//! Names (for cluster `NAME`): StatefulSet and client Service `NAME`, headless Service
//! `NAME-headless`, ConfigMap `NAME-config`, PodDisruptionBudget `NAME`, per-pod Services
//! `NAME-N-external`, Secrets `NAME-ca`, `NAME-node-tls`, `NAME-operator-tls`.

mod config;
mod disruption_budget;
mod services;
mod statefulset;

pub use config::{
    ACL_FILE_KEY, NODE_CONFIG_KEY, UserRule, acl_policy, config_hash, config_map,
    is_reserved_identity, node_config, user_rules,
};
pub use disruption_budget::pod_disruption_budget;
pub use services::{client_service, external_services, headless_service};
pub use statefulset::{
    CONFIG_HASH_ANNOTATION, DATA_DIR, GRPC_PORT, METRICS_PORT, NODE_CONTAINER, REVISION_LABEL,
    TLS_DIR, UPDATE_STRATEGY, stateful_set,
};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::crd::ProgLogCluster;

/// Identity (certificate CN) of the operator's admin client.
pub const OPERATOR_IDENTITY: &str = "proglog-operator";
/// Label every managed object carries with the cluster name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label key of the StatefulSet pod name (set by Kubernetes).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// Errors from building resources out of a ProgLogCluster.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The object has no namespace, name or uid (it was not read from the API server).
    #[error("ProgLogCluster is missing metadata.{0}; it must come from the API server")]
    MissingMetadata(&'static str),
    /// The node configuration could not be serialized.
    #[error("serializing the node configuration: {0}")]
    Config(#[from] toml::ser::Error),
}

/// What every builder needs to know about the cluster's identity.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterRef {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// Controller owner reference pointing at the ProgLogCluster (for garbage collection).
    pub owner: OwnerReference,
}

impl ClusterRef {
    /// Extracts the identity, failing clearly when metadata the API server always sets is absent.
    pub fn of(cluster: &ProgLogCluster) -> Result<Self, BuildError> {
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or(BuildError::MissingMetadata("name"))?;
        let namespace = cluster
            .metadata
            .namespace
            .clone()
            .ok_or(BuildError::MissingMetadata("namespace"))?;
        let owner = cluster
            .controller_owner_ref(&())
            .ok_or(BuildError::MissingMetadata("uid"))?;
        Ok(Self {
            name,
            namespace,
            owner,
        })
    }

    /// Name of the headless (peer DNS) Service.
    pub fn headless_service_name(&self) -> String {
        format!("{}-headless", self.name)
    }

    /// Name of the ConfigMap with the node configuration and ACL policy.
    pub fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// Name of the Secret with the CA the operator created.
    pub fn ca_secret_name(&self) -> String {
        format!("{}-ca", self.name)
    }

    /// Name of the Secret with the node certificate.
    pub fn node_tls_secret_name(&self) -> String {
        format!("{}-node-tls", self.name)
    }

    /// Name of the Secret with the operator's admin client certificate for this cluster.
    pub fn operator_tls_secret_name(&self) -> String {
        format!("{}-operator-tls", self.name)
    }

    /// Name of pod `ordinal`.
    pub fn pod_name(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// Stable DNS name of pod `ordinal` through the headless Service.
    pub fn pod_fqdn(&self, ordinal: u32) -> String {
        format!(
            "{}.{}.{}.svc.cluster.local",
            self.pod_name(ordinal),
            self.headless_service_name(),
            self.namespace
        )
    }

    /// Address (`host:port`) a node at `ordinal` advertises to its peers and the operator.
    pub fn pod_address(&self, ordinal: u32) -> String {
        format!("{}:{GRPC_PORT}", self.pod_fqdn(ordinal))
    }

    /// Identity (certificate CN) of the cluster's nodes.
    pub fn node_identity(&self) -> String {
        format!("{}-node", self.name)
    }

    /// Labels selecting this cluster's pods (must never change: StatefulSet selectors are immutable).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "proglog".to_owned()),
            (INSTANCE_LABEL.to_owned(), self.name.clone()),
        ])
    }

    /// Labels of every object the operator manages for this cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.selector_labels();
        labels.insert(
            "app.kubernetes.io/managed-by".to_owned(),
            OPERATOR_IDENTITY.to_owned(),
        );
        labels.insert("app.kubernetes.io/component".to_owned(), "node".to_owned());
        labels
    }

    /// Metadata of a managed object: namespace, labels and the controller owner reference.
    pub fn metadata(&self, name: impl Into<String>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

/// A ProgLogCluster's `NAME` for logs and events.
pub fn display_name(cluster: &ProgLogCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

#[cfg(test)]
pub(crate) mod test_support {
    //! A ProgLogCluster as the API server would return it, for builder tests.

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::crd::{ProgLogCluster, ProgLogClusterSpec};

    /// A cluster `demo` in namespace `logs` parsed from an (almost) empty spec, so defaults apply.
    pub fn cluster() -> ProgLogCluster {
        let spec: ProgLogClusterSpec = serde_json::from_str("{}").expect("defaults parse");
        let mut cluster = ProgLogCluster::new("demo", spec);
        cluster.metadata = ObjectMeta {
            name: Some("demo".to_owned()),
            namespace: Some("logs".to_owned()),
            uid: Some("0d6c6f1e-1111-2222-3333-444455556666".to_owned()),
            generation: Some(1),
            ..ObjectMeta::default()
        };
        cluster
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ref_requires_api_server_metadata() {
        let mut cluster = test_support::cluster();
        cluster.metadata.uid = None;
        let err = ClusterRef::of(&cluster).unwrap_err();
        assert!(err.to_string().contains("metadata.uid"), "{err}");
        cluster.metadata.namespace = None;
        let err = ClusterRef::of(&cluster).unwrap_err();
        assert!(err.to_string().contains("metadata.namespace"), "{err}");
    }

    #[test]
    fn owner_reference_is_the_controller() {
        let cluster = ClusterRef::of(&test_support::cluster()).unwrap();
        assert_eq!(cluster.owner.kind, "ProgLogCluster");
        assert_eq!(cluster.owner.api_version, "proglog.dev/v1alpha1");
        assert_eq!(cluster.owner.name, "demo");
        assert_eq!(cluster.owner.controller, Some(true));
        let meta = cluster.metadata("x");
        assert_eq!(meta.owner_references.unwrap(), vec![cluster.owner.clone()]);
        assert_eq!(meta.namespace.as_deref(), Some("logs"));
    }

    #[test]
    fn pod_addresses_use_the_headless_service() {
        let cluster = ClusterRef::of(&test_support::cluster()).unwrap();
        assert_eq!(
            cluster.pod_address(2),
            "demo-2.demo-headless.logs.svc.cluster.local:8400"
        );
    }
}
