//! The `ProgLogCluster` custom resource (`proglog.dev/v1alpha1`): spec, status and the schema
//! validation the API server enforces (ranges, enums, CEL rules). `crdgen` prints this as YAML.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::maintenance::MaintenanceSpec;

/// API group of every ProgLog resource.
pub const GROUP: &str = "proglog.dev";
/// Finalizer the operator puts on every ProgLogCluster it manages.
pub const FINALIZER: &str = "proglog.dev/cleanup";
/// Annotation that pauses reconciliation while its value is `"true"`: the operator changes
/// nothing (no objects, certificates or membership) and says so in the status (phase `Paused`,
/// condition `ReconciliationPaused`) until it is removed. Deletion still cleans up.
pub const PAUSE_ANNOTATION: &str = "proglog.dev/pause-reconciliation";

/// Desired state of a ProgLog cluster: a replicated commit log running as a StatefulSet whose
/// Raft membership the operator manages.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "proglog.dev",
    version = "v1alpha1",
    kind = "ProgLogCluster",
    namespaced,
    status = "ProgLogClusterStatus",
    shortname = "plc",
    category = "proglog",
    doc = "A replicated ProgLog commit log managed by the ProgLog operator. The annotation proglog.dev/pause-reconciliation: \"true\" pauses reconciliation (phase Paused) until removed.",
    printcolumn = r#"{"name":"Replicas","type":"integer","jsonPath":".spec.replicas","description":"Desired number of nodes"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".status.readyReplicas","description":"Pods that are Ready"}"#,
    printcolumn = r#"{"name":"Leader","type":"string","jsonPath":".status.leader","description":"Raft leader observed by the operator"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase","description":"Lifecycle phase"}"#,
    printcolumn = r#"{"name":"Operation","type":"string","priority":1,"jsonPath":".status.operation","description":"Membership, scaling or rolling-restart operation in progress"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct ProgLogClusterSpec {
    /// Number of ProgLog nodes (Raft voters). Odd numbers tolerate failures best: 3 survives one
    /// lost node, 5 survives two. 1 is allowed for development.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 99))]
    #[x_kube(validation = Rule::new("self >= 1").message("replicas cannot drop below 1"))]
    pub replicas: i32,
    /// Container image of the ProgLog node.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,
    /// When the kubelet pulls the image.
    #[serde(default)]
    pub image_pull_policy: PullPolicy,
    /// CPU and memory requests and limits of each node container. A CPU request (or a limit,
    /// which Kubernetes then also takes as the request) sizes the node's async worker threads:
    /// the request rounded up to whole CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Persistent storage of each node (one PersistentVolumeClaim per pod).
    #[serde(default)]
    pub storage: StorageSpec,
    /// Commit-log settings passed to every node.
    #[serde(default)]
    pub log: LogSpec,
    /// Mutual TLS: which CA signs the node and client certificates.
    #[serde(default)]
    pub tls: TlsSpec,
    /// Access control policy for client identities (certificate Common Names).
    #[serde(default)]
    pub acl: AclSpec,
    /// The client Service through which applications reach the cluster.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Per-pod external access: one LoadBalancer Service per pod, so clients outside the
    /// cluster can reach every node directly (leader-aware clients need this).
    #[serde(default)]
    pub external_access: ExternalAccessSpec,
    /// Overrides merged into the node pod template.
    #[serde(default)]
    pub pod_template: PodTemplateOverrides,
    /// When the operator may restart pods to apply a change. A change of the pod template
    /// (configuration, image, certificates, resources) is rolled by the operator one pod at a
    /// time: followers first, highest ordinal first, the leader last after handing its
    /// leadership over, each only while every member is Ready, a voter and caught up.
    #[serde(default)]
    pub maintenance: MaintenanceSpec,
    /// Automatic replacement of a member whose pod stays not Ready (off when unset). Never done
    /// when the remaining healthy voters would not be a quorum of the current voters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<ReplacementSpec>,
}

/// When and how the operator replaces a member whose pod stays down.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReplacementSpec {
    /// How long a member's pod must have been not Ready (its Ready condition's
    /// lastTransitionTime) before it is replaced, as a duration such as "10m" or "1h30m"; at
    /// least 1m.
    // The length bound keeps the CEL rule's estimated cost within the API server's budget.
    #[schemars(length(min = 2, max = 32), regex(pattern = r"^([0-9]+(s|m|h))+$"))]
    #[x_kube(
        validation = Rule::new("!self.matches('^([0-9]+(s|m|h))+$') || duration(self) >= duration('1m')").message("replacement.after must be at least 1m")
    )]
    pub after: String,
    /// Delete the member's PersistentVolumeClaim too: the member is removed from the Raft
    /// voters, its claim and pod are deleted, and the pod comes back with an empty volume and
    /// rejoins as a learner (promoted once caught up). When false (the default) only the pod is
    /// deleted: it comes back with its old volume and Raft identity, which frees a pod stuck on
    /// a lost machine or a wedged container but keeps the member.
    #[serde(default)]
    pub delete_volume: bool,
}

fn default_replicas() -> i32 {
    3
}

fn default_image() -> String {
    "ghcr.io/proglog/proglog-node:0.1.0".to_owned()
}

/// Image pull policy of the node container.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PullPolicy {
    /// Always pull the image.
    Always,
    /// Pull only when the image is not on the node.
    #[default]
    IfNotPresent,
    /// Never pull; the image must already be on the node.
    Never,
}

impl PullPolicy {
    /// The Kubernetes spelling of this policy.
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Persistent volume of each node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Size of each node's volume, as a Kubernetes quantity (e.g. "10Gi"). It can grow (if the
    /// storage class allows volume expansion) but never shrink.
    #[serde(default = "default_storage_size")]
    #[x_kube(
        validation = Rule::new("isQuantity(self)").message("size must be a Kubernetes quantity such as 10Gi"),
        validation = Rule::new("!isQuantity(self) || !isQuantity(oldSelf) || quantity(self).compareTo(quantity(oldSelf)) >= 0").message("storage size cannot shrink")
    )]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// What happens to the volumes when the ProgLogCluster is deleted: Retain (the default)
    /// keeps the data for a later cluster of the same name, Delete removes it. Volumes of pods
    /// removed by a scale-down are always retained.
    #[serde(default)]
    pub retention_on_delete: VolumeRetention,
}

fn default_storage_size() -> String {
    "10Gi".to_owned()
}

impl Default for StorageSpec {
    fn default() -> Self {
        Self {
            size: default_storage_size(),
            storage_class_name: None,
            retention_on_delete: VolumeRetention::default(),
        }
    }
}

/// Whether PersistentVolumeClaims outlive the cluster.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VolumeRetention {
    /// Keep the PersistentVolumeClaims.
    #[default]
    Retain,
    /// Delete the PersistentVolumeClaims with the cluster.
    Delete,
}

impl VolumeRetention {
    /// The StatefulSet `persistentVolumeClaimRetentionPolicy` spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeRetention::Retain => "Retain",
            VolumeRetention::Delete => "Delete",
        }
    }
}

/// Commit-log settings. Unset fields use the node's defaults. A record may be larger than a
/// segment (it then gets a segment of its own), so record and segment sizes are independent; the
/// node's message size is derived from `maxRecordBytes`
/// ([`proglog_proto::limits::message_bytes_for`]), so every record size in range is valid.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LogSpec {
    /// Maximum size in bytes of a segment's store file before a new segment starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4096, max = 17179869184u64))]
    pub max_store_bytes: Option<u64>,
    /// Maximum size in bytes of a segment's index file before a new segment starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4096, max = 17179869184u64))]
    pub max_index_bytes: Option<u64>,
    /// Largest record a client may produce, in bytes (the node's `--max-record-size`; at most
    /// 64 MiB). Lowering it affects only new produces: records already committed stay readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = proglog_proto::limits::MAX_RECORD_BYTES))]
    pub max_record_bytes: Option<u64>,
    /// Delete the oldest segments once the log is larger than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub retention_bytes: Option<u64>,
    /// Delete segments whose records are all older than this duration (e.g. "7d", "12h").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(s|m|h|d))+$"))]
    pub retention_age: Option<String>,
}

/// Which CA issues the cluster's certificates.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Name of an existing Secret (keys `tls.crt`, `tls.key`) holding a CA certificate and key
    /// in this namespace. When unset the operator creates a CA for this cluster and stores it in
    /// the Secret `NAME-ca`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub ca_secret_name: Option<String>,
    /// Lifetime of node and client certificates in hours; they are renewed after two thirds of it.
    #[serde(default = "default_certificate_hours")]
    #[schemars(range(min = 1, max = 87600))]
    pub certificate_lifetime_hours: u32,
}

fn default_certificate_hours() -> u32 {
    24 * 90
}

impl Default for TlsSpec {
    fn default() -> Self {
        Self {
            ca_secret_name: None,
            certificate_lifetime_hours: default_certificate_hours(),
        }
    }
}

/// The ACL policy. The operator always adds the rules its own admin identity and the nodes'
/// identity need; everything else is denied unless a rule allows it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AclSpec {
    /// Rules granting a subject an action on an object.
    #[serde(default)]
    pub rules: Vec<AclRule>,
}

/// One ACL rule: `subject` may perform `action` on `object`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AclRule {
    /// Client identity (certificate Common Name), or `*` for every authenticated client.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[^,#\s]+$"))]
    pub subject: String,
    /// Object the rule applies to (`*` for every object).
    #[serde(default = "wildcard")]
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[^,#\s]+$"))]
    pub object: String,
    /// Action granted.
    pub action: AclAction,
}

pub(crate) fn wildcard() -> String {
    "*".to_owned()
}

/// Actions an ACL rule can grant.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AclAction {
    /// Append records.
    Produce,
    /// Read records.
    Consume,
    /// Call the membership (admin) API.
    Admin,
    /// Raft RPCs and forwarded produces between nodes.
    Replicate,
    /// Every action.
    #[serde(rename = "*")]
    All,
}

impl AclAction {
    /// The spelling in the node's policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            AclAction::Produce => "produce",
            AclAction::Consume => "consume",
            AclAction::Admin => "admin",
            AclAction::Replicate => "replicate",
            AclAction::All => "*",
        }
    }
}

/// The client Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations of the client Service (e.g. cloud load-balancer settings on GKE).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Type of the client Service.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    /// Reachable inside the cluster only.
    #[default]
    ClusterIP,
    /// Exposed through a cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The Kubernetes spelling of this type.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

/// One LoadBalancer Service per pod.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalAccessSpec {
    /// Create a LoadBalancer Service `NAME-N-external` for every pod.
    #[serde(default)]
    pub enabled: bool,
    /// Annotations of the per-pod Services.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Scheduling and metadata overrides for the node pods.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Replaces the default affinity (preferred anti-affinity across nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Tolerations of the node pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node selector of the node pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// PriorityClass of the node pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra labels on the node pods (the operator's own labels win on conflict).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra annotations on the node pods.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// State of a ProgLog cluster as observed by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProgLogClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Lifecycle phase: Pending, Initializing, Scaling, RollingRestart (pods are being restarted
    /// onto a new pod template), Running, Degraded, or Paused (the
    /// proglog.dev/pause-reconciliation annotation is "true").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Available, Progressing and Degraded conditions, and ReconciliationPaused while paused.
    #[serde(default)]
    pub conditions: Vec<ClusterCondition>,
    /// Pods of the StatefulSet.
    #[serde(default)]
    pub replicas: i32,
    /// Pods that are Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// True once pod 0 has been initialized as the first Raft voter; never reset, so the
    /// operator cannot initialize the cluster twice.
    #[serde(default)]
    pub initialized: bool,
    /// Address of the Raft leader, as reported by the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<String>,
    /// Raft voters, as reported by the cluster.
    #[serde(default)]
    pub voters: Vec<MemberSummary>,
    /// Raft learners (non-voting members catching up), as reported by the cluster.
    #[serde(default)]
    pub learners: Vec<MemberSummary>,
    /// Every Raft member with its pod, role, health and replication progress (from the
    /// leader's view; lag and matched index are 0 when no leader answered).
    #[serde(default)]
    pub members: Vec<MemberStatus>,
    /// The membership, scaling or rolling-restart operation in progress, if any (the planner's
    /// current step, e.g. "rolling restart: 1/3 pods updated, restarting demo-1 (follower)", or
    /// what it waits for, such as the maintenance window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Expiry of the CA certificate (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_expiry: Option<String>,
    /// Expiry of the node certificate (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_expiry: Option<String>,
    /// Expiry of the operator's own client certificate for this cluster (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_certificate_expiry: Option<String>,
    /// The CAs nodes and clients trust: one, or two while a CA rotation
    /// (annotation proglog.dev/rotate-ca) replaces the signing CA.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_cas: Vec<TrustedCa>,
}

/// A CA in the cluster's trust bundle.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrustedCa {
    /// Rotation generation of the CA (1 for the first; each rotation adds one).
    pub generation: u64,
    /// Expiry of the CA certificate (RFC 3339).
    pub expiry: String,
    /// Whether this CA signs new certificates (the other one is being added or retired).
    pub signing: bool,
}

/// One Raft member as a person reading the status needs it.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Raft node id (incarnation * 10000 + ordinal).
    pub node_id: u64,
    /// The pod running it.
    pub pod: String,
    /// Leader, Voter or Learner.
    pub role: String,
    /// Its pod is Ready and it is at most a few thousand entries behind the leader.
    pub healthy: bool,
    /// Index of the last Raft entry the leader knows it has.
    #[serde(default)]
    pub matched_index: u64,
    /// Raft entries it is behind the leader.
    #[serde(default)]
    pub lag: u64,
}

/// One Raft member as seen by the operator.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberSummary {
    /// Raft node id (incarnation * 10000 + ordinal).
    pub node_id: u64,
    /// Advertised address.
    pub address: String,
    /// Raft log entries this member is behind the leader (0 if unknown).
    #[serde(default)]
    pub lag: u64,
}

/// A standard-shaped status condition.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterCondition {
    /// Condition type: Available, Progressing or Degraded.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// Machine-readable reason in PascalCase.
    pub reason: String,
    /// Human-readable explanation.
    pub message: String,
    /// When the status last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    /// The API server enforces the node's record limit (one constant, shared with the node), and
    /// no longer ties record sizes to segment sizes (the node does not either).
    #[test]
    fn record_size_schema_is_the_nodes_limit() {
        let crd = serde_json::to_value(ProgLogCluster::crd()).unwrap();
        let log = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            ["log"];
        let record = &log["properties"]["maxRecordBytes"];
        assert_eq!(
            record["maximum"].as_f64(),
            Some(proglog_proto::limits::MAX_RECORD_BYTES as f64)
        );
        assert_eq!(record["minimum"].as_f64(), Some(1.0));
        assert!(
            log.get("x-kubernetes-validations").is_none(),
            "no rule relates maxRecordBytes to maxStoreBytes: {log}"
        );
    }
}
