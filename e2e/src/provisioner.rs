//! A tiny dynamic provisioner of host directories, for the single-node local cluster built from
//! host processes (`scripts/local-cluster/`).
//!
//! ProgLog's StatefulSets claim storage through PersistentVolumeClaims, and somebody has to turn
//! those claims into PersistentVolumes. A cloud cluster has a CSI driver; kind ships rancher's
//! local-path-provisioner. Here there is no registry to pull its image from, so this module does
//! the same job from a host process (`local-path-provisioner` binary):
//!
//! - a Pending claim whose StorageClass names our provisioner gets a directory
//!   `<root>/<namespace>_<claim>_<uid>` and a hostPath PersistentVolume pre-bound to the claim
//!   (`claimRef`); kube-controller-manager's PV controller then completes the binding;
//! - a Released volume of ours with reclaim policy `Delete` loses its directory, then its
//!   PersistentVolume object; `Retain` keeps both.
//!
//! Sizes are not enforced: a directory has no capacity, so the request is only recorded on the
//! volume, and a claim growing (`allowVolumeExpansion`) is logged and otherwise ignored.

use std::{
    collections::BTreeMap,
    fs::{self, File, Permissions},
    io,
    os::unix::fs::PermissionsExt as _,
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use futures::{FutureExt as _, StreamExt as _};
use k8s_openapi::api::{
    core::v1::{
        HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
        ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
        VolumeNodeAffinity,
    },
    storage::v1::StorageClass,
};
use kube::{
    Api, Client, Resource as _, ResourceExt as _,
    api::{DeleteParams, ObjectMeta, PostParams, Preconditions},
    runtime::{
        controller::{Action, Controller},
        watcher,
    },
};

/// Annotation the PV controller of kube-controller-manager sets on a claim to hand it to an
/// external provisioner (the one named by the claim's StorageClass).
pub const STORAGE_PROVISIONER_ANNOTATION: &str = "volume.kubernetes.io/storage-provisioner";
/// Its deprecated spelling, still set alongside by kube-controller-manager.
pub const BETA_STORAGE_PROVISIONER_ANNOTATION: &str =
    "volume.beta.kubernetes.io/storage-provisioner";
/// Annotation the scheduler sets on a claim of a `WaitForFirstConsumer` class once it has picked
/// the node of the first pod using it.
pub const SELECTED_NODE_ANNOTATION: &str = "volume.kubernetes.io/selected-node";
/// Annotation marking the volumes a provisioner created (and so may delete).
pub const PROVISIONED_BY_ANNOTATION: &str = "pv.kubernetes.io/provisioned-by";
/// Default `--provisioner-name`.
pub const DEFAULT_PROVISIONER_NAME: &str = "proglog.dev/local-path";

/// Retry interval after a transient failure (API error, StorageClass not created yet).
const RETRY: Duration = Duration::from_secs(5);

/// A provisioning or deletion step that failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionerError {
    /// A Kubernetes API call failed (retried).
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A host filesystem operation failed (retried).
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
    /// The claim asks for something a host directory cannot be (block device, clone, ...);
    /// logged, not retried until the claim changes.
    #[error("cannot provision {claim}: {reason}")]
    Unsupported {
        /// `namespace/name` of the claim.
        claim: String,
        /// Why.
        reason: String,
    },
    /// A volume of ours points outside `--root`: never deleted.
    #[error("refusing to delete {}: not a volume directory directly under {}", path.display(), root.display())]
    OutsideRoot {
        /// The volume's hostPath.
        path: PathBuf,
        /// The provisioner's root.
        root: PathBuf,
    },
    /// A blocking filesystem task panicked or was cancelled.
    #[error("filesystem task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Who the provisioner is and where it puts volumes.
#[derive(Clone, Debug)]
pub struct ProvisionerConfig {
    /// Provisioner name matched against `StorageClass.provisioner`.
    pub name: String,
    /// Absolute, canonical host directory holding one sub-directory per volume.
    pub root: PathBuf,
    /// The node whose disk holds the volumes (the PV's node affinity).
    pub node_name: String,
}

/// Name of a claim's directory under the root: unique per claim object (the uid), and readable
/// by a human looking at the host (namespace and name). Kubernetes names are DNS labels and
/// subdomains, so they contain no `/` and no `_`.
pub fn volume_dir_name(namespace: &str, claim: &str, uid: &str) -> String {
    format!("{namespace}_{claim}_{uid}")
}

/// Name of the PersistentVolume provisioned for the claim of this uid (the convention of the
/// external provisioners, so `kubectl get pv` looks familiar).
pub fn volume_name(claim_uid: &str) -> String {
    format!("pvc-{claim_uid}")
}

/// Whether `dir` is a volume directory this provisioner may create or delete: an entry directly
/// inside `root`. Purely lexical (`root` is canonical; symbolic links are never followed by the
/// removal), and strict, so that a hand-edited PersistentVolume can never make us delete `/`.
pub fn is_volume_dir(root: &Path, dir: &Path) -> bool {
    dir.is_absolute()
        && !dir.components().any(|c| c == Component::ParentDir)
        && dir.file_name().is_some()
        && dir.parent() == Some(root)
}

/// Whether a claim is waiting for a volume that could be ours, judged from the claim alone (its
/// StorageClass is checked afterwards): alive, Pending, not bound or pre-bound to a volume, and
/// not handed by kube-controller-manager to another provisioner.
pub fn wants_volume(claim: &PersistentVolumeClaim, provisioner: &str) -> bool {
    let pending = claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_none_or(|phase| phase == "Pending");
    let unbound = claim
        .spec
        .as_ref()
        .is_none_or(|s| s.volume_name.as_deref().unwrap_or("").is_empty());
    let annotations = claim.annotations();
    let handed_to = annotations
        .get(STORAGE_PROVISIONER_ANNOTATION)
        .or_else(|| annotations.get(BETA_STORAGE_PROVISIONER_ANNOTATION));
    claim.meta().deletion_timestamp.is_none()
        && pending
        && unbound
        && handed_to.is_none_or(|name| name == provisioner)
}

/// The PersistentVolume for `claim` of `class`, pre-bound to the claim.
pub fn build_volume(
    config: &ProvisionerConfig,
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
) -> Result<PersistentVolume, ProvisionerError> {
    let namespace = claim.namespace().unwrap_or_default();
    let name = claim.name_any();
    let unsupported = |reason: &str| ProvisionerError::Unsupported {
        claim: format!("{namespace}/{name}"),
        reason: reason.to_owned(),
    };
    let uid = claim
        .uid()
        .ok_or_else(|| unsupported("the claim has no uid"))?;
    let spec = claim.spec.clone().unwrap_or_default();
    if spec
        .volume_mode
        .as_deref()
        .is_some_and(|m| m != "Filesystem")
    {
        return Err(unsupported("only volumeMode Filesystem is supported"));
    }
    // A claim with a data source expects its content (clone, snapshot): an empty directory
    // would be silent data loss, so refuse as the external provisioners do.
    if spec.data_source.is_some() || spec.data_source_ref.is_some() {
        return Err(unsupported(
            "data sources (clones, snapshots) are not supported",
        ));
    }
    // A selector asks for an existing volume with matching labels, never a new one.
    if spec.selector.is_some() {
        return Err(unsupported("claims with a selector are not supported"));
    }
    let request = spec
        .resources
        .and_then(|r| r.requests)
        .and_then(|requests| requests.get("storage").cloned())
        .ok_or_else(|| unsupported("the claim requests no storage size"))?;
    let path = config.root.join(volume_dir_name(&namespace, &name, &uid));

    Ok(PersistentVolume {
        metadata: ObjectMeta {
            name: Some(volume_name(&uid)),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY_ANNOTATION.to_owned(),
                config.name.clone(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            // Recorded, not enforced: a directory has no size.
            capacity: Some(BTreeMap::from([("storage".to_owned(), request)])),
            access_modes: spec.access_modes,
            host_path: Some(HostPathVolumeSource {
                path: path.to_string_lossy().into_owned(),
                // The directory is created (0777) before the volume; OrCreate only keeps a
                // wiped host directory from failing the mount.
                type_: Some("DirectoryOrCreate".to_owned()),
            }),
            storage_class_name: class.metadata.name.clone(),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".to_owned()),
            ),
            volume_mode: Some("Filesystem".to_owned()),
            // The data lives on this node's disk: pods using it must run here.
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: "kubernetes.io/hostname".to_owned(),
                            operator: "In".to_owned(),
                            values: Some(vec![config.node_name.clone()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            // Pre-bound: kube-controller-manager binds the claim to exactly this volume.
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".to_owned()),
                kind: Some("PersistentVolumeClaim".to_owned()),
                namespace: Some(namespace),
                name: Some(name),
                uid: Some(uid),
                ..ObjectReference::default()
            }),
            ..PersistentVolumeSpec::default()
        }),
        status: None,
    })
}

/// Creates a volume directory (an existing one is reused: provisioning is retried until the
/// volume object exists).
fn create_volume_dir(root: &Path, dir: &Path) -> Result<(), ProvisionerError> {
    let io_error = |op: &'static str| {
        let path = dir.to_owned();
        move |source| ProvisionerError::Io { op, path, source }
    };
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            // Only reuse a real directory: a symbolic link planted there would make the chmod
            // below (which follows links) open up some other directory.
            if !fs::symlink_metadata(dir)
                .map_err(io_error("inspecting"))?
                .is_dir()
            {
                return Err(io_error("reusing")(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a directory",
                )));
            }
        }
        Err(e) => return Err(io_error("creating")(e)),
    }
    // World-writable, set explicitly so the umask cannot narrow it: pods run as the non-root
    // uid 65532, and hostPath volumes get no fsGroup ownership change from the kubelet, so the
    // directory must be writable by any uid. Rancher's local-path-provisioner makes the same
    // choice (its helper pod runs `mkdir -m 0777`).
    fs::set_permissions(dir, Permissions::from_mode(0o777)).map_err(io_error("chmod"))?;
    sync_dir(root)
}

/// Removes a volume directory and everything in it (an absent one is fine: deletion is retried
/// until the volume object is gone).
fn remove_volume_dir(root: &Path, dir: &Path) -> Result<(), ProvisionerError> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(ProvisionerError::Io {
                op: "removing",
                path: dir.to_owned(),
                source,
            });
        }
    }
    sync_dir(root)
}

/// fsyncs a directory, making the creation or removal of its entries durable: a volume object
/// must never outlive a host crash that forgot its directory.
fn sync_dir(dir: &Path) -> Result<(), ProvisionerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| ProvisionerError::Io {
            op: "fsyncing",
            path: dir.to_owned(),
            source,
        })
}

/// Runs the provisioner until SIGTERM or SIGINT: one controller for claims (provisioning), one
/// for volumes (deletion).
pub async fn run(client: Client, config: ProvisionerConfig) {
    let ctx = Arc::new(Context { client, config });
    let shutdown = shutdown_signal().shared();
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown.clone())
    .run(reconcile_claim, retry, ctx.clone())
    .boxed();
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(shutdown)
    .run(reconcile_volume, retry, ctx)
    .boxed();
    // Failures are logged by `retry`; what is left here are watch errors, retried by kube.
    futures::stream::select(
        claims.map(|r| r.map(|_| ()).map_err(|e| e.to_string())),
        volumes.map(|r| r.map(|_| ()).map_err(|e| e.to_string())),
    )
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "controller event");
        }
    })
    .await;
}

/// Resolves on the first SIGTERM (what the cluster script sends) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(error) => {
            tracing::error!(%error, "cannot handle SIGTERM; stop with SIGINT");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, stopping"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, stopping"),
    }
}

/// What both controllers share.
struct Context {
    client: Client,
    config: ProvisionerConfig,
}

fn retry<K>(object: Arc<K>, error: &ProvisionerError, _ctx: Arc<Context>) -> Action
where
    K: kube::Resource<DynamicType = ()>,
{
    tracing::warn!(object = %kube::runtime::reflector::ObjectRef::from_obj(&*object), %error, "will retry");
    Action::requeue(RETRY)
}

/// Provisions a volume for `claim` if it is ours to provision.
async fn reconcile_claim(
    claim: Arc<PersistentVolumeClaim>,
    ctx: Arc<Context>,
) -> Result<Action, ProvisionerError> {
    let config = &ctx.config;
    let key = format!(
        "{}/{}",
        claim.namespace().unwrap_or_default(),
        claim.name_any()
    );
    if !wants_volume(&claim, &config.name) {
        log_resize(&key, &claim, &config.name);
        return Ok(Action::await_change());
    }
    // Unset: the DefaultStorageClass admission plugin or kube-controller-manager assigns the
    // default class later (a change we will see). Empty: explicitly no class, not ours.
    let Some(class_name) = claim
        .spec
        .as_ref()
        .and_then(|s| s.storage_class_name.as_deref())
        .filter(|c| !c.is_empty())
    else {
        return Ok(Action::await_change());
    };
    let class = match Api::<StorageClass>::all(ctx.client.clone())
        .get_opt(class_name)
        .await?
    {
        Some(class) => class,
        // Possibly created later (or another provisioner's typo): look again, slowly.
        None => {
            tracing::debug!(claim = %key, class = class_name, "StorageClass not found");
            return Ok(Action::requeue(RETRY * 6));
        }
    };
    if class.provisioner != config.name {
        return Ok(Action::await_change());
    }
    // WaitForFirstConsumer: provision only once the scheduler has picked a node, and only if it
    // is ours (the volume could not be used anywhere else).
    if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") {
        match claim.annotations().get(SELECTED_NODE_ANNOTATION) {
            None => return Ok(Action::await_change()),
            Some(node) if *node != config.node_name => {
                tracing::warn!(claim = %key, node, "scheduled on a node this provisioner does not serve");
                return Ok(Action::await_change());
            }
            Some(_) => {}
        }
    }

    let volume = match build_volume(config, &claim, &class) {
        Ok(volume) => volume,
        Err(error @ ProvisionerError::Unsupported { .. }) => {
            // Retrying cannot help; the claim changing triggers a new attempt.
            tracing::warn!(%error, "not provisioning");
            return Ok(Action::await_change());
        }
        Err(error) => return Err(error),
    };
    let dir = PathBuf::from(
        volume
            .spec
            .as_ref()
            .and_then(|s| s.host_path.as_ref())
            .map(|h| h.path.clone())
            .unwrap_or_default(),
    );
    if !is_volume_dir(&config.root, &dir) {
        return Err(ProvisionerError::OutsideRoot {
            path: dir,
            root: config.root.clone(),
        });
    }
    let root = config.root.clone();
    let dir_for_task = dir.clone();
    tokio::task::spawn_blocking(move || create_volume_dir(&root, &dir_for_task)).await??;

    let volume_name = volume.name_any();
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .create(&PostParams::default(), &volume)
        .await
    {
        Ok(_) => {
            tracing::info!(claim = %key, volume = %volume_name, dir = %dir.display(), "provisioned")
        }
        // Already created by an earlier attempt; kube-controller-manager is binding it.
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            tracing::debug!(claim = %key, volume = %volume_name, "volume already exists")
        }
        Err(error) => return Err(error.into()),
    }
    Ok(Action::await_change())
}

/// Logs a request to grow a bound claim of ours: there is nothing to resize on a directory.
fn log_resize(key: &str, claim: &PersistentVolumeClaim, provisioner: &str) {
    let ours = claim
        .annotations()
        .get(STORAGE_PROVISIONER_ANNOTATION)
        .is_some_and(|name| name == provisioner);
    if !ours {
        return;
    }
    let requested = claim
        .spec
        .as_ref()
        .and_then(|s| s.resources.as_ref())
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage"));
    let capacity = claim
        .status
        .as_ref()
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"));
    // Textual comparison: the capacity is copied from the request at provisioning, so any
    // difference means the request was edited since.
    if let (Some(requested), Some(capacity)) = (requested, capacity)
        && requested != capacity
    {
        tracing::info!(claim = key, requested = %requested.0, capacity = %capacity.0,
            "resize requested: ignored, host directory sizes are not enforced");
    }
}

/// Deletes a Released volume of ours whose reclaim policy is `Delete`: directory first, then the
/// object (so a crash in between leaves a volume object to retry with, never a lost directory).
async fn reconcile_volume(
    volume: Arc<PersistentVolume>,
    ctx: Arc<Context>,
) -> Result<Action, ProvisionerError> {
    let config = &ctx.config;
    if volume.annotations().get(PROVISIONED_BY_ANNOTATION) != Some(&config.name)
        || volume.meta().deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let phase = volume.status.as_ref().and_then(|s| s.phase.as_deref());
    if phase != Some("Released") {
        return Ok(Action::await_change());
    }
    let name = volume.name_any();
    let spec = volume.spec.clone().unwrap_or_default();
    let policy = spec.persistent_volume_reclaim_policy.as_deref();
    if policy != Some("Delete") {
        tracing::info!(volume = %name, policy, "released volume kept (reclaim policy is not Delete)");
        return Ok(Action::await_change());
    }
    let dir = PathBuf::from(spec.host_path.map(|h| h.path).unwrap_or_default());
    if !is_volume_dir(&config.root, &dir) {
        // Not retried: only a human can fix the volume object.
        let error = ProvisionerError::OutsideRoot {
            path: dir,
            root: config.root.clone(),
        };
        tracing::error!(volume = %name, %error, "not deleting");
        return Ok(Action::await_change());
    }
    let root = config.root.clone();
    let dir_for_task = dir.clone();
    tokio::task::spawn_blocking(move || remove_volume_dir(&root, &dir_for_task)).await??;

    // The uid precondition: delete this volume object, never a later one of the same name.
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: volume.uid(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match Api::<PersistentVolume>::all(ctx.client.clone())
        .delete(&name, &params)
        .await
    {
        Ok(_) => tracing::info!(volume = %name, dir = %dir.display(), "deleted"),
        Err(kube::Error::Api(status)) if status.is_not_found() => {}
        Err(error) => return Err(error.into()),
    }
    Ok(Action::await_change())
}

#[cfg(test)]
#[path = "provisioner_tests.rs"]
mod tests;
