//! The node StatefulSet: volumes, probes, Pod Security "restricted", anti-affinity, config-hash
//! annotation, pod template overrides.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{
            StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
            StatefulSetUpdateStrategy,
        },
        core::v1::{
            Affinity, Capabilities, ConfigMapVolumeSource, Container, ContainerPort,
            EmptyDirVolumeSource, EnvVar, EnvVarSource, HTTPGetAction, ObjectFieldSelector,
            PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm, PodAntiAffinity,
            PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceFieldSelector,
            SeccompProfile, SecretVolumeSource, SecurityContext, VolumeMount,
            VolumeResourceRequirements, WeightedPodAffinityTerm,
        },
    },
    apimachinery::pkg::{
        api::resource::Quantity,
        apis::meta::v1::{LabelSelector, ObjectMeta},
        util::intstr::IntOrString,
    },
};

use super::{ClusterRef, config::NODE_CONFIG_KEY};
use crate::crd::ProgLogCluster;

/// Client and Raft gRPC port (mutual TLS).
pub const GRPC_PORT: u16 = 8400;
/// Plaintext port: Prometheus metrics, `/healthz`, `/readyz` and `grpc.health.v1`.
pub const METRICS_PORT: u16 = 9400;
/// Where the data volume is mounted.
pub const DATA_DIR: &str = "/var/lib/proglog";
/// Where the node certificate Secret is mounted.
pub const TLS_DIR: &str = "/etc/proglog/tls";
/// Where the ConfigMap is mounted.
const CONFIG_DIR: &str = "/etc/proglog/config";
/// The pod's `terminationGracePeriodSeconds`: the node's shutdown (leadership hand-over ≤ 1.5 s,
/// then in-flight calls within its default 10 s `--shutdown-grace`, then closing the logs) with a
/// few seconds to spare, so the kubelet never SIGKILLs a node that is still closing its logs.
pub const TERMINATION_GRACE_SECONDS: i64 = 15;

/// The StatefulSet's update strategy: pods are replaced only when the operator deletes them.
pub const UPDATE_STRATEGY: &str = "OnDelete";
/// The label the StatefulSet controller puts on each pod: the revision of the template it was
/// created from (compared with the StatefulSet's `status.updateRevision`).
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// Annotation carrying the hash of the node configuration.
pub const CONFIG_HASH_ANNOTATION: &str = "proglog.dev/config-hash";
/// The unprivileged user and group the node runs as (distroless "nonroot").
const NODE_UID: i64 = 65532;

fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
}

fn env_from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field_path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The name of the node container.
pub const NODE_CONTAINER: &str = "proglog";

/// `PROGLOG_WORKER_THREADS` from the node container's CPU request through the downward API,
/// which rounds `requests.cpu` up to whole CPUs with divisor 1 (a request defaults to the limit
/// when only a limit is set). A node requesting one CPU then runs one async worker thread rather
/// than one per CPU of the host it lands on: fewer cross-thread wake-ups per produce (see the
/// node's `runtime` module).
fn worker_threads_from_cpu_request() -> EnvVar {
    EnvVar {
        name: "PROGLOG_WORKER_THREADS".to_owned(),
        value_from: Some(EnvVarSource {
            resource_field_ref: Some(ResourceFieldSelector {
                container_name: Some(NODE_CONTAINER.to_owned()),
                resource: "requests.cpu".to_owned(),
                divisor: Some(Quantity("1".to_owned())),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// Whether the spec gives the node container a CPU request or limit.
fn sets_cpu(cluster: &ProgLogCluster) -> bool {
    cluster.spec.resources.as_ref().is_some_and(|r| {
        [&r.requests, &r.limits]
            .into_iter()
            .any(|m| m.as_ref().is_some_and(|m| m.contains_key("cpu")))
    })
}

/// The node's settings as the `PROGLOG_*` environment variables of the node contract.
fn node_env(cluster: &ProgLogCluster, cluster_ref: &ClusterRef) -> Vec<EnvVar> {
    let mut env = vec![
        env_from_field("POD_NAME", "metadata.name"),
        env("PROGLOG_CONFIG", format!("{CONFIG_DIR}/{NODE_CONFIG_KEY}")),
        env("PROGLOG_DATA_DIR", DATA_DIR),
        env("PROGLOG_BIND_ADDR", format!("0.0.0.0:{GRPC_PORT}")),
        // Kubernetes expands $(POD_NAME) from the variable defined above.
        env(
            "PROGLOG_ADVERTISE_ADDR",
            format!(
                "$(POD_NAME).{}.{}.svc.cluster.local:{GRPC_PORT}",
                cluster_ref.headless_service_name(),
                cluster_ref.namespace
            ),
        ),
        env("PROGLOG_METRICS_ADDR", format!("0.0.0.0:{METRICS_PORT}")),
        env("PROGLOG_TLS_CERT", format!("{TLS_DIR}/tls.crt")),
        env("PROGLOG_TLS_KEY", format!("{TLS_DIR}/tls.key")),
        env("PROGLOG_TLS_CA", format!("{TLS_DIR}/ca.crt")),
        env(
            "PROGLOG_ACL_FILE",
            format!("{CONFIG_DIR}/{}", super::config::ACL_FILE_KEY),
        ),
        env("PROGLOG_LOG_FORMAT", "json"),
        // Membership is driven by the operator through the admin API.
        env("PROGLOG_RAFT", "true"),
    ];
    if sets_cpu(cluster) {
        env.push(worker_threads_from_cpu_request());
    }
    env
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("metrics".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn restricted_container_security() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(NODE_UID),
        run_as_group: Some(NODE_UID),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(runtime_default_seccomp()),
        ..SecurityContext::default()
    }
}

fn runtime_default_seccomp() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        ..SeccompProfile::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

fn node_container(cluster: &ProgLogCluster, cluster_ref: &ClusterRef) -> Container {
    let port = |name: &str, port: u16| ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    };
    Container {
        name: NODE_CONTAINER.to_owned(),
        image: Some(cluster.spec.image.clone()),
        image_pull_policy: Some(cluster.spec.image_pull_policy.as_str().to_owned()),
        env: Some(node_env(cluster, cluster_ref)),
        ports: Some(vec![port("grpc", GRPC_PORT), port("metrics", METRICS_PORT)]),
        resources: cluster.spec.resources.clone(),
        // Opening a large log (index recovery) can take a while: allow up to 5 minutes.
        startup_probe: Some(http_probe("/healthz", 2, 150)),
        liveness_probe: Some(http_probe("/healthz", 10, 3)),
        // `/readyz`: the node's real readiness (a Raft member that follows a live leader and
        // has applied what it heard committed; the body says why not). The same state backs
        // gRPC health on this port; HTTP keeps all three probes one mechanism.
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        // The node writes why it exited (e.g. its Raft core stopped) to the termination log;
        // a crash that wrote nothing still leaves its last log lines in the pod status.
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        security_context: Some(restricted_container_security()),
        volume_mounts: Some(vec![
            mount("data", DATA_DIR, false),
            mount("config", CONFIG_DIR, true),
            mount("tls", TLS_DIR, true),
            mount("tmp", "/tmp", false),
        ]),
        ..Container::default()
    }
}

/// Spread the pods over nodes when possible (preferred, so small clusters still schedule).
fn default_affinity(cluster_ref: &ClusterRef) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(cluster_ref.selector_labels()),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    }
}

fn pod_template(
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    config_hash: &str,
) -> PodTemplateSpec {
    let overrides = &cluster.spec.pod_template;
    let mut labels = overrides.labels.clone();
    labels.extend(cluster_ref.labels()); // ours win: the selector depends on them
    let mut annotations = overrides.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned());
    let secret_volume = SecretVolumeSource {
        secret_name: Some(cluster_ref.node_tls_secret_name()),
        default_mode: Some(0o440),
        ..SecretVolumeSource::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![node_container(cluster, cluster_ref)],
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(NODE_UID),
                run_as_group: Some(NODE_UID),
                fs_group: Some(NODE_UID),
                fs_group_change_policy: Some("OnRootMismatch".to_owned()),
                seccomp_profile: Some(runtime_default_seccomp()),
                ..PodSecurityContext::default()
            }),
            affinity: Some(
                overrides
                    .affinity
                    .clone()
                    .unwrap_or_else(|| default_affinity(cluster_ref)),
            ),
            tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
            node_selector: (!overrides.node_selector.is_empty())
                .then(|| overrides.node_selector.clone()),
            priority_class_name: overrides.priority_class_name.clone(),
            // The node never talks to the Kubernetes API.
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            // On SIGTERM the node hands its leadership over (at most 1.5 s), then lets in-flight
            // calls finish within its default --shutdown-grace of 10 s and closes its logs; an
            // idle node is gone in milliseconds. No preStop hook: the node needs no delay before
            // SIGTERM (a client that reaches it afterwards is refused and retries elsewhere).
            termination_grace_period_seconds: Some(TERMINATION_GRACE_SECONDS),
            volumes: Some(vec![
                k8s_openapi::api::core::v1::Volume {
                    name: "config".to_owned(),
                    config_map: Some(ConfigMapVolumeSource {
                        name: cluster_ref.config_map_name(),
                        ..ConfigMapVolumeSource::default()
                    }),
                    ..Default::default()
                },
                k8s_openapi::api::core::v1::Volume {
                    name: "tls".to_owned(),
                    secret: Some(secret_volume),
                    ..Default::default()
                },
                k8s_openapi::api::core::v1::Volume {
                    name: "tmp".to_owned(),
                    empty_dir: Some(EmptyDirVolumeSource::default()),
                    ..Default::default()
                },
            ]),
            ..PodSpec::default()
        }),
    }
}

fn volume_claim(cluster: &ProgLogCluster, cluster_ref: &ClusterRef) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".to_owned()),
            labels: Some(cluster_ref.selector_labels()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: cluster.spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(cluster.spec.storage.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The node StatefulSet with `replicas` pods (chosen by the membership planner, not copied from
/// the spec: a scale-down shrinks it only after Raft membership shrank).
pub fn stateful_set(
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    replicas: i32,
    config_hash: &str,
) -> StatefulSet {
    StatefulSet {
        metadata: cluster_ref.metadata(cluster_ref.name.clone()),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(cluster_ref.headless_service_name()),
            selector: LabelSelector {
                match_labels: Some(cluster_ref.selector_labels()),
                ..LabelSelector::default()
            },
            // Pods start independently: the operator, not pod ordering, sequences membership.
            pod_management_policy: Some("Parallel".to_owned()),
            // The operator, not the StatefulSet controller, decides when a pod moves to a new
            // template: followers first, the leader last after a leadership transfer, each only
            // while the Raft cluster keeps its quorum (crate::rollout). OnDelete makes the
            // controller re-create a deleted pod from the new template and otherwise wait.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some(UPDATE_STRATEGY.to_owned()),
                ..StatefulSetUpdateStrategy::default()
            }),
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        cluster.spec.storage.retention_on_delete.as_str().to_owned(),
                    ),
                    when_scaled: Some("Retain".to_owned()),
                },
            ),
            template: pod_template(cluster, cluster_ref, config_hash),
            volume_claim_templates: Some(vec![volume_claim(cluster, cluster_ref)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

#[cfg(test)]
#[path = "statefulset_tests.rs"]
mod tests;
