//! The ConfigMap every node mounts: the node configuration file (log settings, and the message
//! size derived from the record size) and the ACL policy, plus the hash of the configuration
//! that rolls the pods when it changes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use proglog_proto::limits;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{BuildError, ClusterRef, OPERATOR_IDENTITY};
use crate::crd::ProgLogCluster;
use crate::user_crd::ProgLogUser;

/// ConfigMap key of the node configuration (TOML, read through `--config`).
pub const NODE_CONFIG_KEY: &str = "proglog.toml";
/// ConfigMap key of the ACL policy (read through `--acl-file`).
pub const ACL_FILE_KEY: &str = "acl.csv";

/// The keys of the node's config file (`proglog-node --config`, kebab-case flag names; the node
/// rejects unknown keys). Only settings present in `spec.log` are written (plus the message size
/// a set record size needs); everything else comes from environment variables (the `PROGLOG_*` contract in docs/ARCHITECTURE.md) or defaults.
#[derive(Serialize, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
struct NodeConfigFile<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    segment_max_store_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    segment_max_index_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_record_size: Option<u64>,
    /// Derived from the record size (never in the spec): the node refuses a message size that
    /// cannot carry one record, and its default (4 MiB) is too small for larger records.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_message_size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_bytes: Option<u64>,
    /// A humantime duration such as `7d` or `1d12h`.
    #[serde(skip_serializing_if = "Option::is_none")]
    retention_age: Option<&'a str>,
}

/// The node configuration file for this cluster.
pub fn node_config(cluster: &ProgLogCluster) -> Result<String, BuildError> {
    let log = &cluster.spec.log;
    let file = NodeConfigFile {
        segment_max_store_bytes: log.max_store_bytes,
        segment_max_index_bytes: log.max_index_bytes,
        max_record_size: log.max_record_bytes,
        max_message_size: log.max_record_bytes.map(limits::message_bytes_for),
        retention_bytes: log.retention_bytes,
        retention_age: log.retention_age.as_deref(),
    };
    let body = toml::to_string(&file)?;
    Ok(format!(
        "# Written by the ProgLog operator from the ProgLogCluster spec; edits are overwritten.\n{body}"
    ))
}

/// Whether `identity` is one only the operator and the nodes may hold: a ProgLogUser of that
/// name would get their certificates' powers, so it is refused.
pub fn is_reserved_identity(identity: &str, cluster_ref: &ClusterRef) -> bool {
    identity == OPERATOR_IDENTITY || identity == cluster_ref.node_identity()
}

/// The ACL policy: the operator's admin identity and the nodes' replication identity first,
/// then the spec's rules, then each ProgLogUser's (`users`: this cluster's, by name; reserved
/// identities skipped). Default deny is the node's behaviour.
pub fn acl_policy(
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    users: &[ProgLogUser],
) -> String {
    let mut policy = String::from(
        "# subject, object, action. Written by the ProgLog operator; edit spec.acl instead.\n",
    );
    policy.push_str(&format!("{OPERATOR_IDENTITY}, *, admin\n"));
    let node = cluster_ref.node_identity();
    policy.push_str(&format!("{node}, *, replicate\n"));
    for rule in &cluster.spec.acl.rules {
        policy.push_str(&format!(
            "{}, {}, {}\n",
            rule.subject,
            rule.object,
            rule.action.as_str()
        ));
    }
    for user in users {
        let Some(identity) = user.metadata.name.as_deref() else {
            continue;
        };
        if is_reserved_identity(identity, cluster_ref) || user.spec.cluster != cluster_ref.name {
            continue;
        }
        policy.push_str(&format!("# ProgLogUser {identity}\n"));
        for rule in user_rules(user, cluster_ref) {
            policy.push_str(&rule.line());
            policy.push('\n');
        }
    }
    policy
}

/// One rule of a ProgLogUser as the ACL file has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRule {
    /// The user's identity (its name).
    pub subject: String,
    /// The object (`*`: every object).
    pub object: String,
    /// The action's name in the policy file.
    pub action: &'static str,
}

impl UserRule {
    /// The rule's line in the ACL file (without the newline).
    pub fn line(&self) -> String {
        format!("{}, {}, {}", self.subject, self.object, self.action)
    }
}

/// The rules [`acl_policy`] writes for `user` into its cluster's ACL: one per `spec.acl` entry;
/// none for a user of another cluster or with a reserved identity.
pub fn user_rules(user: &ProgLogUser, cluster_ref: &ClusterRef) -> Vec<UserRule> {
    let Some(identity) = user.metadata.name.as_deref() else {
        return Vec::new();
    };
    if is_reserved_identity(identity, cluster_ref) || user.spec.cluster != cluster_ref.name {
        return Vec::new();
    }
    user.spec
        .acl
        .iter()
        .map(|rule| UserRule {
            subject: identity.to_owned(),
            object: rule.object.clone(),
            action: rule.action.as_str(),
        })
        .collect()
}

/// Hex SHA-256 of the node configuration. Put on the pod template so that a change rolls the
/// pods; the ACL is not hashed because nodes reload it from the mounted file without a restart.
pub fn config_hash(node_config: &str) -> String {
    let digest = Sha256::digest(node_config.as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The ConfigMap with both files (`users`: see [`acl_policy`]).
pub fn config_map(
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    users: &[ProgLogUser],
) -> Result<ConfigMap, BuildError> {
    Ok(ConfigMap {
        metadata: cluster_ref.metadata(cluster_ref.config_map_name()),
        data: Some(BTreeMap::from([
            (NODE_CONFIG_KEY.to_owned(), node_config(cluster)?),
            (
                ACL_FILE_KEY.to_owned(),
                acl_policy(cluster, cluster_ref, users),
            ),
        ])),
        ..ConfigMap::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders::test_support::cluster;
    use crate::crd::{AclAction, AclRule};

    #[test]
    fn default_config_sets_no_log_keys() {
        let config = node_config(&cluster()).unwrap();
        assert!(config.starts_with("# Written by the ProgLog operator"));
        assert!(!config.contains('='), "{config}");
    }

    #[test]
    fn log_settings_become_toml_keys() {
        let mut cluster = cluster();
        cluster.spec.log.max_store_bytes = Some(1 << 20);
        cluster.spec.log.max_record_bytes = Some(4096);
        cluster.spec.log.retention_age = Some("1d12h".to_owned());
        let config = node_config(&cluster).unwrap();
        let parsed: toml::Table = toml::from_str(&config).unwrap();
        // The node's flag names (proglog-node --config rejects unknown keys).
        assert_eq!(
            parsed["segment-max-store-bytes"].as_integer(),
            Some(1 << 20)
        );
        assert_eq!(parsed["max-record-size"].as_integer(), Some(4096));
        let age = parsed["retention-age"].as_str().unwrap();
        assert_eq!(
            humantime::parse_duration(age).unwrap(),
            std::time::Duration::from_secs(36 * 3600)
        );
        assert_eq!(
            parsed["max-message-size"].as_integer(),
            Some(4 << 20),
            "derived from the record size"
        );
        assert!(!parsed.contains_key("segment-max-index-bytes"));
        assert_eq!(parsed.len(), 4);
    }

    /// The node refuses a `max-message-size` that cannot carry a record of `max-record-size`
    /// (default 4 MiB); every record size the CRD accepts must give a configuration the node's
    /// own check passes, or the pods crash-loop.
    #[test]
    fn written_limits_pass_the_nodes_check_for_every_accepted_record_size() {
        use proglog_proto::limits::{
            DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_RECORD_BYTES, MAX_RECORD_BYTES,
            check_record_limits,
        };
        for record in [
            None,
            Some(1),
            Some(DEFAULT_MAX_MESSAGE_BYTES - 64),
            Some(DEFAULT_MAX_MESSAGE_BYTES),
            Some(MAX_RECORD_BYTES),
        ] {
            let mut cluster = cluster();
            cluster.spec.log.max_record_bytes = record;
            let parsed: toml::Table = toml::from_str(&node_config(&cluster).unwrap()).unwrap();
            let key = |name: &str, default: u64| {
                parsed
                    .get(name)
                    .map_or(default, |v| v.as_integer().unwrap() as u64)
            };
            let record_size = key("max-record-size", DEFAULT_MAX_RECORD_BYTES);
            let message_size = key("max-message-size", DEFAULT_MAX_MESSAGE_BYTES);
            assert_eq!(
                check_record_limits(record_size, message_size),
                Ok(()),
                "spec.log.maxRecordBytes {record:?}"
            );
        }
    }

    #[test]
    fn hash_changes_when_config_changes() {
        let mut cluster = cluster();
        let before = config_hash(&node_config(&cluster).unwrap());
        assert_eq!(before.len(), 64);
        assert_eq!(before, config_hash(&node_config(&cluster).unwrap()));
        cluster.spec.log.max_record_bytes = Some(4096);
        let after = config_hash(&node_config(&cluster).unwrap());
        assert_ne!(before, after);
    }

    #[test]
    fn acl_always_grants_operator_and_nodes_then_user_rules() {
        let mut cluster = cluster();
        cluster.spec.acl.rules = vec![AclRule {
            subject: "app".to_owned(),
            object: "*".to_owned(),
            action: AclAction::Produce,
        }];
        let cluster_ref = ClusterRef::of(&cluster).unwrap();
        let policy = acl_policy(&cluster, &cluster_ref, &[]);
        let rules: Vec<&str> = policy.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            vec![
                "proglog-operator, *, admin",
                "demo-node, *, replicate",
                "app, *, produce"
            ]
        );
    }

    fn user(name: &str, cluster: &str, acl: serde_json::Value) -> ProgLogUser {
        let mut user = ProgLogUser::new(
            name,
            serde_json::from_value(serde_json::json!({ "cluster": cluster, "acl": acl })).unwrap(),
        );
        user.metadata.namespace = Some("logs".to_owned());
        user
    }

    #[test]
    fn users_of_this_cluster_get_their_rules_and_reserved_names_get_nothing() {
        let cluster = cluster();
        let cluster_ref = ClusterRef::of(&cluster).unwrap();
        let users = [
            user(
                "orders",
                "demo",
                serde_json::json!([{"action": "produce"}, {"action": "consume", "object": "log"}]),
            ),
            user(
                "other",
                "another-cluster",
                serde_json::json!([{"action": "produce"}]),
            ),
            user(
                "proglog-operator",
                "demo",
                serde_json::json!([{"action": "produce"}]),
            ),
            user(
                "demo-node",
                "demo",
                serde_json::json!([{"action": "consume"}]),
            ),
        ];
        let policy = acl_policy(&cluster, &cluster_ref, &users);
        let rules: Vec<&str> = policy.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            rules,
            vec![
                "proglog-operator, *, admin",
                "demo-node, *, replicate",
                "orders, *, produce",
                "orders, log, consume",
            ]
        );
        assert!(is_reserved_identity("demo-node", &cluster_ref));
        assert!(!is_reserved_identity("orders", &cluster_ref));
    }

    #[test]
    fn config_map_holds_both_files_and_owner() {
        let cluster = cluster();
        let cluster_ref = ClusterRef::of(&cluster).unwrap();
        let map = config_map(&cluster, &cluster_ref, &[]).unwrap();
        assert_eq!(map.metadata.name.as_deref(), Some("demo-config"));
        let data = map.data.unwrap();
        assert!(data.contains_key(NODE_CONFIG_KEY));
        assert!(data.contains_key(ACL_FILE_KEY));
        assert_eq!(map.metadata.owner_references.unwrap()[0].name, "demo");
    }
}
