//! Pod scenarios that change the cluster under a steady produce load: scaling 3 → 5 → 3
//! (scenario 3 of the table in docs/LOCAL_KUBERNETES.md) and a configuration change rolling the
//! pods (scenario 5).
//!
//! `#[ignore]`d: run by scripts/e2e-pods.sh (`make e2e-pods`) on a cluster where pods run. Each
//! scenario fails (never passes) without `PROGLOG_E2E_PODS=1`, has a deadline, and dumps pods,
//! events, the ProgLogCluster status and every log when it fails.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, ensure};
use bytes::Bytes;
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::PersistentVolumeClaim};
use kube::Api;
use proglog_e2e::{
    env,
    load::{Load, LoadConfig},
    log_client,
    port_forward::PortForward,
    rolling::{check_roll_order, event_notes, roll_steps},
    scenario::{GRPC_PORT, Scenario, pod_names, pods_spec},
    status::pod_of_address,
    wait::{Check, until},
};
use proglog_proto::log::v1::{ProduceRequest, Record};
use serde_json::json;
use tonic::Code;

/// Scenario 3: under a steady produce load, scaling 3 → 5 → 3 changes the Raft membership to
/// follow the spec (5 voters on pods 0-4, then 3 on pods 0-2), no acknowledged record is lost
/// and no produce fails other than refusals the client could safely retry.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn scaling_3_5_3_under_load_follows_the_spec_and_loses_nothing() -> anyhow::Result<()> {
    let sc = Scenario::start("scale").await?;
    let result = sc.within_deadline(scale(&sc)).await;
    sc.finish(result).await
}

async fn scale(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "scale";
    sc.create_cluster(NAME, pods_spec(3)).await?;
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("healthy: {}", status.brief()));

    let load = Load::start(
        sc.service_forward(NAME).await?,
        &sc.ca.cert_pem,
        &sc.identity,
        LoadConfig::default(),
    );
    load.wait_for_progress(100, env::pod_timeout()).await?;

    sc.log("scaling to 5");
    sc.patch_spec(NAME, json!({ "replicas": 5 })).await?;
    let status = sc.wait_healthy(NAME, 5).await?;
    sc.log(format!("5 voters: {}", status.brief()));
    load.wait_for_progress(100, env::pod_timeout()).await?;

    sc.log("scaling back to 3");
    sc.patch_spec(NAME, json!({ "replicas": 3 })).await?;
    let status = sc.wait_healthy(NAME, 3).await?;
    sc.log(format!("3 voters: {}", status.brief()));
    for ordinal in [3, 4] {
        ensure!(
            status.voters.iter().all(|m| m.node_id % 10_000 != ordinal),
            "a member of ordinal {ordinal} is still a voter: {}",
            status.brief()
        );
    }
    // whenScaled: Retain — the volumes of removed pods stay for a later scale-up.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(sc.client.clone(), &sc.ns);
    for ordinal in [3, 4] {
        let claim = format!("data-{NAME}-{ordinal}");
        ensure!(
            claims.get_opt(&claim).await?.is_some(),
            "PVC {claim} was deleted by the scale-down (persistentVolumeClaimRetentionPolicy.whenScaled is Retain)"
        );
    }
    load.wait_for_progress(100, env::pod_timeout()).await?;

    let history = load.stop().await;
    sc.log(format!("load: {}", history.summary()));
    ensure!(
        history.failures.is_empty(),
        "{} produces failed without a safe retry: {:?}",
        history.failures.len(),
        &history.failures[..history.failures.len().min(10)]
    );
    let verified = sc.verify_acks(&pod_names(NAME, 3), &history.acks).await?;
    sc.log(format!("no acknowledged record lost: {verified}"));
    Ok(())
}

/// Scenario 5: changing the node configuration (spec.log) while the maintenance window is closed
/// restarts no pod (status.operation and a `WaitingForMaintenanceWindow` event say the roll
/// waits); once a window opens, the change rolls the pods one at a time — never
/// more than one of the three not Ready — in the operator's order (followers first in descending
/// ordinal, the leader last, right after the operator transferred its leadership away; seen both
/// in the pods and in the operator's events) under a steady load, without losing an acknowledged
/// record or failing a produce the client could not safely retry, and the new configuration is in
/// effect afterwards.
#[tokio::test]
#[ignore = "needs a cluster where pods run: scripts/e2e-pods.sh"]
async fn a_config_change_rolls_the_pods_one_at_a_time_under_load() -> anyhow::Result<()> {
    let sc = Scenario::start("roll").await?;
    let result = sc.within_deadline(roll(&sc)).await;
    sc.finish(result).await
}

/// Largest record after the change (the node default is 1 MiB).
const NEW_MAX_RECORD_BYTES: u64 = 65_536;

async fn roll(sc: &Scenario) -> anyhow::Result<()> {
    const NAME: &str = "roll";
    const REPLICAS: usize = 3;
    // A maintenance window that is closed now: the first start does not wait for it, the
    // restarts of the configuration change below must.
    let mut spec = pods_spec(3);
    spec["maintenance"] = json!({ "windows": [window_from(Duration::from_secs(6 * 3600), "1h")] });
    sc.create_cluster(NAME, spec).await?;
    let status = sc.wait_healthy(NAME, REPLICAS).await?;
    sc.log(format!("healthy: {}", status.brief()));
    let first_leader = status
        .leader
        .as_deref()
        .map(|address| pod_of_address(address).to_owned())
        .context("a leader before the change")?;
    let statefulsets: Api<StatefulSet> = Api::namespaced(sc.client.clone(), &sc.ns);
    let hash_of = |sts: &StatefulSet| -> Option<String> {
        sts.spec
            .as_ref()?
            .template
            .metadata
            .as_ref()?
            .annotations
            .as_ref()?
            .get("proglog.dev/config-hash")
            .cloned()
    };
    let old_hash = hash_of(&statefulsets.get(NAME).await?).context("config-hash annotation")?;
    let mut old_uids = BTreeMap::new();
    for pod in pod_names(NAME, REPLICAS) {
        old_uids.insert(pod.clone(), sc.pods().get(&pod).await?.metadata.uid);
    }

    // Watch the pods for the whole roll: a pod missing or terminating counts as not Ready, and
    // the first time an old pod is seen terminating, gone or replaced is its restart.
    let watching = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let restarts_seen: Restarts = Arc::default();
    let monitor = {
        let watching = watching.clone();
        let restarts = restarts_seen.clone();
        let pods = sc.pods();
        let selector = format!("app.kubernetes.io/instance={NAME}");
        let old_uids = old_uids.clone();
        tokio::spawn(async move {
            let mut worst: (usize, String) = (0, String::new());
            while watching.load(Ordering::Relaxed) {
                if let Ok(list) = pods
                    .list(&kube::api::ListParams::default().labels(&selector))
                    .await
                {
                    for (name, old_uid) in &old_uids {
                        let current = list
                            .items
                            .iter()
                            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
                        let restarted = current.is_none_or(|p| {
                            p.metadata.uid != *old_uid || p.metadata.deletion_timestamp.is_some()
                        });
                        let mut restarts = restarts.lock().expect("restarts");
                        if restarted && restarts.iter().all(|(pod, _)| pod != name) {
                            restarts.push((name.clone(), started.elapsed()));
                        }
                    }
                    let ready: Vec<String> = list
                        .items
                        .iter()
                        .filter(|p| {
                            p.metadata.deletion_timestamp.is_none()
                                && proglog_e2e::scenario::is_ready(p)
                        })
                        .filter_map(|p| p.metadata.name.clone())
                        .collect();
                    let not_ready = REPLICAS.saturating_sub(ready.len());
                    if not_ready > worst.0 {
                        worst = (not_ready, format!("Ready pods at that moment: {ready:?}"));
                    }
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            worst
        })
    };

    // Every pod restarts, the forwarded one too: one forward per producer (see
    // Load::start_with_forwards), so a produce in flight is answered by the draining node.
    let config = LoadConfig::default();
    let mut forwards = Vec::new();
    for _ in 0..config.clients {
        forwards.push(sc.service_forward(NAME).await?);
    }
    let load = Load::start_with_forwards(&forwards, &sc.ca.cert_pem, &sc.identity, config);
    load.wait_for_progress(100, env::pod_timeout()).await?;
    sc.log(format!(
        "changing spec.log.maxRecordBytes to {NEW_MAX_RECORD_BYTES} (leader: {first_leader})"
    ));
    sc.patch_spec(
        NAME,
        json!({ "log": { "maxRecordBytes": NEW_MAX_RECORD_BYTES } }),
    )
    .await?;
    wait_for_the_window(sc, NAME, &old_uids).await?;
    ensure!(
        monitor_restarts(&restarts_seen).is_empty(),
        "pods restarted outside the maintenance window: {:?}",
        monitor_restarts(&restarts_seen)
    );
    // Open a window around now: the roll starts.
    let change_at = started.elapsed();
    sc.log("opening the maintenance window");
    sc.patch_spec(
        NAME,
        json!({ "maintenance": { "windows": [window_from(Duration::ZERO, "2h")] } }),
    )
    .await?;

    until(
        "every pod to be replaced with the new configuration",
        env::pod_timeout(),
        || async {
            let sts = statefulsets.get(NAME).await?;
            let hash = hash_of(&sts);
            let status = sts.status.clone().unwrap_or_default();
            // OnDelete: the StatefulSet controller never moves currentRevision; a pod is on the
            // new template when its revision label is the update revision.
            let mut replaced = 0;
            for (pod, old_uid) in &old_uids {
                if let Some(current) = sc.pods().get_opt(pod).await?
                    && current.metadata.uid != *old_uid
                    && status.update_revision.is_some()
                    && current
                        .metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get("controller-revision-hash"))
                        == status.update_revision.as_ref()
                {
                    replaced += 1;
                }
            }
            let done = hash.is_some()
                && hash.as_deref() != Some(old_hash.as_str())
                && status.updated_replicas == Some(REPLICAS as i32)
                && replaced == REPLICAS;
            Ok(if done {
                Check::Done(())
            } else {
                Check::NotYet(format!(
                    "hash changed: {}, update revision {:?}, updated {:?}, pods replaced {replaced}",
                    hash.as_deref() != Some(old_hash.as_str()),
                    status.update_revision,
                    status.updated_replicas
                ))
            })
        },
    )
    .await?;
    let replaced_at = started.elapsed();
    let status = sc.wait_healthy(NAME, REPLICAS).await?;
    let healthy_at = started.elapsed();
    sc.log(format!("rolled: {}", status.brief()));
    load.wait_for_progress(100, env::pod_timeout()).await?;
    watching.store(false, Ordering::Relaxed);
    let (worst, when) = monitor.await?;
    let restarts = monitor_restarts(&restarts_seen);
    let history = load.stop().await;
    sc.log(format!("load: {}", history.summary()));
    sc.log(format!(
        "at most {worst} pod(s) not Ready at a time ({when})"
    ));
    let timeline: Vec<String> = restarts
        .iter()
        .map(|(pod, at)| format!("{pod} at +{:.1}s", (*at - change_at).as_secs_f64()))
        .collect();
    sc.log(format!(
        "roll timings: restarts {timeline:?}; every pod replaced +{:.1}s, healthy +{:.1}s after \
         the change",
        (replaced_at - change_at).as_secs_f64(),
        (healthy_at - change_at).as_secs_f64()
    ));
    ensure!(
        worst <= 1,
        "{worst} pods were not Ready at the same time during the roll; {when}"
    );

    // The operator's order, from its events: followers in descending ordinal, then a transfer
    // away from the leader, then the leader; the pods were seen restarting in the same order.
    let steps = roll_steps(&sc.client, &sc.ns, NAME).await?;
    sc.log(format!("operator events: {steps:?}"));
    let order = check_roll_order(&steps, NAME, REPLICAS).map_err(anyhow::Error::msg)?;
    let seen: Vec<&String> = restarts.iter().map(|(pod, _)| pod).collect();
    ensure!(
        seen == order.iter().collect::<Vec<_>>(),
        "the pods restarted in the order {seen:?}, the operator's events say {order:?}"
    );
    ensure!(
        order.last() == Some(&first_leader),
        "the leader before the change, {first_leader}, was not restarted last: {order:?}"
    );

    // The new limit is in effect on the restarted nodes.
    let forward = PortForward::to_service(&sc.ns, NAME, GRPC_PORT, env::api_timeout()).await?;
    let mut log = log_client::connect(forward.local_port, &sc.ca.cert_pem, &sc.identity).await?;
    let too_large = usize::try_from(NEW_MAX_RECORD_BYTES)? + 1;
    let refused = log
        .produce(ProduceRequest {
            record: Some(Record {
                value: Bytes::from(vec![b'x'; too_large]),
                ..Record::default()
            }),
        })
        .await;
    ensure!(
        matches!(&refused, Err(status) if status.code() == Code::InvalidArgument),
        "a {too_large}-byte record must be refused after the change, got {refused:?}"
    );
    drop(forward);

    let verified = sc
        .verify_acks(&pod_names(NAME, REPLICAS), &history.acks)
        .await?;
    sc.log(format!("no acknowledged record lost: {verified}"));
    // No produce may end with an unknown outcome: a node that shuts down answers calls on new
    // connections as not executed until its calls in flight are done (node/src/server/refuse.rs;
    // before that, the old leader's closed port made kubectl's port-forward drop every
    // connection, in-flight produces included, and 1–4 ended as "transport error").
    ensure!(
        history.failures.is_empty(),
        "{} produces failed without a safe retry: {:?}",
        history.failures.len(),
        &history.failures[..history.failures.len().min(10)]
    );
    Ok(())
}

/// The pods seen restarting, in order, with when (since the monitor started).
type Restarts = Arc<std::sync::Mutex<Vec<(String, Duration)>>>;

fn monitor_restarts(restarts: &Restarts) -> Vec<(String, Duration)> {
    restarts.lock().expect("restarts").clone()
}

/// A maintenance window (UTC) opening `from_now` from now (rounded down to the minute), lasting
/// `duration`.
fn window_from(from_now: Duration, duration: &str) -> serde_json::Value {
    let opens = time::OffsetDateTime::now_utc() + from_now;
    json!({ "start": format!("{:02}:{:02}", opens.hour(), opens.minute()), "duration": duration })
}

/// After a change while the maintenance window is closed: the operator says, in status and in an
/// event, that the restart waits for the window, and it keeps waiting: the pods stay the same
/// while the operator reconciles the change several times (the StatefulSet's template has the
/// change, and the status still waits, for `HOLD` after the first sight).
async fn wait_for_the_window(
    sc: &Scenario,
    name: &str,
    old_uids: &BTreeMap<String, Option<String>>,
) -> anyhow::Result<()> {
    const HOLD: Duration = Duration::from_secs(15);
    let waiting = || async {
        let (_, status) = sc.status(name).await?;
        let operation = status.operation.clone().unwrap_or_default();
        Ok::<_, proglog_e2e::E2eError>((
            operation.contains("waiting for the maintenance window"),
            operation,
        ))
    };
    until(
        "the roll to wait for the maintenance window",
        env::pod_timeout(),
        || async {
            let (is_waiting, operation) = waiting().await?;
            Ok(if is_waiting {
                Check::Done(())
            } else {
                Check::NotYet(format!("status.operation: {operation:?}"))
            })
        },
    )
    .await?;
    let notes = until(
        "a WaitingForMaintenanceWindow event",
        env::api_timeout(),
        || async {
            let notes =
                event_notes(&sc.client, &sc.ns, name, "WaitingForMaintenanceWindow").await?;
            Ok(match notes.last() {
                Some(note) => Check::Done(note.clone()),
                None => Check::NotYet("no such event yet".to_owned()),
            })
        },
    )
    .await?;
    sc.log(format!("event: {notes}"));
    sc.log(format!(
        "the roll waits for the window; holding {HOLD:?} to see that no pod restarts"
    ));
    let held = Instant::now();
    while held.elapsed() < HOLD {
        let (is_waiting, operation) = waiting().await?;
        ensure!(
            is_waiting,
            "the roll stopped waiting for the closed window: {operation:?}"
        );
        for (pod, uid) in old_uids {
            let current = sc.pods().get(pod).await?;
            ensure!(
                current.metadata.uid == *uid && current.metadata.deletion_timestamp.is_none(),
                "{pod} was restarted while the maintenance window was closed"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
