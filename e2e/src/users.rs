//! A `ProgLogUser` against real pods: once the user is Ready, the certificate the operator wrote
//! into its Secret gets an application in through the cluster's Service at once — Ready means
//! every running node enforces the user's rules, whenever the kubelet syncs the ACL ConfigMap
//! into each pod — and deleting the user takes both the Secret and the access away.
//! [`create_user`] and [`produce_allowed`] are the steps other scenarios reuse to connect as an
//! application.

use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams},
};
use proglog_proto::log::v1::{ConsumeRequest, ProduceRequest, Record, log_client::LogClient};
use serde_json::json;
use tokio::time::Instant;
use tonic::{Code, transport::Channel};

use crate::{
    E2eError, env,
    log_client::{self, PemPair},
    port_forward::PortForward,
    scenario::{GRPC_PORT, Scenario},
    wait::{Check, until},
};

/// The application identity the scenario creates.
pub const USER: &str = "e2e-app";

/// The ProgLogUser resource.
pub fn user_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "proglog.dev",
        "v1alpha1",
        "ProgLogUser",
    ))
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

/// Creates ProgLogUser `name` on `cluster` allowed to produce and consume, waits until it is
/// Ready (which waits for every pod's kubelet to sync the ACL: up to about a minute and a half
/// with the default sync period), and returns the name of the Secret holding its certificate.
pub async fn create_user(sc: &Scenario, cluster: &str, name: &str) -> Result<String, E2eError> {
    let users: Api<DynamicObject> =
        Api::namespaced_with(sc.client.clone(), &sc.ns, &user_resource());
    let user: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "proglog.dev/v1alpha1",
        "kind": "ProgLogUser",
        "metadata": { "name": name },
        "spec": { "cluster": cluster, "acl": [{ "action": "produce" }, { "action": "consume" }] },
    }))
    .map_err(|e| E2eError::Unexpected(format!("bad ProgLogUser object: {e}")))?;
    users.create(&PostParams::default(), &user).await?;
    until(
        &format!("user {name} to be Ready"),
        env::pod_timeout(),
        || async {
            let user = users.get(name).await?;
            let status = user.data.get("status").cloned().unwrap_or_default();
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True");
            Ok(match status["secretName"].as_str() {
                Some(secret) if ready => Check::Done(secret.to_owned()),
                _ => Check::NotYet(format!("status {status}")),
            })
        },
    )
    .await
}

/// Produces `value` with `log` once, as an application does as soon as its user is Ready;
/// returns its offset. A refusal fails: the user is Ready only once every node enforces its
/// rules, so no node may turn its first request away.
pub async fn produce_allowed(log: &LogClient<Channel>, value: &str) -> Result<u64, E2eError> {
    let request = ProduceRequest {
        record: Some(Record {
            value: value.to_owned().into(),
            ..Record::default()
        }),
    };
    match log.clone().produce(request).await {
        Ok(response) => Ok(response.into_inner().offset),
        Err(status) if status.code() == Code::PermissionDenied => {
            Err(E2eError::Unexpected(format!(
                "the user is Ready but a node refused its first produce: {}",
                status.message()
            )))
        }
        Err(status) => Err(status.into()),
    }
}

/// Creates [`USER`] on `cluster`, produces and consumes with its certificate, deletes it and
/// waits until its certificate is refused; returns what happened, for the scenario's log.
pub async fn access_lifecycle(sc: &Scenario, cluster: &str) -> Result<String, E2eError> {
    let users: Api<DynamicObject> =
        Api::namespaced_with(sc.client.clone(), &sc.ns, &user_resource());
    let started = Instant::now();
    let secret_name = create_user(sc, cluster, USER).await?;
    let ready_after = started.elapsed();
    let secrets: Api<Secret> = Api::namespaced(sc.client.clone(), &sc.ns);
    let secret = secrets.get(&secret_name).await?;
    let pair = PemPair {
        cert_pem: text(&secret, "tls.crt").unwrap_or_default(),
        key_pem: text(&secret, "tls.key").unwrap_or_default(),
    };
    if text(&secret, "ca.crt").as_deref() != Some(sc.ca.cert_pem.as_str()) {
        return Err(E2eError::Unexpected(format!(
            "Secret {secret_name}'s ca.crt is not the cluster's CA"
        )));
    }

    let forward = PortForward::to_service(&sc.ns, cluster, GRPC_PORT, env::api_timeout()).await?;
    let log = log_client::connect(forward.local_port, &sc.ca.cert_pem, &pair).await?;
    let value = format!("written by {USER}");
    let offset = produce_allowed(&log, &value).await?;
    let record = log
        .clone()
        .consume(ConsumeRequest { offset })
        .await?
        .into_inner()
        .record
        .unwrap_or_default();
    if record.value != value.as_bytes() {
        return Err(E2eError::Unexpected(format!(
            "offset {offset} holds {:?}, not the user's record",
            String::from_utf8_lossy(&record.value)
        )));
    }

    let deleted = Instant::now();
    users.delete(USER, &DeleteParams::foreground()).await?;
    until(
        "the user's Secret to be deleted",
        env::api_timeout(),
        || async {
            Ok(match secrets.get_opt(&secret_name).await? {
                None => Check::Done(()),
                Some(_) => Check::NotYet("the Secret still exists".to_owned()),
            })
        },
    )
    .await?;
    until(
        "the deleted user's certificate to be refused",
        env::pod_timeout(),
        || {
            let mut log = log.clone();
            async move {
                let request = ProduceRequest {
                    record: Some(Record {
                        value: "after deletion".into(),
                        ..Record::default()
                    }),
                };
                Ok(match log.produce(request).await {
                    Err(status) if status.code() == Code::PermissionDenied => Check::Done(()),
                    other => Check::NotYet(format!("{other:?}")),
                })
            }
        },
    )
    .await?;
    Ok(format!(
        "user {USER}: Ready with Secret {secret_name} after {ready_after:.1?}, its first produce \
         accepted at once (offset {offset}, read back), refused {:.1?} after deletion",
        deleted.elapsed()
    ))
}
