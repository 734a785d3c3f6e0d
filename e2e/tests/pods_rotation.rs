//! Pod scenario of the operator's CA key rotation under a steady load: the CA is replaced while
//! an application produces and consumes (scenario 9 of the table in docs/LOCAL_KUBERNETES.md).
//! It creates no pod once its cluster is up (certificates are reloaded in place), so
//! scripts/e2e-pods.sh runs this file in the lane beside the one that cordons nodes.
//!
//! `#[ignore]`d: run by scripts/e2e-pods.sh (`make e2e-pods`) on a cluster where pods run. The
//! scenario fails (never passes) without `PROGLOG_E2E_PODS=1`, has a deadline, and dumps pods,
//! events, the ProgLogCluster status and every log when it fails.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use proglog_e2e::{
    consume_load::ConsumeLoad,
    credentials::follow_secret,
    env,
    load::{Load, LoadConfig},
    log_client,
    port_forward::PortForward,
    scenario::{GRPC_PORT, Scenario, pod_names, pods_spec},
    users,
    verify::verify_everywhere,
    wait::{Check, until},
};
use proglog_proto::log::v1::{ProduceRequest, Record};
use serde_json::json;

/// Annotation on the ProgLogCluster requesting a CA rotation (operator/src/ca_rotation.rs).
const ROTATE_ANNOTATION: &str = "proglog.dev/rotate-ca";
/// Annotations on the CA Secret `NAME-ca`.
const GENERATION_ANNOTATION: &str = "proglog.dev/ca-generation";
const PHASE_ANNOTATION: &str = "proglog.dev/ca-rotation-phase";
/// The rotation phases in the order the operator goes through them.
const PHASES: [&str; 3] = ["TrustBoth", "Reissue", "DropOld"];

/// Scenario 9: annotating the cluster with `proglog.dev/rotate-ca` replaces the operator's CA
/// while an application (a ProgLogUser whose Secret it re-reads) produces and consumes through
/// the client Service: the rotation goes through TrustBoth → Reissue → DropOld (two CAs trusted
/// on the way) to CA generation 2 alone; no acknowledged record is lost, no produce fails
/// without a safe retry, no read fails after reaching a node, every read agrees with the
/// acknowledgements, the operator still manages a healthy cluster, and the application's old
/// certificate is refused at the end.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn rotating_the_ca_under_produce_and_consume_fails_no_request() -> anyhow::Result<()> {
    let sc = Scenario::start("rotate-ca").await?;
    let result = sc.within_deadline(rotate_ca(&sc)).await;
    sc.finish(result).await
}

/// The CA Secret's annotations that track a rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CaProgress {
    generation: Option<String>,
    phase: Option<String>,
}

async fn ca_progress(secrets: &Api<Secret>, name: &str) -> anyhow::Result<(CaProgress, Secret)> {
    let secret = secrets.get(name).await?;
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    Ok((
        CaProgress {
            generation: annotations.get(GENERATION_ANNOTATION).cloned(),
            phase: annotations.get(PHASE_ANNOTATION).cloned(),
        },
        secret,
    ))
}

fn secret_text(secret: &Secret, key: &str) -> Option<String> {
    let bytes = secret.data.as_ref()?.get(key)?;
    String::from_utf8(bytes.0.clone()).ok()
}

async fn rotate_ca(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "rotate";
    const APP: &str = "e2e-rotation-app";
    // The operator rotates only the CA it manages: no spec.tls.caSecretName.
    let mut spec = pods_spec(3);
    spec.as_object_mut()
        .context("the spec is an object")?
        .remove("tls");
    sc.create_cluster(NAME, spec).await?;
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", status.brief()));
    let secrets: Api<Secret> = Api::namespaced(sc.client.clone(), &sc.ns);
    let ca_secret = format!("{NAME}-ca");
    let (before, ca) = ca_progress(&secrets, &ca_secret).await?;
    ensure!(
        before.phase.is_none() && before.generation.as_deref().unwrap_or("1") == "1",
        "before the rotation the CA must be generation 1 and idle: {before:?}"
    );
    let old_ca_pem = secret_text(&ca, "tls.crt").context("the CA Secret's tls.crt")?;

    // The application: a user whose Secret it re-reads every second.
    let user_secret = users::create_user(sc, NAME, APP).await?;
    let follower = follow_secret(&sc.client, &sc.ns, &user_secret, Duration::from_secs(1)).await?;
    let credentials = follower.credentials();
    let initial = credentials.current();
    ensure!(
        initial.ca_pem == old_ca_pem,
        "the user Secret's ca.crt is not the cluster's CA before the rotation"
    );
    // Ready means every node enforces the user's rules: each pod accepts its first produce
    // (the load below reaches all of them through the Service).
    for pod in pod_names(NAME, 3) {
        let forward = PortForward::to_pod(&sc.ns, &pod, GRPC_PORT, env::api_timeout()).await?;
        let log =
            log_client::connect(forward.local_port, &initial.ca_pem, &initial.identity).await?;
        users::produce_allowed(&log, &format!("the application is allowed in on {pod}")).await?;
    }
    sc.log(format!(
        "user {APP} Ready with Secret {user_secret}; every pod accepted its first produce"
    ));

    // Nothing restarts during a rotation: one forward serves every client.
    let forward = sc.service_forward(NAME).await?;
    let load = Load::start_following(
        std::slice::from_ref(&forward),
        &credentials,
        LoadConfig::default(),
    );
    let reads = ConsumeLoad::start(forward, &credentials, 2, Duration::from_millis(200));
    load.wait_for_progress(100, env::pod_timeout()).await?;
    reads.wait_for_progress(100, env::pod_timeout()).await?;

    let token = format!("e2e-{:08x}", rand::random::<u32>());
    sc.log(format!("annotating {ROTATE_ANNOTATION}={token}"));
    let requested = Instant::now();
    sc.clusters()
        .patch(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": { ROTATE_ANNOTATION: &token } } })),
        )
        .await?;

    // Every phase seen (in order, with when), and the most CAs the status trusted at once.
    let seen: Mutex<(Vec<(String, Duration)>, usize)> = Mutex::new((Vec::new(), 0));
    until(
        "the CA rotation to complete",
        env::pod_timeout(),
        || async {
            sc.operator_alive()?;
            let (progress, _) = ca_progress(&secrets, &ca_secret)
                .await
                .map_err(|e| proglog_e2e::E2eError::Unexpected(format!("{e:#}")))?;
            let (_, status) = sc.status(NAME).await?;
            let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(phase) = &progress.phase
                && seen.0.last().map(|(p, _)| p) != Some(phase)
            {
                seen.0.push((phase.clone(), requested.elapsed()));
            }
            seen.1 = seen.1.max(status.trusted_cas.len());
            let done = progress.generation.as_deref() == Some("2")
                && progress.phase.is_none()
                && status.trusted_cas.len() == 1
                && status.trusted_cas[0].generation == 2
                && status.trusted_cas[0].signing;
            Ok(if done {
                Check::Done(())
            } else {
                Check::NotYet(format!(
                    "CA Secret {progress:?}; status trustedCas {:?}; {}",
                    status.trusted_cas,
                    status.brief()
                ))
            })
        },
    )
    .await?;
    let rotated_in = requested.elapsed();
    let (phases, most_trusted) = seen.into_inner().unwrap_or_else(|p| p.into_inner());
    sc.log(format!(
        "rotated in {rotated_in:.1?}: phases {phases:?}, at most {most_trusted} CAs trusted; \
         the application's Secret changed: {:?}",
        follower.changes()
    ));
    let names: Vec<&str> = phases.iter().map(|(p, _)| p.as_str()).collect();
    let mut expected = PHASES.iter();
    ensure!(
        !names.is_empty() && names.iter().all(|p| expected.any(|e| e == p)),
        "the CA Secret's phases were {names:?}, not in the order {PHASES:?}"
    );
    ensure!(
        most_trusted == 2,
        "status.trustedCas never listed the old and the new CA together (at most {most_trusted})"
    );

    // The application follows: its Secret now holds the new CA alone and a certificate it
    // signed, and the load keeps going with them.
    let (_, ca) = ca_progress(&secrets, &ca_secret).await?;
    let new_ca_pem = secret_text(&ca, "tls.crt").context("the CA Secret's tls.crt")?;
    ensure!(
        new_ca_pem != old_ca_pem,
        "the CA certificate did not change"
    );
    // The Secret got the new bundle a pass before the rotation ended; the follower polls it
    // every second.
    let now = until(
        "the application's credentials to follow the rotation",
        Duration::from_secs(30),
        || async {
            let now = credentials.current();
            let bundle_new = now.ca_pem == new_ca_pem;
            let reissued = now.identity.cert_pem != initial.identity.cert_pem;
            Ok(if bundle_new && reissued {
                Check::Done(now)
            } else {
                Check::NotYet(format!(
                    "bundle is the new CA: {bundle_new}, certificate reissued: {reissued}"
                ))
            })
        },
    )
    .await?;
    load.wait_for_progress(100, env::pod_timeout()).await?;
    reads.wait_for_progress(100, env::pod_timeout()).await?;
    let history = load.stop().await;
    let read_history = reads.stop().await;
    sc.log(format!("load: {}", history.summary()));
    sc.log(format!("reads: {}", read_history.summary()));
    ensure!(
        history.failures.is_empty(),
        "{} produces failed without a safe retry: {:?}",
        history.failures.len(),
        &history.failures[..history.failures.len().min(10)]
    );
    ensure!(
        read_history.failures.is_empty(),
        "{} reads failed after reaching a node: {:?}",
        read_history.failures.len(),
        &read_history.failures[..read_history.failures.len().min(10)]
    );
    let checked = read_history
        .check_against(&history.acks)
        .map_err(anyhow::Error::msg)?;
    sc.log(format!(
        "{checked} reads of acknowledged records at their offsets"
    ));
    let verified = verify_everywhere(
        &sc.ns,
        &pod_names(NAME, 3),
        &now.ca_pem,
        &now.identity,
        &history.acks,
        env::pod_timeout(),
    )
    .await?;
    sc.log(format!("no acknowledged record lost: {verified}"));

    // The operator reaches every node with its switched identity, and the old CA is gone:
    // the application's first certificate is refused now.
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy after the rotation: {}", status.brief()));
    let forward = PortForward::to_service(&sc.ns, NAME, GRPC_PORT, env::api_timeout()).await?;
    let produce_with = |identity: proglog_e2e::log_client::PemPair| {
        let ca_pem = now.ca_pem.clone();
        let port = forward.local_port;
        async move {
            let mut log = log_client::connect(port, &ca_pem, &identity)
                .await
                .map_err(|err| err.to_string())?;
            log.produce(ProduceRequest {
                record: Some(Record {
                    value: "after the rotation".into(),
                    ..Record::default()
                }),
            })
            .await
            .map(|r| r.into_inner().offset)
            .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
        }
    };
    let current = produce_with(now.identity.clone()).await;
    ensure!(
        current.is_ok(),
        "the reissued certificate cannot produce after the rotation: {current:?}"
    );
    let refused = produce_with(initial.identity.clone()).await;
    ensure!(
        refused.is_err(),
        "a certificate of the old CA still produces after the rotation: {refused:?}"
    );
    sc.log(format!("the old certificate is refused: {refused:?}"));
    Ok(())
}
