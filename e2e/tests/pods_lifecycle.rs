//! Pod scenarios about the cluster's lifecycle (the scenario numbers are those of the table in
//! docs/LOCAL_KUBERNETES.md): certificate renewal under load (scenario 6) and a spec the API server accepts but the cluster cannot satisfy (scenario 7,
//! second half; the first half is `invalid_clusters_are_rejected_by_the_api_server` in
//! cluster.rs). Deleting the cluster (scenario 8) is in pods_delete.rs.
//!
//! `#[ignore]`d: run by scripts/e2e-pods.sh (`make e2e-pods`) on a cluster where pods run. Each
//! scenario fails (never passes) without `PROGLOG_E2E_PODS=1`, has a deadline, and dumps pods,
//! events, the ProgLogCluster status and every log when it fails.

use std::{collections::BTreeSet, time::Duration};

use anyhow::ensure;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{Event, PersistentVolumeClaim, Pod, Secret},
};
use kube::{
    Api,
    api::{DeleteParams, ListParams, Patch, PatchParams},
};
use proglog_e2e::{
    E2eError, env,
    load::{self, Load, LoadConfig},
    log_client,
    port_forward::PortForward,
    scenario::{CA_SECRET, GRPC_PORT, Scenario, pod_names, pods_spec},
    tls_probe,
    wait::{Check, until},
};
use serde_json::json;
use time::OffsetDateTime;

/// The names the operator puts in a node certificate (operator/src/ca.rs `node_sans`).
fn node_sans(cluster: &str, ns: &str, pods: usize) -> Vec<String> {
    let headless = format!("{cluster}-headless");
    let mut sans = BTreeSet::new();
    for pod in pod_names(cluster, pods) {
        sans.insert(format!("{pod}.{headless}"));
        sans.insert(format!("{pod}.{headless}.{ns}"));
        sans.insert(format!("{pod}.{headless}.{ns}.svc"));
        sans.insert(format!("{pod}.{headless}.{ns}.svc.cluster.local"));
    }
    for service in [cluster.to_owned(), headless] {
        sans.insert(service.clone());
        sans.insert(format!("{service}.{ns}"));
        sans.insert(format!("{service}.{ns}.svc"));
        sans.insert(format!("{service}.{ns}.svc.cluster.local"));
    }
    for local in ["localhost", "127.0.0.1", "::1"] {
        sans.insert(local.to_owned());
    }
    sans.into_iter().collect()
}

/// Lifetime of the short-lived node certificate: long enough for the kubelet to deliver it to
/// every pod (Secret volumes refresh within about a minute) before the operator renews it at
/// two thirds of its lifetime.
fn short_lifetime() -> Duration {
    Duration::from_secs(
        std::env::var("PROGLOG_E2E_SHORT_CERT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(480),
    )
}

async fn served_by(sc: &Scenario, pod: &str) -> Result<tls_probe::ServedCertificate, E2eError> {
    let forward = PortForward::to_pod(&sc.ns, pod, GRPC_PORT, env::api_timeout()).await?;
    tls_probe::served_certificate(forward.local_port, &sc.ca.cert_pem, &sc.identity).await
}

/// Scenario 6: node certificates are renewed while clients and replication keep working.
///
/// `spec.tls.certificateLifetimeHours` is at least 1 (renewal after 40 minutes), too long for a
/// test, so the test gives the cluster a short-lived node certificate itself: it replaces the
/// node certificate Secret with one from the same CA, for the same names and identity, valid
/// for a few minutes. The operator must renew it at two thirds of that lifetime (its renewal
/// rule), every node must pick the renewed certificate up without a restart, and produces,
/// consumes and replication must go on — also after the short-lived certificate expired.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn certificates_are_renewed_while_clients_and_replication_keep_working() -> anyhow::Result<()>
{
    let sc = Scenario::start("renew").await?;
    let result = sc.within_deadline(renew(&sc)).await;
    sc.finish(result).await
}

async fn renew(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "renew";
    const REPLICAS: usize = 3;
    sc.create_cluster(NAME, pods_spec(3)).await?;
    let status = sc.wait_healthy(NAME, REPLICAS).await?;
    sc.log(format!("healthy: {}", status.brief()));
    let pods = pod_names(NAME, REPLICAS);
    let original = served_by(sc, &pods[0]).await?;

    let load = Load::start(
        sc.service_forward(NAME).await?,
        &sc.ca.cert_pem,
        &sc.identity,
        LoadConfig::default(),
    );
    load.wait_for_progress(100, env::pod_timeout()).await?;

    let lifetime = short_lifetime();
    let now = OffsetDateTime::now_utc();
    let not_before = now - Duration::from_secs(10);
    let not_after = now + lifetime;
    let short = log_client::issue_node_certificate(
        &sc.ca,
        &format!("{NAME}-node"),
        &node_sans(NAME, &sc.ns, REPLICAS),
        not_before,
        not_after,
    )?;
    let secrets: Api<Secret> = Api::namespaced(sc.client.clone(), &sc.ns);
    secrets
        .patch(
            &format!("{NAME}-node-tls"),
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": {
                "tls.crt": short.cert_pem,
                "tls.key": short.key_pem,
                "ca.crt": sc.ca.cert_pem,
            }})),
        )
        .await?;
    let short_expiry = not_after.unix_timestamp();
    let renew_at = not_before + (not_after - not_before) * 2 / 3;
    sc.log(format!(
        "node certificate replaced by one valid until {not_after} (renewal due at {renew_at})"
    ));

    // Every pod serves the short-lived certificate (else the test would prove nothing)...
    // pod -> (served the short-lived certificate, then a renewed one)
    let seen = std::sync::Mutex::new((BTreeSet::new(), BTreeSet::new()));
    until(
        "every pod to serve the short-lived certificate, then the renewed one",
        lifetime + env::pod_timeout(),
        || {
            let (pods, seen) = (&pods, &seen);
            async move {
                for pod in pods {
                    let served = served_by(sc, pod).await?;
                    let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                    if served.not_after == short_expiry {
                        seen.0.insert(pod.clone());
                    } else if served.not_after > short_expiry && seen.0.contains(pod) {
                        seen.1.insert(pod.clone());
                    }
                }
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                Ok(if seen.1.len() == pods.len() {
                    Check::Done(())
                } else {
                    Check::NotYet(format!(
                        "served the short-lived certificate: {:?}; then a renewed one: {:?}",
                        seen.0, seen.1
                    ))
                })
            }
        },
    )
    .await
    .map_err(|err| {
        anyhow::anyhow!(
            "{err} (a pod that never served the short-lived certificate got the renewal before \
             the kubelet delivered the short one: raise PROGLOG_E2E_SHORT_CERT_SECS)"
        )
    })?;
    let renewed = served_by(sc, &pods[0]).await?;
    ensure!(
        renewed.serial != original.serial,
        "the renewed certificate is the original one"
    );
    sc.log(format!(
        "every pod served the short-lived certificate, then the renewed one (expires {})",
        renewed.not_after
    ));

    // Past the short-lived certificate's expiry everything must still work: produces through the
    // Service, new connections to every pod, replication to every pod.
    let wait = (not_after - OffsetDateTime::now_utc()).max(time::Duration::ZERO)
        + time::Duration::seconds(5);
    sc.log(format!(
        "waiting {wait} for the short-lived certificate to expire"
    ));
    tokio::time::sleep(wait.try_into()?).await;
    let expired_at = load.elapsed();
    load.wait_for_progress(200, env::pod_timeout()).await?;
    let history = load.stop().await;
    sc.log(format!("load: {}", history.summary()));
    ensure!(
        history.acks_after(expired_at) > 0,
        "no produce acknowledged after the short-lived certificate expired"
    );
    // A certificate problem shows as a failed handshake (retried as "not executed") or a failed
    // call; either fails the scenario. Other failures (an election on a busy machine) are shown.
    let tls_trouble = |text: &str| {
        let text = text.to_ascii_lowercase();
        ["certificate", "handshake", "alert", "tls", "expired"]
            .iter()
            .any(|word| text.contains(word))
    };
    let tls_failures: Vec<_> = history
        .failures
        .iter()
        .filter(|f| f.outcome == load::Outcome::Refused || tls_trouble(&f.error))
        .collect();
    ensure!(
        tls_failures.is_empty(),
        "produces failed during the renewal: {tls_failures:?}"
    );
    let tls_retries: Vec<_> = history
        .retry_errors
        .iter()
        .filter(|(error, _)| tls_trouble(error))
        .collect();
    ensure!(
        tls_retries.is_empty(),
        "connections failed during the renewal: {tls_retries:?}"
    );
    let (_, status) = sc.status(NAME).await?;
    let expiry = status.certificate_expiry.clone().unwrap_or_default();
    ensure!(
        time::OffsetDateTime::parse(&expiry, &time::format_description::well_known::Rfc3339)
            .is_ok_and(|t| t.unix_timestamp() > short_expiry),
        "status.certificateExpiry {expiry:?} does not show the renewed certificate"
    );
    let verified = sc.verify_acks(&pods, &history.acks).await?;
    sc.log(format!("no acknowledged record lost: {verified}"));
    Ok(())
}

/// Scenario 7 (second half): specs the API server accepts but the cluster cannot satisfy
/// surface in the status. A CA Secret that does not exist makes the cluster Degraded with
/// reason CASecretInvalid (and a Warning event) until the Secret appears; a StorageClass that
/// does not exist leaves the cluster Pending: not Available (NotInitialized) and Progressing
/// (Waiting for pod 0, whose volume cannot be provisioned).
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn an_unsatisfiable_spec_surfaces_as_a_condition() -> anyhow::Result<()> {
    let sc = Scenario::start("unsat").await?;
    let result = sc.within_deadline(unsatisfiable(&sc)).await;
    sc.finish(result).await
}

async fn unsatisfiable(sc: &Scenario) -> anyhow::Result<()> {
    // A CA Secret that does not exist.
    const NO_CA: &str = "noca";
    const MISSING: &str = "missing-ca";
    let mut spec = pods_spec(1);
    spec["tls"]["caSecretName"] = json!(MISSING);
    sc.create_cluster(NO_CA, spec).await?;
    let status = until(
        "a Degraded condition naming the missing CA Secret",
        env::api_timeout(),
        || async {
            let (generation, status) = sc.status(NO_CA).await?;
            Ok(match status.condition("Degraded") {
                Some(c)
                    if c.status == "True"
                        && c.reason == "CASecretInvalid"
                        && c.message.contains(MISSING)
                        && status.observed_generation == generation
                        && status.phase.as_deref() == Some("Degraded") =>
                {
                    Check::Done(status)
                }
                _ => Check::NotYet(status.brief()),
            })
        },
    )
    .await?;
    sc.log(format!("missing CA Secret: {}", status.brief()));
    let events: Api<Event> = Api::namespaced(sc.client.clone(), &sc.ns);
    until(
        "a Warning event CASecretInvalid",
        env::api_timeout(),
        || async {
            let list = events
                .list(&ListParams::default().fields(&format!("involvedObject.name={NO_CA}")))
                .await?;
            Ok(
                if list.items.iter().any(|e| {
                    e.type_.as_deref() == Some("Warning")
                        && e.reason.as_deref() == Some("CASecretInvalid")
                }) {
                    Check::Done(())
                } else {
                    Check::NotYet(format!("{} events", list.items.len()))
                },
            )
        },
    )
    .await?;
    let statefulsets: Api<StatefulSet> = Api::namespaced(sc.client.clone(), &sc.ns);
    ensure!(
        statefulsets.get_opt(NO_CA).await?.is_none(),
        "a StatefulSet was created although the CA is missing"
    );
    // The condition follows the cause: once the Secret exists the cluster comes up.
    let secrets: Api<Secret> = Api::namespaced(sc.client.clone(), &sc.ns);
    let mut ca = secrets.get(CA_SECRET).await?;
    ca.metadata = kube::api::ObjectMeta {
        name: Some(MISSING.to_owned()),
        ..Default::default()
    };
    secrets.create(&Default::default(), &ca).await?;
    let status = sc.wait_healthy(NO_CA, 1).await?;
    sc.log(format!("CA Secret created: {}", status.brief()));
    sc.clusters()
        .delete(NO_CA, &DeleteParams::default())
        .await?;

    // A StorageClass that does not exist.
    const NO_STORAGE: &str = "nostorage";
    let mut spec = pods_spec(1);
    spec["storage"]["storageClassName"] = json!("proglog-e2e-no-such-class");
    sc.create_cluster(NO_STORAGE, spec).await?;
    let status = until(
        "Available False (NotInitialized) and Progressing True while pod 0 cannot start",
        env::api_timeout(),
        || async {
            let (generation, status) = sc.status(NO_STORAGE).await?;
            let progressing = status.condition("Progressing");
            let available = status.condition("Available");
            Ok(
                if status.observed_generation == generation
                    && status.phase.as_deref() == Some("Pending")
                    && available
                        .is_some_and(|c| c.status == "False" && c.reason == "NotInitialized")
                    && progressing.is_some_and(|c| {
                        c.status == "True" && c.reason == "Waiting" && c.message.contains("pod 0")
                    })
                {
                    Check::Done(status)
                } else {
                    Check::NotYet(status.brief())
                },
            )
        },
    )
    .await?;
    let pod: Pod = sc.pods().get(&format!("{NO_STORAGE}-0")).await?;
    let phase = pod.status.and_then(|s| s.phase);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sc.client.clone(), &sc.ns);
    let claim_phase = claims
        .get(&format!("data-{NO_STORAGE}-0"))
        .await?
        .status
        .and_then(|s| s.phase);
    ensure!(
        phase.as_deref() == Some("Pending") && claim_phase.as_deref() == Some("Pending"),
        "pod {NO_STORAGE}-0 is {phase:?} and its PVC {claim_phase:?}; both must be Pending"
    );
    sc.log(format!(
        "missing StorageClass: pod and PVC Pending; {}",
        status.brief()
    ));
    Ok(())
}
