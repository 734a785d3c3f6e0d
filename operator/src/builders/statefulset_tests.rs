//! Unit tests of the StatefulSet builder.

use k8s_openapi::api::core::v1::Toleration;

use super::*;
use crate::builders::test_support::cluster;
use crate::crd::VolumeRetention;

fn build(cluster: &ProgLogCluster) -> StatefulSet {
    let cluster_ref = ClusterRef::of(cluster).unwrap();
    stateful_set(cluster, &cluster_ref, 3, "abc")
}

fn pod_spec(sts: &StatefulSet) -> PodSpec {
    sts.spec.clone().unwrap().template.spec.unwrap()
}

#[test]
fn pods_meet_pod_security_restricted() {
    let spec = pod_spec(&build(&cluster()));
    let pod_sc = spec.security_context.unwrap();
    assert_eq!(pod_sc.run_as_non_root, Some(true));
    assert_eq!(pod_sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    let sc = spec.containers[0].security_context.clone().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.capabilities.unwrap().drop.unwrap(), vec!["ALL"]);
    assert_eq!(sc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    assert_eq!(spec.automount_service_account_token, Some(false));
}

#[test]
fn probes_use_the_plaintext_port() {
    let container = pod_spec(&build(&cluster())).containers[0].clone();
    let liveness = container.liveness_probe.unwrap().http_get.unwrap();
    assert_eq!(liveness.path.as_deref(), Some("/healthz"));
    assert_eq!(liveness.port, IntOrString::String("metrics".to_owned()));
    let startup = container.startup_probe.unwrap().http_get.unwrap();
    assert_eq!(startup.path.as_deref(), Some("/healthz"));
    // Readiness is the node's real readiness (a member that follows a live leader and has
    // applied what it heard committed), not "the port is open".
    let readiness = container.readiness_probe.unwrap().http_get.unwrap();
    assert_eq!(readiness.path.as_deref(), Some("/readyz"));
    assert_eq!(readiness.port, IntOrString::String("metrics".to_owned()));
    // The node writes why it exited to the termination log; a panic that wrote nothing still
    // shows its last log lines.
    assert_eq!(
        container.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
}

#[test]
fn env_follows_the_node_contract() {
    let container = pod_spec(&build(&cluster())).containers[0].clone();
    let env: BTreeMap<String, Option<String>> = container
        .env
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    assert_eq!(
        env["PROGLOG_ADVERTISE_ADDR"].as_deref(),
        Some("$(POD_NAME).demo-headless.logs.svc.cluster.local:8400")
    );
    assert_eq!(env["PROGLOG_DATA_DIR"].as_deref(), Some(DATA_DIR));
    assert_eq!(
        env["PROGLOG_CONFIG"].as_deref(),
        Some("/etc/proglog/config/proglog.toml")
    );
    assert_eq!(
        env["PROGLOG_TLS_CA"].as_deref(),
        Some("/etc/proglog/tls/ca.crt")
    );
    assert!(env.contains_key("PROGLOG_ACL_FILE"));
    assert_eq!(env["PROGLOG_RAFT"].as_deref(), Some("true"));
    // POD_NAME is defined before it is referenced, as Kubernetes requires.
    assert_eq!(
        container_env_names(&build(&cluster()))[0],
        "POD_NAME".to_owned()
    );
}

fn container_env_names(sts: &StatefulSet) -> Vec<String> {
    pod_spec(sts).containers[0]
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

#[test]
fn statefulset_shape() {
    let mut cluster = cluster();
    cluster.spec.storage.size = "20Gi".to_owned();
    cluster.spec.storage.storage_class_name = Some("fast".to_owned());
    cluster.spec.storage.retention_on_delete = VolumeRetention::Delete;
    let sts = build(&cluster);
    assert_eq!(
        sts.metadata.owner_references.as_ref().unwrap()[0].name,
        "demo"
    );
    let spec = sts.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("demo-headless"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    // The operator rolls the pods itself (crate::rollout): the controller must not.
    let strategy = spec.update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("OnDelete"));
    assert_eq!(strategy.rolling_update, None);
    let retention = spec.persistent_volume_claim_retention_policy.unwrap();
    assert_eq!(retention.when_deleted.as_deref(), Some("Delete"));
    assert_eq!(retention.when_scaled.as_deref(), Some("Retain"));
    let claim = &spec.volume_claim_templates.unwrap()[0];
    let claim_spec = claim.spec.clone().unwrap();
    assert_eq!(claim_spec.storage_class_name.as_deref(), Some("fast"));
    assert_eq!(
        claim_spec.resources.unwrap().requests.unwrap()["storage"],
        Quantity("20Gi".to_owned())
    );
    let template_labels = spec.template.metadata.unwrap().labels.unwrap();
    for (key, value) in spec.selector.match_labels.unwrap() {
        assert_eq!(template_labels[&key], value, "selector label {key}");
    }
}

#[test]
fn config_hash_is_a_template_annotation() {
    let cluster = cluster();
    let cluster_ref = ClusterRef::of(&cluster).unwrap();
    let a = stateful_set(&cluster, &cluster_ref, 3, "hash-a");
    let b = stateful_set(&cluster, &cluster_ref, 3, "hash-b");
    let annotation = |sts: &StatefulSet| {
        sts.spec
            .clone()
            .unwrap()
            .template
            .metadata
            .unwrap()
            .annotations
            .unwrap()[CONFIG_HASH_ANNOTATION]
            .clone()
    };
    assert_eq!(annotation(&a), "hash-a");
    assert_ne!(annotation(&a), annotation(&b));
}

#[test]
fn default_affinity_prefers_spreading_over_nodes() {
    let affinity = pod_spec(&build(&cluster())).affinity.unwrap();
    let terms = affinity
        .pod_anti_affinity
        .unwrap()
        .preferred_during_scheduling_ignored_during_execution
        .unwrap();
    assert_eq!(
        terms[0].pod_affinity_term.topology_key,
        "kubernetes.io/hostname"
    );
}

#[test]
fn overrides_are_applied_but_cannot_break_the_selector() {
    let mut cluster = cluster();
    let overrides = &mut cluster.spec.pod_template;
    overrides
        .labels
        .insert("team".to_owned(), "logs".to_owned());
    overrides
        .labels
        .insert("app.kubernetes.io/instance".to_owned(), "hijack".to_owned());
    overrides
        .node_selector
        .insert("disk".to_owned(), "ssd".to_owned());
    overrides.priority_class_name = Some("critical".to_owned());
    overrides.tolerations.push(Toleration {
        key: Some("dedicated".to_owned()),
        operator: Some("Exists".to_owned()),
        ..Toleration::default()
    });
    overrides.affinity = Some(Affinity::default());
    let sts = build(&cluster);
    let template = sts.spec.unwrap().template;
    let labels = template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["team"], "logs");
    assert_eq!(labels["app.kubernetes.io/instance"], "demo");
    let spec = template.spec.unwrap();
    assert_eq!(spec.node_selector.unwrap()["disk"], "ssd");
    assert_eq!(spec.priority_class_name.as_deref(), Some("critical"));
    assert_eq!(spec.tolerations.unwrap().len(), 1);
    assert_eq!(spec.affinity, Some(Affinity::default()));
}

#[test]
fn worker_threads_follow_the_cpu_request_only_when_one_is_set() {
    use k8s_openapi::api::core::v1::ResourceRequirements;
    let worker_env = |cluster: &ProgLogCluster| {
        pod_spec(&build(cluster)).containers[0]
            .env
            .clone()
            .unwrap()
            .into_iter()
            .find(|e| e.name == "PROGLOG_WORKER_THREADS")
    };
    // No CPU in the spec: the node sizes its runtime to the CPUs it sees.
    assert_eq!(worker_env(&cluster()), None);
    let mut memory_only = cluster();
    memory_only.spec.resources = Some(ResourceRequirements {
        requests: Some(BTreeMap::from([(
            "memory".to_owned(),
            Quantity("1Gi".to_owned()),
        )])),
        ..ResourceRequirements::default()
    });
    assert_eq!(worker_env(&memory_only), None);

    for field in ["requests", "limits"] {
        let mut sized = cluster();
        let cpu = Some(BTreeMap::from([(
            "cpu".to_owned(),
            Quantity("500m".to_owned()),
        )]));
        sized.spec.resources = Some(if field == "requests" {
            ResourceRequirements {
                requests: cpu,
                ..ResourceRequirements::default()
            }
        } else {
            ResourceRequirements {
                limits: cpu,
                ..ResourceRequirements::default()
            }
        });
        let env = worker_env(&sized).expect("PROGLOG_WORKER_THREADS is set");
        let field_ref = env.value_from.unwrap().resource_field_ref.unwrap();
        assert_eq!(field_ref.resource, "requests.cpu", "{field}");
        assert_eq!(field_ref.container_name.as_deref(), Some(NODE_CONTAINER));
        assert_eq!(field_ref.divisor, Some(Quantity("1".to_owned())));
    }
}
