//! Keeps the cluster's TLS Secrets current: the CA (created by the operator, or the user's),
//! the node certificate and the operator's admin client certificate, reissued by the rules in
//! [`crate::ca`]. Nodes reload renewed certificates from the mounted Secret without a restart.

use std::{collections::BTreeMap, time::Duration};

use k8s_openapi::{
    ByteString, api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta,
};
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use time::OffsetDateTime;

use super::{Context, FIELD_MANAGER, ReconcileError};
use crate::{
    admin::AdminCredentials,
    builders::{ClusterRef, OPERATOR_IDENTITY},
    ca::{self, CertificateInfo, KeyedCertificate},
    crd::ProgLogCluster,
};

/// Result of ensuring the certificates.
#[derive(Debug)]
pub(crate) struct TlsState {
    /// The operator's credentials for this cluster's admin API.
    pub credentials: AdminCredentials,
    /// Expiry of the CA.
    pub ca_expiry: OffsetDateTime,
    /// Expiry of the node certificate.
    pub node_expiry: OffsetDateTime,
    /// Expiry of the operator's client certificate.
    pub operator_expiry: OffsetDateTime,
    /// Earliest time a certificate must be renewed (to requeue in time).
    pub next_renewal: OffsetDateTime,
    /// Human-readable notes of certificates issued in this pass (for events).
    pub issued: Vec<String>,
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

fn tls_secret(metadata: ObjectMeta, cert: &KeyedCertificate, ca_pem: Option<&str>) -> Secret {
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
    if let Some(ca) = ca_pem {
        data.insert("ca.crt".to_owned(), ByteString(ca.as_bytes().to_vec()));
    }
    Secret {
        metadata,
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(data),
        ..Secret::default()
    }
}

async fn apply(api: &Api<Secret>, secret: &Secret) -> Result<(), ReconcileError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(secret),
    )
    .await?;
    Ok(())
}

/// The cluster's CA as it is stored now (the user's Secret, or the one the operator created),
/// without creating anything: `None` while the operator has not created its CA yet.
pub(crate) async fn load_ca(
    api: &Api<Secret>,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
) -> Result<Option<KeyedCertificate>, ReconcileError> {
    if let Some(name) = &cluster.spec.tls.ca_secret_name {
        return user_ca(api, name).await.map(Some);
    }
    let secret = api.get_opt(&cluster_ref.ca_secret_name()).await?;
    Ok(secret.and_then(|secret| {
        Some(KeyedCertificate {
            cert_pem: text(&secret, "tls.crt")?,
            key_pem: text(&secret, "tls.key")?,
        })
    }))
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

/// Loads the user's CA or loads/creates the operator's CA for this cluster.
async fn ensure_ca(
    api: &Api<Secret>,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    now: OffsetDateTime,
    issued: &mut Vec<String>,
) -> Result<KeyedCertificate, ReconcileError> {
    if let Some(name) = &cluster.spec.tls.ca_secret_name {
        return user_ca(api, name).await;
    }
    let name = cluster_ref.ca_secret_name();
    if let Some(secret) = api.get_opt(&name).await?
        && let (Some(cert_pem), Some(key_pem)) =
            (text(&secret, "tls.crt"), text(&secret, "tls.key"))
    {
        return Ok(KeyedCertificate { cert_pem, key_pem });
    }
    let ca = ca::generate_ca(cluster_ref, now)?;
    apply(
        api,
        &tls_secret(cluster_ref.metadata(name.clone()), &ca, None),
    )
    .await?;
    issued.push(format!("created CA in Secret {name}"));
    Ok(ca)
}

/// Ensures every TLS Secret of the cluster and returns the operator's credentials.
/// `pods` is how many pod FQDNs the node certificate must name.
pub(crate) async fn ensure(
    ctx: &Context,
    cluster: &ProgLogCluster,
    cluster_ref: &ClusterRef,
    pods: u32,
) -> Result<TlsState, ReconcileError> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &cluster_ref.namespace);
    let now = OffsetDateTime::now_utc();
    let lifetime =
        Duration::from_secs(u64::from(cluster.spec.tls.certificate_lifetime_hours) * 3600);
    let mut issued = Vec::new();
    let ca = ensure_ca(&api, cluster, cluster_ref, now, &mut issued).await?;
    let ca_info = CertificateInfo::parse(&ca.cert_pem)?;

    let node_name = cluster_ref.node_tls_secret_name();
    let node_sans = ca::node_sans(cluster_ref, pods);
    let node = ensure_leaf(
        &api,
        &node_name,
        &ca,
        &node_sans,
        now,
        &mut issued,
        || ca::issue_node_certificate(&ca, cluster_ref, pods, now, lifetime),
        cluster_ref.metadata(node_name.clone()),
    )
    .await?;

    let operator_name = cluster_ref.operator_tls_secret_name();
    let operator = ensure_leaf(
        &api,
        &operator_name,
        &ca,
        &Default::default(),
        now,
        &mut issued,
        || ca::issue_client_certificate(&ca, OPERATOR_IDENTITY, now, lifetime),
        cluster_ref.metadata(operator_name.clone()),
    )
    .await?;

    let node_info = CertificateInfo::parse(&node.cert_pem)?;
    let operator_info = CertificateInfo::parse(&operator.cert_pem)?;
    Ok(TlsState {
        credentials: AdminCredentials {
            ca_pem: ca.cert_pem.clone(),
            cert_pem: operator.cert_pem,
            key_pem: operator.key_pem,
        },
        ca_expiry: ca_info.not_after,
        node_expiry: node_info.not_after,
        operator_expiry: operator_info.not_after,
        next_renewal: node_info.renew_at().min(operator_info.renew_at()),
        issued,
    })
}

/// Loads a leaf certificate Secret, reissuing it (as a Secret with `metadata`) when
/// [`ca::renewal_reason`] says so.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn ensure_leaf(
    api: &Api<Secret>,
    name: &str,
    ca: &KeyedCertificate,
    expected_sans: &std::collections::BTreeSet<String>,
    now: OffsetDateTime,
    issued: &mut Vec<String>,
    issue: impl FnOnce() -> Result<KeyedCertificate, ca::CaError>,
    metadata: ObjectMeta,
) -> Result<KeyedCertificate, ReconcileError> {
    let existing = api.get_opt(name).await?;
    let reason = match existing.as_ref().and_then(|secret| {
        Some((
            text(secret, "tls.crt")?,
            text(secret, "tls.key")?,
            text(secret, "ca.crt")?,
        ))
    }) {
        None => Some("it does not exist"),
        Some((cert_pem, key_pem, ca_pem)) => match CertificateInfo::parse(&cert_pem) {
            Err(_) => Some("the stored certificate is unreadable"),
            Ok(info) => {
                match ca::renewal_reason(&info, expected_sans, ca_pem == ca.cert_pem, now) {
                    None => return Ok(KeyedCertificate { cert_pem, key_pem }),
                    reason => reason,
                }
            }
        },
    };
    let cert = issue()?;
    apply(api, &tls_secret(metadata, &cert, Some(&ca.cert_pem))).await?;
    issued.push(format!(
        "issued certificate in Secret {name} because {}",
        reason.unwrap_or("renewal was due")
    ));
    Ok(cert)
}
