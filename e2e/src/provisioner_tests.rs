//! Unit tests of the provisioner's pure parts: directory and volume names, the volume built from a
//! claim and its StorageClass, and the under-root check.

use k8s_openapi::{
    api::core::v1::{
        PersistentVolumeClaimSpec, PersistentVolumeClaimStatus, VolumeResourceRequirements,
    },
    apimachinery::pkg::api::resource::Quantity,
};

use super::*;

fn config() -> ProvisionerConfig {
    ProvisionerConfig {
        name: DEFAULT_PROVISIONER_NAME.to_owned(),
        root: PathBuf::from("/var/lib/proglog-volumes"),
        node_name: "node-1".to_owned(),
    }
}

fn claim() -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            namespace: Some("logs".to_owned()),
            name: Some("data-log-0".to_owned()),
            uid: Some("0b7c2c1e-5f0a-4a8e-9c57-2f3b1a6d9e01".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
            storage_class_name: Some("local-path".to_owned()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity("1Gi".to_owned()),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Pending".to_owned()),
            ..PersistentVolumeClaimStatus::default()
        }),
    }
}

fn class(reclaim_policy: Option<&str>) -> StorageClass {
    StorageClass {
        metadata: ObjectMeta {
            name: Some("local-path".to_owned()),
            ..ObjectMeta::default()
        },
        provisioner: DEFAULT_PROVISIONER_NAME.to_owned(),
        reclaim_policy: reclaim_policy.map(str::to_owned),
        ..StorageClass::default()
    }
}

#[test]
fn directory_name_is_namespace_claim_and_uid() {
    assert_eq!(
        volume_dir_name("logs", "data-log-0", "abc-123"),
        "logs_data-log-0_abc-123"
    );
    assert_eq!(volume_name("abc-123"), "pvc-abc-123");
}

#[test]
fn volume_is_a_pre_bound_host_path_on_this_node() {
    let pv = build_volume(&config(), &claim(), &class(None)).unwrap();
    assert_eq!(
        pv.metadata.name.as_deref(),
        Some("pvc-0b7c2c1e-5f0a-4a8e-9c57-2f3b1a6d9e01")
    );
    assert_eq!(
        pv.annotations()
            .get(PROVISIONED_BY_ANNOTATION)
            .map(String::as_str),
        Some(DEFAULT_PROVISIONER_NAME)
    );
    let spec = pv.spec.unwrap();
    assert_eq!(
        spec.capacity.unwrap()["storage"],
        Quantity("1Gi".to_owned())
    );
    assert_eq!(spec.access_modes.unwrap(), ["ReadWriteOnce"]);
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.volume_mode.as_deref(), Some("Filesystem"));
    let host_path = spec.host_path.unwrap();
    assert_eq!(
        host_path.path,
        "/var/lib/proglog-volumes/logs_data-log-0_0b7c2c1e-5f0a-4a8e-9c57-2f3b1a6d9e01"
    );
    assert_eq!(host_path.type_.as_deref(), Some("DirectoryOrCreate"));
    let term = &spec
        .node_affinity
        .unwrap()
        .required
        .unwrap()
        .node_selector_terms[0];
    let requirement = &term.match_expressions.as_ref().unwrap()[0];
    assert_eq!(requirement.key, "kubernetes.io/hostname");
    assert_eq!(requirement.operator, "In");
    assert_eq!(
        requirement.values.as_deref(),
        Some(&["node-1".to_owned()][..])
    );
    let claim_ref = spec.claim_ref.unwrap();
    assert_eq!(claim_ref.api_version.as_deref(), Some("v1"));
    assert_eq!(claim_ref.kind.as_deref(), Some("PersistentVolumeClaim"));
    assert_eq!(claim_ref.namespace.as_deref(), Some("logs"));
    assert_eq!(claim_ref.name.as_deref(), Some("data-log-0"));
    assert_eq!(
        claim_ref.uid.as_deref(),
        Some("0b7c2c1e-5f0a-4a8e-9c57-2f3b1a6d9e01")
    );
}

#[test]
fn volume_takes_the_reclaim_policy_of_its_class() {
    let pv = build_volume(&config(), &claim(), &class(Some("Retain"))).unwrap();
    assert_eq!(
        pv.spec.unwrap().persistent_volume_reclaim_policy.as_deref(),
        Some("Retain")
    );
}

#[test]
fn block_claims_and_claims_without_a_size_are_refused() {
    let mut block = claim();
    block.spec.as_mut().unwrap().volume_mode = Some("Block".to_owned());
    assert!(matches!(
        build_volume(&config(), &block, &class(None)),
        Err(ProvisionerError::Unsupported { .. })
    ));
    let mut sizeless = claim();
    sizeless.spec.as_mut().unwrap().resources = None;
    assert!(matches!(
        build_volume(&config(), &sizeless, &class(None)),
        Err(ProvisionerError::Unsupported { .. })
    ));
}

#[test]
fn only_pending_unbound_claims_not_handed_elsewhere_want_a_volume() {
    let name = DEFAULT_PROVISIONER_NAME;
    assert!(wants_volume(&claim(), name));

    let mut handed_to_us = claim();
    handed_to_us
        .annotations_mut()
        .insert(STORAGE_PROVISIONER_ANNOTATION.to_owned(), name.to_owned());
    assert!(wants_volume(&handed_to_us, name));

    let mut handed_elsewhere = claim();
    handed_elsewhere.annotations_mut().insert(
        STORAGE_PROVISIONER_ANNOTATION.to_owned(),
        "rancher.io/local-path".to_owned(),
    );
    assert!(!wants_volume(&handed_elsewhere, name));

    let mut bound = claim();
    bound.spec.as_mut().unwrap().volume_name = Some("pvc-x".to_owned());
    assert!(!wants_volume(&bound, name));

    let mut lost = claim();
    lost.status.as_mut().unwrap().phase = Some("Lost".to_owned());
    assert!(!wants_volume(&lost, name));
}

#[test]
fn only_entries_directly_under_the_root_are_volume_dirs() {
    let root = Path::new("/var/lib/proglog-volumes");
    assert!(is_volume_dir(root, &root.join("logs_data-log-0_abc")));
    assert!(!is_volume_dir(root, root));
    assert!(!is_volume_dir(root, Path::new("/")));
    assert!(!is_volume_dir(root, Path::new("/var/lib")));
    assert!(!is_volume_dir(
        root,
        Path::new("/var/lib/proglog-volumes-2/x")
    ));
    assert!(!is_volume_dir(root, &root.join("a/b")));
    assert!(!is_volume_dir(root, &root.join("..")));
    assert!(!is_volume_dir(root, &root.join("../proglog-volumes/x/..")));
    assert!(!is_volume_dir(root, Path::new("var/lib/proglog-volumes/x")));
    assert!(!is_volume_dir(root, Path::new("")));
}

#[test]
fn volume_dirs_are_world_writable_and_removable() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("ns_claim_uid");
    create_volume_dir(root.path(), &dir).unwrap();
    fs::write(dir.join("data"), b"x").unwrap();
    // Idempotent: a retry after a failed volume creation reuses the directory.
    create_volume_dir(root.path(), &dir).unwrap();
    // Not 0755 as the usual umask 022 would leave it (provisioner-check.sh runs the binary
    // under umask 077 too).
    let mode = fs::metadata(&dir).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o777);

    remove_volume_dir(root.path(), &dir).unwrap();
    assert!(!dir.exists());
    remove_volume_dir(root.path(), &dir).unwrap();
}

#[test]
fn a_symlink_is_never_reused_as_a_volume_dir() {
    let root = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let dir = root.path().join("ns_claim_uid");
    std::os::unix::fs::symlink(elsewhere.path(), &dir).unwrap();
    assert!(create_volume_dir(root.path(), &dir).is_err());
}
