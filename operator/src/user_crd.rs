//! The `ProgLogUser` custom resource (`proglog.dev/v1alpha1`): an application's identity on one
//! ProgLogCluster. The operator issues a client certificate for it (Common Name = the user's
//! name) from the cluster's CA into a Secret the application mounts, renews it, adds the user's
//! rules to the cluster's ACL, and removes both when the user is deleted — so access is one
//! `kubectl apply`. `crdgen user` prints this as YAML.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::{ClusterCondition, wildcard};

/// An application identity with access to one ProgLogCluster.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "proglog.dev",
    version = "v1alpha1",
    kind = "ProgLogUser",
    namespaced,
    status = "ProgLogUserStatus",
    shortname = "plu",
    category = "proglog",
    doc = "An application identity on a ProgLogCluster: the operator issues its client certificate (Common Name = metadata.name) into a Secret and grants spec.acl in the cluster's ACL; deleting the user removes both.",
    printcolumn = r#"{"name":"Cluster","type":"string","jsonPath":".spec.cluster","description":"The ProgLogCluster"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status","description":"Certificate issued and its ACL rules enforced by every running node"}"#,
    printcolumn = r#"{"name":"Secret","type":"string","jsonPath":".status.secretName","description":"Secret with tls.crt, tls.key and ca.crt"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".status.certificateExpiry","description":"When the certificate expires (renewed before)"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretName) == has(oldSelf.secretName)").message("secretName cannot be added or removed"))]
pub struct ProgLogUserSpec {
    /// Name of the ProgLogCluster, in the same namespace, this user may access. Cannot change:
    /// create another user for another cluster.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("cluster cannot change; create another ProgLogUser"))]
    pub cluster: String,
    /// What the user may do. Without rules the user can connect but every call is denied.
    #[serde(default)]
    pub acl: Vec<UserAclRule>,
    /// Name of the Secret (keys tls.crt, tls.key, ca.crt) the certificate is written to
    /// [default: NAME-user-tls]. Cannot change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("secretName cannot change"))]
    pub secret_name: Option<String>,
}

/// One grant of a user.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserAclRule {
    /// Action granted.
    pub action: UserAction,
    /// Object the rule applies to (`*` for every object).
    #[serde(default = "wildcard")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[^,#\s]+$"))]
    pub object: String,
}

/// Actions a user can be granted. Raft replication is deliberately not among them: it is the
/// nodes' own identity's, and would let a client write into the Raft log directly.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UserAction {
    /// Append records.
    Produce,
    /// Read records.
    Consume,
    /// Call the membership (admin) API.
    Admin,
}

impl UserAction {
    /// The spelling in the node's policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            UserAction::Produce => "produce",
            UserAction::Consume => "consume",
            UserAction::Admin => "admin",
        }
    }
}

/// Observed state of a ProgLogUser.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProgLogUserStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready: the certificate is in the Secret and every running node of the cluster enforces
    /// the user's rules (reason AccessEnforced, kept for the observedGeneration it was confirmed
    /// for); False with reason AclPropagating while a node does not yet.
    #[serde(default)]
    pub conditions: Vec<ClusterCondition>,
    /// The identity (certificate Common Name) the ACL knows the user by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The Secret holding the certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Expiry of the certificate (RFC 3339); it is renewed after two thirds of its lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiry: Option<String>,
}

impl ProgLogUser {
    /// The Secret the certificate goes to.
    pub fn secret_name(&self) -> String {
        self.spec.secret_name.clone().unwrap_or_else(|| {
            format!(
                "{}-user-tls",
                self.metadata.name.as_deref().unwrap_or_default()
            )
        })
    }
}
