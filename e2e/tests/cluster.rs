//! API-level scenarios of a ProgLogCluster against whatever cluster `KUBECONFIG` names: what
//! the API server and kube-controller-manager do (schema validation — the first half of
//! scenario 7 of the table in docs/LOCAL_KUBERNETES.md —, the operator's objects, the StatefulSet controller creating pods, finalizer and
//! garbage collection). They need no kubelet, so they also run on the local control plane.
//! `#[ignore]`d: run with `make e2e` (scripts/control-plane/with-control-plane.sh) or
//! scripts/e2e-pods.sh. Scenarios with running pods are in the `pods_*.rs` files.

use anyhow::{Context, bail, ensure};
use k8s_openapi::{
    ByteString,
    api::{
        apps::v1::StatefulSet,
        core::v1::{ConfigMap, Pod, Secret, Service},
        policy::v1::PodDisruptionBudget,
    },
    apimachinery::pkg::util::intstr::IntOrString,
};
use kube::{
    Api, Client,
    api::{DeleteParams, DynamicObject, PostParams},
};
use proglog_e2e::{
    crd, env,
    namespace::{self, TestNamespace},
    operator::Operator,
    owned::list_owned,
    scenario::{acl_rules, cluster_object, cluster_resource},
    wait::{Check, until},
};
use serde_json::json;

async fn setup(prefix: &str) -> anyhow::Result<(Client, TestNamespace)> {
    let client = namespace::client().await?;
    for path in env::crd_paths() {
        crd::install(&client, &path).await?;
    }
    let ns = TestNamespace::create(&client, prefix).await?;
    Ok((client, ns))
}

/// The API server rejects invalid clusters through the CRD's schema and CEL rules (a real
/// apiserver evaluates them; a mock would not).
#[tokio::test]
#[ignore = "needs a cluster: make e2e"]
async fn invalid_clusters_are_rejected_by_the_api_server() -> anyhow::Result<()> {
    let (client, ns) = setup("validation").await?;
    let clusters = Api::<DynamicObject>::namespaced_with(client, &ns.name, &cluster_resource());

    // (what is wrong, the spec, a word the API server's message must contain)
    let invalid = [
        ("zero replicas", json!({ "replicas": 0 }), "replicas"),
        (
            "a storage size that is not a quantity",
            json!({ "storage": { "size": "lots" } }),
            "quantity",
        ),
        (
            "an unknown pull policy",
            json!({ "imagePullPolicy": "Sometimes" }),
            "imagePullPolicy",
        ),
    ];
    for (what, spec, expected_word) in invalid {
        let result = clusters
            .create(&PostParams::default(), &cluster_object("invalid", spec)?)
            .await;
        match result {
            Err(kube::Error::Api(status)) if status.code == 422 => ensure!(
                status.message.contains(expected_word),
                "rejection of {what} does not mention {expected_word:?}: {}",
                status.message
            ),
            other => bail!("a cluster with {what} was not rejected as invalid: {other:?}"),
        }
    }
    clusters
        .create(
            &PostParams::default(),
            &cluster_object("valid", json!({ "replicas": 1 }))?,
        )
        .await
        .context("a minimal valid cluster is accepted")?;
    ns.delete().await?;
    Ok(())
}

/// The operator turns a ProgLogCluster into owned objects, the StatefulSet controller creates
/// its pods, and deleting the cluster runs the finalizer and garbage-collects everything.
#[tokio::test]
#[ignore = "needs a cluster: make e2e"]
async fn operator_creates_owned_resources_and_deletion_cleans_them_up() -> anyhow::Result<()> {
    let (client, ns) = setup("reconcile").await?;
    let mut operator = Operator::start(&ns.name)?;
    let result = reconcile_and_delete(&client, &ns.name, &mut operator).await;
    if result.is_err() {
        eprintln!("operator log:\n{}", operator.log_tail());
    }
    result?;
    ns.delete().await?;
    Ok(())
}

async fn reconcile_and_delete(
    client: &Client,
    ns: &str,
    operator: &mut Operator,
) -> anyhow::Result<()> {
    let clusters = Api::<DynamicObject>::namespaced_with(client.clone(), ns, &cluster_resource());
    let spec = json!({ "replicas": 3, "storage": { "size": "1Gi" }, "acl": acl_rules() });
    let created = clusters
        .create(&PostParams::default(), &cluster_object("demo", spec)?)
        .await?;
    let uid = created.metadata.uid.context("created cluster has a uid")?;

    let statefulsets = Api::<StatefulSet>::namespaced(client.clone(), ns);
    let statefulset = until("the operator's StatefulSet", env::api_timeout(), || {
        let alive = operator.ensure_running();
        let (api, uid) = (statefulsets.clone(), uid.clone());
        async move {
            alive?;
            Ok(match list_owned(&api, &uid).await?.pop() {
                Some(sts) => Check::Done(sts),
                None => Check::NotYet("no StatefulSet owned by the cluster".to_owned()),
            })
        }
    })
    .await?;
    let sts_spec = statefulset
        .spec
        .as_ref()
        .context("StatefulSet has a spec")?;
    let replicas = sts_spec.replicas.unwrap_or(1);
    ensure!(
        (1..=3).contains(&replicas),
        "StatefulSet replicas {replicas} not in 1..=3"
    );
    ensure!(
        sts_spec
            .volume_claim_templates
            .as_ref()
            .is_some_and(|t| !t.is_empty()),
        "StatefulSet has no volumeClaimTemplates"
    );

    // Services: a headless one for peer DNS that publishes not-ready pods, and a client one.
    let services = Api::<Service>::namespaced(client.clone(), ns);
    let owned_services = until("the operator's Services", env::api_timeout(), || {
        let alive = operator.ensure_running();
        let (api, uid) = (services.clone(), uid.clone());
        async move {
            alive?;
            let owned = list_owned(&api, &uid).await?;
            Ok(if owned.len() >= 2 {
                Check::Done(owned)
            } else {
                Check::NotYet(format!("{} owned Services", owned.len()))
            })
        }
    })
    .await?;
    let is_headless =
        |s: &Service| s.spec.as_ref().and_then(|spec| spec.cluster_ip.as_deref()) == Some("None");
    let headless = owned_services
        .iter()
        .find(|s| is_headless(s))
        .context("no headless Service owned by the cluster")?;
    let headless_spec = headless
        .spec
        .as_ref()
        .context("headless Service has a spec")?;
    ensure!(
        headless_spec.publish_not_ready_addresses == Some(true),
        "the headless Service must publish not-ready addresses (peers find each other before Ready)"
    );
    ensure!(
        sts_spec.service_name.as_deref() == headless.metadata.name.as_deref(),
        "StatefulSet serviceName {:?} is not the headless Service {:?}",
        sts_spec.service_name,
        headless.metadata.name
    );
    ensure!(
        owned_services.iter().any(|s| !is_headless(s)),
        "no client (non-headless) Service owned by the cluster"
    );

    let configmaps = list_owned(&Api::<ConfigMap>::namespaced(client.clone(), ns), &uid).await?;
    ensure!(
        !configmaps.is_empty(),
        "no ConfigMap (node config, ACL) owned by the cluster"
    );
    let secrets = list_owned(&Api::<Secret>::namespaced(client.clone(), ns), &uid).await?;
    ensure!(
        secrets.iter().any(holds_certificate),
        "no Secret with a PEM certificate owned by the cluster (found {})",
        secrets.len()
    );
    let pdbs = list_owned(
        &Api::<PodDisruptionBudget>::namespaced(client.clone(), ns),
        &uid,
    )
    .await?;
    let pdb_spec = pdbs
        .first()
        .and_then(|pdb| pdb.spec.as_ref())
        .context("no PodDisruptionBudget owned by the cluster")?;
    ensure!(
        pdb_spec.max_unavailable == Some(IntOrString::Int(1)),
        "PodDisruptionBudget maxUnavailable is {:?}, want 1",
        pdb_spec.max_unavailable
    );

    // kube-controller-manager's StatefulSet controller creates the pods (Pending without a
    // kubelet; Running on kind).
    let sts_uid = statefulset
        .metadata
        .uid
        .clone()
        .context("StatefulSet has a uid")?;
    let pods = Api::<Pod>::namespaced(client.clone(), ns);
    until(
        "the StatefulSet controller to create a pod",
        env::api_timeout(),
        || {
            let (api, sts_uid) = (pods.clone(), sts_uid.clone());
            async move {
                Ok(match list_owned(&api, &sts_uid).await?.len() {
                    0 => Check::NotYet("no pod owned by the StatefulSet".to_owned()),
                    n => Check::Done(n),
                })
            }
        },
    )
    .await?;

    until(
        "status.observedGeneration to reach the generation",
        env::api_timeout(),
        || {
            let alive = operator.ensure_running();
            let api = clusters.clone();
            async move {
                alive?;
                let cluster = api.get("demo").await?;
                let observed = cluster.data["status"]["observedGeneration"].as_i64();
                Ok(
                    if observed.is_some() && observed == cluster.metadata.generation {
                        Check::Done(())
                    } else {
                        Check::NotYet(format!("status: {}", cluster.data["status"]))
                    },
                )
            }
        },
    )
    .await?;

    // Deletion: the finalizer must be removed by the operator, then the garbage collector
    // (kube-controller-manager) deletes everything the cluster owned.
    clusters.delete("demo", &DeleteParams::default()).await?;
    until(
        "the cluster's finalizer to finish",
        env::api_timeout(),
        || {
            let alive = operator.ensure_running();
            let api = clusters.clone();
            async move {
                alive?;
                Ok(match api.get_opt("demo").await? {
                    None => Check::Done(()),
                    Some(c) => Check::NotYet(format!("finalizers {:?}", c.metadata.finalizers)),
                })
            }
        },
    )
    .await?;
    until(
        "garbage collection of the owned StatefulSet",
        env::api_timeout(),
        || {
            let (api, uid) = (statefulsets.clone(), uid.clone());
            async move {
                Ok(match list_owned(&api, &uid).await?.len() {
                    0 => Check::Done(()),
                    n => Check::NotYet(format!("{n} owned StatefulSets remain")),
                })
            }
        },
    )
    .await?;
    Ok(())
}

fn holds_certificate(secret: &Secret) -> bool {
    let pem = |bytes: &ByteString| bytes.0.starts_with(b"-----BEGIN CERTIFICATE-----");
    secret
        .data
        .as_ref()
        .is_some_and(|data| data.values().any(pem))
}
