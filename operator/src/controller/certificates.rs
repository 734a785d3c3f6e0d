//! Keeps the cluster's TLS Secrets current: the CA Secret (created by the operator, or the
//! user's CA), the node certificate, the users' and the operator's client certificates, each
//! issued by the signing CA of [`CaSet`] with the CA set's trust bundle as `ca.crt`, and
//! reissued by the rules in [`crate::ca`]. Nodes reload renewed certificates and bundles from
//! the mounted Secret without a restart. The rotation phases are driven by
//! [`super::ca_rotation`].

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use time::OffsetDateTime;

use super::{FIELD_MANAGER, ReconcileError};
use crate::{
    admin::AdminCredentials,
    builders::ClusterRef,
    ca::{self, CertificateInfo, KeyedCertificate},
    ca_rotation::{CaSet, GENERATION_ANNOTATION},
    crd::ProgLogCluster,
};

/// Result of ensuring the certificates.
#[derive(Debug)]
pub struct TlsState {
    /// The operator's credentials for this cluster's admin API.
    pub credentials: AdminCredentials,
    /// The CAs and the rotation phase after this pass.
    pub ca_set: CaSet,
    /// The trusted CAs for the status.
    pub trusted_cas: Vec<crate::crd::TrustedCa>,
    /// Expiry of the signing CA.
    pub ca_expiry: OffsetDateTime,
    /// Expiry of the node certificate.
    pub node_expiry: OffsetDateTime,
    /// Expiry of the operator's client certificate.
    pub operator_expiry: OffsetDateTime,
    /// Earliest time a certificate must be renewed (to requeue in time).
    pub next_renewal: OffsetDateTime,
    /// Human-readable notes of certificates issued in this pass (for events).
    pub issued: Vec<String>,
    /// CA rotation phases entered in this pass, with a note for the event.
    pub rotation_notes: Vec<(crate::ca_rotation::Phase, String)>,
    /// While a rotation runs: "CA rotation: PHASE (what it waits for)".
    pub rotation: Option<String>,
}

/// The PEM text stored under `key`.
pub(crate) fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn tls_secret(metadata: ObjectMeta, cert: &KeyedCertificate, bundle: Option<&str>) -> Secret {
    let mut data = BTreeMap::from([
        (
            "tls.crt".to_owned(),
            ByteString(cert.cert_pem.clone().into_bytes()),
        ),
        (
            "tls.key".to_owned(),
            ByteString(cert.key_pem.clone().into_bytes()),
        ),
    ]);
    if let Some(bundle) = bundle {
        data.insert("ca.crt".to_owned(), ByteString(bundle.as_bytes().to_vec()));
    }
    Secret {
        metadata,
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

/// Server-side applies `secret`; keys this manager set before and `secret` lacks are removed.
pub(crate) async fn apply(api: &Api<Secret>, secret: &Secret) -> Result<(), ReconcileError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(secret),
    )
    .await?;
    Ok(())
}

/// The cluster's CAs as stored now (the user's Secret, or the one the operator manages),
/// without creating anything: `None` while the operator has not created its CA yet.
pub(crate) async fn load_ca(
    api: &Api<Secret>,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
) -> Result<Option<CaSet>, ReconcileError> {
    if let Some(name) = &cluster.spec.tls.ca_secret_name {
        return user_ca(api, name).await.map(|ca| Some(CaSet::idle(ca)));
    }
    let name = cluster_ref.ca_secret_name();
    let Some(secret) = api.get_opt(&name).await? else {
        return Ok(None);
    };
    let data = secret
        .data
        .iter()
        .flatten()
        .filter_map(|(key, value)| Some((key.clone(), String::from_utf8(value.0.clone()).ok()?)))
        .collect();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    CaSet::from_secret(&data, &annotations)
        .map_err(|reason| ReconcileError::InvalidSecret { name, reason })
}

/// The operator's credentials for the cluster's admin API as stored in its Secret (client
/// certificate, key and the trust bundle), without issuing anything: `None` while the cluster
/// controller has not written them yet. The user controller reads them here; the cluster
/// controller gets them from [`super::ca_rotation::ensure_certificates`].
pub(crate) async fn stored_operator_credentials(
    api: &Api<Secret>,
    cluster_ref: &ClusterRef,
) -> Result<Option<AdminCredentials>, ReconcileError> {
    let Some(secret) = api.get_opt(&cluster_ref.operator_tls_secret_name()).await? else {
        return Ok(None);
    };
    Ok((|| {
        Some(AdminCredentials {
            ca_pem: text(&secret, "ca.crt")?,
            cert_pem: text(&secret, "tls.crt")?,
            key_pem: text(&secret, "tls.key")?,
        })
    })())
}

/// Writes the operator's CA Secret for `set`: one write per rotation transition.
pub(crate) async fn store_ca(
    api: &Api<Secret>,
    cluster_ref: &ClusterRef,
    set: &CaSet,
) -> Result<(), ReconcileError> {
    let (data, annotations) = set.to_secret();
    let mut metadata = cluster_ref.metadata(cluster_ref.ca_secret_name());
    metadata.annotations = Some(annotations);
    let secret = Secret {
        metadata,
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(
            data.into_iter()
                .map(|(key, pem)| (key, ByteString(pem.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    };
    apply(api, &secret).await
}

/// The CA in the user's Secret `name`, checked to be a CA.
async fn user_ca(api: &Api<Secret>, name: &str) -> Result<KeyedCertificate, ReconcileError> {
    let invalid = |reason: &str| ReconcileError::InvalidSecret {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let secret = api.get_opt(name).await?.ok_or_else(|| {
        invalid("not found; spec.tls.caSecretName must name a Secret in the cluster's namespace")
    })?;
    let cert_pem = text(&secret, "tls.crt").ok_or_else(|| invalid("has no tls.crt"))?;
    let key_pem = text(&secret, "tls.key").ok_or_else(|| invalid("has no tls.key"))?;
    let info = CertificateInfo::parse(&cert_pem)
        .map_err(|e| invalid(&format!("tls.crt is not a certificate: {e}")))?;
    if !info.is_ca {
        return Err(invalid("tls.crt is not a CA certificate"));
    }
    Ok(KeyedCertificate { cert_pem, key_pem })
}

/// Loads the CAs, creating the operator's first CA when there is none; whether the operator
/// manages (and may rotate) them.
pub(crate) async fn ensure_ca(
    api: &Api<Secret>,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    now: OffsetDateTime,
    issued: &mut Vec<String>,
) -> Result<(CaSet, bool), ReconcileError> {
    let managed = cluster.spec.tls.ca_secret_name.is_none();
    if let Some(set) = load_ca(api, cluster, cluster_ref).await? {
        return Ok((set, managed));
    }
    let set = CaSet::idle(ca::generate_ca(cluster_ref, now)?);
    store_ca(api, cluster_ref, &set).await?;
    issued.push(format!(
        "created CA in Secret {}",
        cluster_ref.ca_secret_name()
    ));
    Ok((set, managed))
}

/// A leaf certificate Secret as it should be.
pub(crate) struct Leaf<'a> {
    /// Secret name.
    pub name: &'a str,
    /// Its metadata (labels, owner); the generation annotation is added.
    pub metadata: ObjectMeta,
    /// Names the certificate must carry.
    pub expected_sans: &'a std::collections::BTreeSet<String>,
    /// Also accept a certificate of the CA being retired (the operator's own identity during
    /// Reissue until every node serves the new CA: it switches last).
    pub accept_previous: bool,
}

/// Loads a leaf certificate Secret and makes it current for `set`: reissued by the signing CA
/// when it is missing, not signed by an accepted CA, or [`ca::renewal_reason`] says so; its
/// `ca.crt` replaced by the bundle when only that differs (the key stays).
pub(crate) async fn ensure_leaf(
    api: &Api<Secret>,
    leaf: Leaf<'_>,
    set: &CaSet,
    now: OffsetDateTime,
    issued: &mut Vec<String>,
    issue: impl FnOnce(&KeyedCertificate) -> Result<KeyedCertificate, ca::CaError>,
) -> Result<KeyedCertificate, ReconcileError> {
    let bundle = set.bundle();
    let existing = api.get_opt(leaf.name).await?;
    let stored = existing.as_ref().and_then(|secret| {
        let annotated = secret
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(GENERATION_ANNOTATION).cloned());
        Some((
            text(secret, "tls.crt")?,
            text(secret, "tls.key")?,
            text(secret, "ca.crt"),
            annotated,
        ))
    });
    let signer_generation = |cert_pem: &str| {
        if ca::verifies(cert_pem, &set.signing.cert_pem, now) {
            Some(set.generation)
        } else {
            set.previous
                .as_ref()
                .filter(|previous| {
                    leaf.accept_previous && ca::verifies(cert_pem, &previous.cert_pem, now)
                })
                .map(|_| set.generation - 1)
        }
    };
    // The certificate to store, the generation of its CA, and the note for the event (none
    // when a Secret written before generations were recorded only gets its annotation).
    let (cert, generation, message) = match stored {
        Some((cert_pem, key_pem, stored_bundle, annotated)) => {
            let signer = signer_generation(&cert_pem);
            let reason = match CertificateInfo::parse(&cert_pem) {
                Err(_) => Some("the stored certificate is unreadable"),
                Ok(info) => ca::renewal_reason(&info, leaf.expected_sans, signer.is_some(), now),
            };
            match (reason, signer) {
                (None, Some(generation)) => {
                    let cert = KeyedCertificate { cert_pem, key_pem };
                    let bundle_current = stored_bundle.as_deref() == Some(bundle.as_str());
                    if bundle_current && annotated == Some(generation.to_string()) {
                        return Ok(cert);
                    }
                    let message = (!bundle_current).then(|| {
                        format!(
                            "updated the trust bundle in Secret {} (CA generations trusted: {})",
                            leaf.name,
                            trusted_generations(set)
                        )
                    });
                    (cert, generation, message)
                }
                (reason, _) => {
                    issue_now(leaf.name, set, reason.unwrap_or("renewal was due"), issue)?
                }
            }
        }
        None => issue_now(leaf.name, set, "it does not exist", issue)?,
    };
    let mut metadata = leaf.metadata;
    metadata.annotations = Some(BTreeMap::from([(
        GENERATION_ANNOTATION.to_owned(),
        generation.to_string(),
    )]));
    apply(api, &tls_secret(metadata, &cert, Some(&bundle))).await?;
    issued.extend(message);
    Ok(cert)
}

/// A certificate issued by the signing CA now, with the event note saying why.
fn issue_now(
    name: &str,
    set: &CaSet,
    reason: &str,
    issue: impl FnOnce(&KeyedCertificate) -> Result<KeyedCertificate, ca::CaError>,
) -> Result<(KeyedCertificate, u64, Option<String>), ReconcileError> {
    let note = format!(
        "issued certificate in Secret {name} by CA generation {} because {reason}",
        set.generation
    );
    Ok((issue(&set.signing)?, set.generation, Some(note)))
}

/// "1, 2": the generations of the CAs in the bundle.
pub(crate) fn trusted_generations(set: &CaSet) -> String {
    set.trusted()
        .iter()
        .map(|(generation, _, _)| generation.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Lifetime of leaf certificates of `cluster`.
pub(crate) fn leaf_lifetime(cluster: &ProgLogCluster) -> Duration {
    Duration::from_secs(u64::from(cluster.spec.tls.certificate_lifetime_hours) * 3600)
}
