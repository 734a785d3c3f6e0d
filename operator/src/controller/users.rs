//! ProgLogUsers: one reconciliation issues (and renews) the user's client certificate from its
//! cluster's signing CA, with the cluster's trust bundle, into the user's Secret and reports it
//! in the status. The ACL half lives with the cluster: the cluster controller watches users and
//! writes every user's rules into the cluster's ACL ([`users_of`]); deleting a user
//! garbage-collects its Secret (owner reference) and that watch removes its rules.
//!
//! Ready=True (reason `AccessEnforced`) only once every running node of the cluster enforces
//! the user's rules ([`super::user_access`]); before that Ready=False (`AclPropagating`, the
//! message names the nodes), re-checked after `progress_requeue`. Once confirmed for the
//! current `metadata.generation` it stays True until the spec changes.
//!
//! A user never makes the operator create anything of the cluster's: it waits (Ready False,
//! with the reason) until the cluster and its CA exist.

use std::{sync::Arc, time::Duration};

use k8s_openapi::{api::core::v1::Secret, apimachinery::pkg::apis::meta::v1::ObjectMeta};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ListParams, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event as KubeEvent, EventType},
    },
};
use serde_json::json;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::{
    Context, OperatorConfig, ReconcileError, certificates,
    nodes::ProbeTarget,
    user_access::{self, Enforcement},
};
use crate::{
    builders::{BuildError, ClusterRef, is_reserved_identity},
    ca::{self, CertificateInfo},
    crd::{ClusterCondition, ProgLogCluster},
    user_crd::{ProgLogUser, ProgLogUserStatus},
};

/// The users of cluster `cluster` in `namespace` that are not being deleted, by name.
pub(crate) async fn users_of(
    ctx: &Context,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<ProgLogUser>, ReconcileError> {
    let api: Api<ProgLogUser> = Api::namespaced(ctx.client.clone(), namespace);
    let mut users: Vec<ProgLogUser> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|u| u.spec.cluster == cluster && u.metadata.deletion_timestamp.is_none())
        .collect();
    users.sort_by_key(|user| user.name_any());
    Ok(users)
}

/// Why a user is not ready yet.
struct NotReady {
    reason: &'static str,
    message: String,
}

/// Entry point of the user controller.
pub(crate) async fn reconcile(
    user: Arc<ProgLogUser>,
    ctx: Arc<Context>,
) -> Result<Action, ReconcileError> {
    reconcile_with(&user, &ctx, None).await
}

/// One reconciliation of `user` as the controller runs it, writing its status; how long until
/// the next. `targets` are the nodes to ask (`None`: the cluster's running pods), so tests
/// drive real node processes with exactly this code.
pub async fn reconcile_user(
    client: &Client,
    config: &OperatorConfig,
    user: &ProgLogUser,
    targets: Option<&[ProbeTarget]>,
) -> Result<Action, ReconcileError> {
    let ctx = Context::new(client.clone(), config.clone());
    reconcile_with(user, &ctx, targets).await
}

async fn reconcile_with(
    user: &ProgLogUser,
    ctx: &Context,
    targets: Option<&[ProbeTarget]>,
) -> Result<Action, ReconcileError> {
    let namespace = user
        .namespace()
        .ok_or(BuildError::MissingMetadata("namespace"))?;
    let users: Api<ProgLogUser> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = OffsetDateTime::now_utc();
    let (status, requeue) = match issue(user, ctx, &namespace, now).await? {
        Ok(issued) => {
            let until_renewal = (issued.renew_at - now).try_into().unwrap_or(Duration::ZERO);
            let (ready, requeue) = access(user, ctx, &issued, targets, now).await?;
            let status = ProgLogUserStatus {
                conditions: vec![ready],
                ..issued.status
            };
            (status, until_renewal.min(requeue))
        }
        Err(not_ready) => {
            let status = ProgLogUserStatus {
                conditions: vec![ready_condition(
                    user,
                    false,
                    not_ready.reason,
                    not_ready.message,
                    now,
                )],
                ..user.status.clone().unwrap_or_default()
            };
            (status, ctx.config.progress_requeue)
        }
    };
    let status = ProgLogUserStatus {
        observed_generation: user.metadata.generation,
        ..status
    };
    users
        .patch_status(
            &user.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(Action::requeue(requeue))
}

/// Reason of Ready=True: every running node confirmed the user's rules.
pub const ACCESS_ENFORCED: &str = "AccessEnforced";
/// Reason of Ready=False while the rules are not yet in the ConfigMap or some running node does
/// not enforce them (or does not answer).
pub const ACL_PROPAGATING: &str = "AclPropagating";

/// The Ready condition once the certificate is issued, and when to look again.
///
/// Ready=True only once every node enforces the user's rules ([`user_access`]); until then
/// Ready=False (`AclPropagating`), checked again after `progress_requeue`. Once confirmed for
/// the user's current `metadata.generation` (the Ready condition is True with reason
/// `AccessEnforced` and that `observedGeneration`), it is not checked again until the spec
/// changes: a pod restarting later mounts the current ConfigMap, and a node that stops
/// answering must not make a working application's user flip to not Ready.
async fn access(
    user: &ProgLogUser,
    ctx: &Context,
    issued: &Issued,
    targets: Option<&[ProbeTarget]>,
    now: OffsetDateTime,
) -> Result<(ClusterCondition, Duration), ReconcileError> {
    if let Some(confirmed) = confirmed(user) {
        let message = confirmed.message.clone();
        return Ok((
            ready_condition(user, true, ACCESS_ENFORCED, message, now),
            ctx.config.steady_requeue,
        ));
    }
    let identity = user.name_any();
    let certificate = format!(
        "certificate for {identity:?} in Secret {}",
        issued.secret_name
    );
    let enforcement = user_access::enforcement(
        &ctx.client,
        &issued.cluster_ref,
        user,
        targets,
        ctx.config.admin_timeout,
    )
    .await?;
    Ok(match enforcement {
        Enforcement::Enforced { rules, nodes } => (
            ready_condition(
                user,
                true,
                ACCESS_ENFORCED,
                format!(
                    "{certificate}; its {rules} ACL rules are enforced by every running node of \
                     cluster {} ({nodes} confirmed)",
                    issued.cluster_ref.name
                ),
                now,
            ),
            ctx.config.steady_requeue,
        ),
        Enforcement::Propagating(waiting) => (
            ready_condition(
                user,
                false,
                ACL_PROPAGATING,
                format!("{certificate}; {waiting}"),
                now,
            ),
            ctx.config.progress_requeue,
        ),
    })
}

/// The user's Ready condition if it already records that every node enforced the rules of
/// the current generation.
fn confirmed(user: &ProgLogUser) -> Option<&ClusterCondition> {
    user.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .filter(|c| {
            c.status == "True"
                && c.reason == ACCESS_ENFORCED
                && c.observed_generation.is_some()
                && c.observed_generation == user.metadata.generation
        })
}

/// A user whose certificate is in its Secret.
struct Issued {
    /// Its status without conditions.
    status: ProgLogUserStatus,
    /// When to renew the certificate.
    renew_at: OffsetDateTime,
    cluster_ref: ClusterRef,
    secret_name: String,
}

/// Ensures the user's certificate; its status and when to renew it, or why it cannot be issued.
async fn issue(
    user: &ProgLogUser,
    ctx: &Context,
    namespace: &str,
    now: OffsetDateTime,
) -> Result<Result<Issued, NotReady>, ReconcileError> {
    let identity = user.name_any();
    let clusters: Api<ProgLogCluster> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(cluster) = clusters.get_opt(&user.spec.cluster).await? else {
        return Ok(Err(NotReady {
            reason: "ClusterNotFound",
            message: format!(
                "no ProgLogCluster {:?} in namespace {namespace}",
                user.spec.cluster
            ),
        }));
    };
    let cluster_ref = ClusterRef::of(&cluster)?;
    if is_reserved_identity(&identity, &cluster_ref) {
        return Ok(Err(NotReady {
            reason: "ReservedIdentity",
            message: format!(
                "{identity:?} is the identity of the operator or of the cluster's nodes; choose another name"
            ),
        }));
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let Some(ca) = certificates::load_ca(&secrets, &cluster, &cluster_ref).await? else {
        return Ok(Err(NotReady {
            reason: "CANotReady",
            message: format!("cluster {} has no CA yet", cluster_ref.name),
        }));
    };
    let lifetime = certificates::leaf_lifetime(&cluster);
    let secret_name = user.secret_name();
    let mut issued = Vec::new();
    let cert = certificates::ensure_leaf(
        &secrets,
        certificates::Leaf {
            name: &secret_name,
            metadata: secret_metadata(user, &secret_name),
            expected_sans: &Default::default(),
            accept_previous: false,
        },
        &ca,
        now,
        &mut issued,
        |signing| ca::issue_client_certificate(signing, &identity, now, lifetime),
    )
    .await?;
    for note in issued {
        publish(ctx, user, note).await;
    }
    let info = CertificateInfo::parse(&cert.cert_pem)?;
    let status = ProgLogUserStatus {
        conditions: Vec::new(),
        identity: Some(identity),
        secret_name: Some(secret_name.clone()),
        certificate_expiry: info.not_after.format(&Rfc3339).ok(),
        observed_generation: None,
    };
    Ok(Ok(Issued {
        status,
        renew_at: info.renew_at(),
        cluster_ref,
        secret_name,
    }))
}

/// The Secret's metadata: owned by the user, so deleting the user deletes it.
pub(crate) fn secret_metadata(user: &ProgLogUser, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: user.namespace(),
        labels: Some(
            [
                ("app.kubernetes.io/name", "proglog"),
                ("app.kubernetes.io/component", "user"),
                ("app.kubernetes.io/managed-by", super::FIELD_MANAGER),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .chain([("proglog.dev/user".to_owned(), user.name_any())])
            .collect(),
        ),
        owner_references: user.controller_owner_ref(&()).map(|owner| vec![owner]),
        ..ObjectMeta::default()
    }
}

fn ready_condition(
    user: &ProgLogUser,
    ready: bool,
    reason: &str,
    message: String,
    now: OffsetDateTime,
) -> ClusterCondition {
    let status = if ready { "True" } else { "False" }.to_owned();
    // Keep the transition time while the status stays the same.
    let last_transition_time = user
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.format(&Rfc3339).unwrap_or_default());
    ClusterCondition {
        type_: "Ready".to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        last_transition_time,
        observed_generation: user.metadata.generation,
    }
}

async fn publish(ctx: &Context, user: &ProgLogUser, note: String) {
    let event = KubeEvent {
        type_: EventType::Normal,
        reason: "CertificateIssued".to_owned(),
        note: Some(note),
        action: "IssueCertificate".to_owned(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &user.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}
