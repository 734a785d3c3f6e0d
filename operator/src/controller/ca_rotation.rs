//! Drives a CA rotation (the phases of [`crate::ca_rotation`]) from the controller: every pass
//! makes the leaf Secrets current for the stored [`CaSet`], proves over TLS what each running
//! node has loaded, and writes the next phase into the CA Secret once every node is there.
//!
//! The proofs are handshakes with throwaway client certificates (identity `proglog-operator`):
//! in TrustBoth a certificate of the new CA is accepted only once the node trusts the bundle;
//! in Reissue a client trusting only the new CA connects only once the node serves the new
//! certificate; in DropOld a certificate of the old CA is refused only once the node dropped
//! it. A pod that is not running needs no proof: it mounts the current Secrets when it starts.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt, api::ListParams};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

pub use super::certificates::TlsState;
pub use super::nodes::ProbeTarget;
use super::{
    ReconcileError,
    certificates::{self, Leaf, ensure_leaf, leaf_lifetime},
    nodes::running_pods,
    users,
};
use crate::{
    admin::{AdminCredentials, AdminError},
    builders::{ClusterRef, OPERATOR_IDENTITY, is_reserved_identity},
    ca::{self, CertificateInfo, KeyedCertificate},
    ca_rotation::{CaSet, Phase, ROTATE_ANNOTATION, rotation_trigger},
    crd::{ProgLogCluster, TrustedCa},
    user_crd::ProgLogUser,
};

/// Ensures every TLS Secret of the cluster and advances a CA rotation by at most one phase.
/// `pods` is how many pod FQDNs the node certificate must name; `targets` are the running
/// nodes whose TLS state gates each phase (`None`: the cluster's running pods, looked up only
/// while a rotation runs).
pub async fn ensure_certificates(
    client: &Client,
    cluster: &ProgLogCluster,
    pods: u32,
    targets: Option<&[ProbeTarget]>,
    timeout: Duration,
) -> Result<TlsState, ReconcileError> {
    let cluster_ref = ClusterRef::of(cluster)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &cluster_ref.namespace);
    let now = OffsetDateTime::now_utc();
    let lifetime = leaf_lifetime(cluster);
    let mut issued = Vec::new();
    let mut rotation_notes = Vec::new();
    let (mut set, managed) =
        certificates::ensure_ca(&api, cluster, &cluster_ref, now, &mut issued).await?;
    let requested = cluster.annotations().get(ROTATE_ANNOTATION).cloned();
    let signing_info = CertificateInfo::parse(&set.signing.cert_pem)?;
    if managed
        && let Some((reason, token)) =
            rotation_trigger(&set, requested.as_deref(), &signing_info, now)
    {
        let next = ca::generate_ca_generation(&cluster_ref, set.generation + 1, now)?;
        set = set.start(next, token);
        certificates::store_ca(&api, &cluster_ref, &set).await?;
        rotation_notes.push((
            Phase::TrustBoth,
            format!(
                "CA rotation started because {reason}: CA generation {} is trusted next to \
             generation {} (phase TrustBoth)",
                set.generation + 1,
                set.generation
            ),
        ));
    }

    let node_name = cluster_ref.node_tls_secret_name();
    let node_sans = ca::node_sans(&cluster_ref, pods);
    let node = ensure_leaf(
        &api,
        Leaf {
            name: &node_name,
            metadata: cluster_ref.metadata(node_name.clone()),
            expected_sans: &node_sans,
            accept_previous: false,
        },
        &set,
        now,
        &mut issued,
        |ca| ca::issue_node_certificate(ca, &cluster_ref, pods, now, lifetime),
    )
    .await?;
    // Idle: the user controller keeps its Secrets current. Rotating: this pass must know
    // that every user Secret holds the bundle and, from Reissue on, the new CA's certificate.
    if set.phase != Phase::Idle {
        ensure_user_leaves(client, &api, &cluster_ref, &set, now, lifetime, &mut issued).await?;
    }

    let waiting = match (set.phase, targets) {
        (Phase::Idle, _) => Vec::new(),
        (_, Some(targets)) => unproven_pods(&set, targets, now, timeout).await?,
        (_, None) => {
            let targets = running_pods(client, &cluster_ref).await?;
            unproven_pods(&set, &targets, now, timeout).await?
        }
    };
    let operator_name = cluster_ref.operator_tls_secret_name();
    let operator = ensure_leaf(
        &api,
        Leaf {
            name: &operator_name,
            metadata: cluster_ref.metadata(operator_name.clone()),
            expected_sans: &Default::default(),
            // The operator's identity switches last: after every node serves the new CA.
            accept_previous: set.phase == Phase::Reissue && !waiting.is_empty(),
        },
        &set,
        now,
        &mut issued,
        |ca| ca::issue_client_certificate(ca, OPERATOR_IDENTITY, now, lifetime),
    )
    .await?;

    let rotation = match (set.phase, set.advance()) {
        (Phase::Idle, _) | (_, None) => None,
        (phase, Some(next)) if waiting.is_empty() => {
            certificates::store_ca(&api, &cluster_ref, &next).await?;
            rotation_notes.push((next.phase, transition_note(phase, &next)));
            set = next;
            (set.phase != Phase::Idle).then(|| format!("CA rotation: {}", set.phase))
        }
        (phase, Some(_)) => Some(format!(
            "CA rotation: {phase} (waiting for {} to {})",
            waiting.join(", "),
            awaited(phase, set.generation)
        )),
    };

    let ca_info = CertificateInfo::parse(&set.signing.cert_pem)?;
    let node_info = CertificateInfo::parse(&node.cert_pem)?;
    let operator_info = CertificateInfo::parse(&operator.cert_pem)?;
    Ok(TlsState {
        credentials: AdminCredentials {
            ca_pem: set.bundle(),
            cert_pem: operator.cert_pem,
            key_pem: operator.key_pem,
        },
        ca_expiry: ca_info.not_after,
        node_expiry: node_info.not_after,
        operator_expiry: operator_info.not_after,
        next_renewal: node_info
            .renew_at()
            .min(operator_info.renew_at())
            .min(ca_info.renew_at()),
        trusted_cas: trusted_cas(&set),
        ca_set: set,
        issued,
        rotation_notes,
        rotation,
    })
}

/// The CAs of `set` for the status: generation, expiry and whether it signs.
fn trusted_cas(set: &CaSet) -> Vec<TrustedCa> {
    set.trusted()
        .into_iter()
        .filter_map(|(generation, ca, signing)| {
            let info = CertificateInfo::parse(&ca.cert_pem).ok()?;
            Some(TrustedCa {
                generation,
                expiry: info.not_after.format(&Rfc3339).ok()?,
                signing,
            })
        })
        .collect()
}

/// What the nodes must show in `phase` (signing generation `generation`).
fn awaited(phase: Phase, generation: u64) -> String {
    match phase {
        Phase::Idle => String::new(),
        Phase::TrustBoth => format!("trust CA generation {}", generation + 1),
        Phase::Reissue => format!("serve a certificate of CA generation {generation}"),
        Phase::DropOld => format!("refuse CA generation {}", generation - 1),
    }
}

fn transition_note(from: Phase, to: &CaSet) -> String {
    match from {
        Phase::TrustBoth => format!(
            "every node trusts CA generation {g}: it signs from now on and every certificate \
             is reissued by it (phase Reissue)",
            g = to.generation
        ),
        Phase::Reissue => format!(
            "every node serves a certificate of CA generation {g}: generation {} is dropped \
             from the trust bundle (phase DropOld)",
            to.generation - 1,
            g = to.generation
        ),
        _ => format!(
            "CA rotation complete: every node refuses the old CA; generation {} is the only CA",
            to.generation
        ),
    }
}

/// Makes the Secret of every ProgLogUser of `cluster` current for its stored CAs (what the
/// user controller does one user at a time); nothing while the cluster has no CA yet.
pub async fn ensure_user_certificates(
    client: &Client,
    cluster: &ProgLogCluster,
) -> Result<Vec<String>, ReconcileError> {
    let cluster_ref = ClusterRef::of(cluster)?;
    let api: Api<Secret> = Api::namespaced(client.clone(), &cluster_ref.namespace);
    let mut issued = Vec::new();
    if let Some(set) = certificates::load_ca(&api, cluster, &cluster_ref).await? {
        let now = OffsetDateTime::now_utc();
        let lifetime = leaf_lifetime(cluster);
        ensure_user_leaves(client, &api, &cluster_ref, &set, now, lifetime, &mut issued).await?;
    }
    Ok(issued)
}

/// Makes the Secret of every user of the cluster current for `set`.
async fn ensure_user_leaves(
    client: &Client,
    api: &Api<Secret>,
    cluster_ref: &ClusterRef,
    set: &CaSet,
    now: OffsetDateTime,
    lifetime: Duration,
    issued: &mut Vec<String>,
) -> Result<(), ReconcileError> {
    let all: Api<ProgLogUser> = Api::namespaced(client.clone(), &cluster_ref.namespace);
    for user in all.list(&ListParams::default()).await?.items {
        let identity = user.name_any();
        if user.spec.cluster != cluster_ref.name
            || user.metadata.deletion_timestamp.is_some()
            || is_reserved_identity(&identity, cluster_ref)
        {
            continue;
        }
        let name = user.secret_name();
        ensure_leaf(
            api,
            Leaf {
                name: &name,
                metadata: users::secret_metadata(&user, &name),
                expected_sans: &Default::default(),
                accept_previous: false,
            },
            set,
            now,
            issued,
            |ca| ca::issue_client_certificate(ca, &identity, now, lifetime),
        )
        .await?;
    }
    Ok(())
}

/// The pods that have not yet shown what `set.phase` waits for (none when idle).
async fn unproven_pods(
    set: &CaSet,
    targets: &[ProbeTarget],
    now: OffsetDateTime,
    timeout: Duration,
) -> Result<Vec<String>, ReconcileError> {
    let throwaway = |ca: &KeyedCertificate| {
        ca::issue_client_certificate(ca, OPERATOR_IDENTITY, now, Duration::from_secs(3600))
    };
    let credentials = |roots: &str, cert: KeyedCertificate| AdminCredentials {
        ca_pem: roots.to_owned(),
        cert_pem: cert.cert_pem,
        key_pem: cert.key_pem,
    };
    // (credentials that must succeed, credentials that must be refused)
    let (accepted, refused) = match (set.phase, &set.next, &set.previous) {
        (Phase::TrustBoth, Some(next), _) => (credentials(&set.bundle(), throwaway(next)?), None),
        (Phase::Reissue, _, _) => (
            credentials(&set.signing.cert_pem, throwaway(&set.signing)?),
            None,
        ),
        (Phase::DropOld, _, Some(previous)) => (
            credentials(&set.signing.cert_pem, throwaway(&set.signing)?),
            Some(credentials(&set.signing.cert_pem, throwaway(previous)?)),
        ),
        _ => return Ok(Vec::new()),
    };
    let (accepted, refused) = (&accepted, &refused);
    let results = futures::future::join_all(targets.iter().map(|target| async move {
        if let Err(error) = handshake(target, accepted, timeout).await {
            tracing::debug!(pod = %target.pod, %error, "CA rotation: not there yet");
            return Some(target.pod.clone());
        }
        match refused {
            Some(old) if handshake(target, old, timeout).await.is_ok() => Some(target.pod.clone()),
            _ => None,
        }
    }))
    .await;
    Ok(results.into_iter().flatten().collect())
}

/// Connects with `credentials` and makes one admin call: the node accepted the client
/// certificate (TLS 1.3 reports a refused client certificate only at the first request).
async fn handshake(
    target: &ProbeTarget,
    credentials: &AdminCredentials,
    timeout: Duration,
) -> Result<(), AdminError> {
    let mut client = target.connect(credentials, timeout).await?;
    client.node_info().await.map(|_| ())
}
