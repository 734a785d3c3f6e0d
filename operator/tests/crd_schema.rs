//! The generated CRD against a real API server: accepted as a structural schema, served with
//! its short name and printer columns, and its validation (ranges, enums, CEL) rejects bad input.

mod common;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{
    Api,
    api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams},
};
use proglog_operator::crd::ProgLogCluster;
use serde_json::json;

fn rejection<T>(result: Result<T, kube::Error>) -> String {
    match result {
        Ok(_) => panic!("the API server accepted invalid input"),
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "validation errors are 422 Invalid: {e:?}");
            e.message
        }
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn crd_is_accepted_with_short_name_and_columns() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = crds.get("proglogclusters.proglog.dev").await.unwrap();
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["plc".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<String> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(
        columns,
        ["Replicas", "Ready", "Leader", "Phase", "Operation", "Age"]
    );
    // A structural schema has no NonStructuralSchema condition.
    let conditions = crd.status.unwrap().conditions.unwrap_or_default();
    assert!(
        !conditions
            .iter()
            .any(|c| c.type_ == "NonStructuralSchema" && c.status == "True"),
        "{conditions:?}"
    );
}

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn schema_rejects_bad_input_and_defaults_the_rest() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-schema").await;
    let api: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    // Untyped, so that input the Rust types could not even represent reaches the API server.
    let resource = ApiResource::erase::<ProgLogCluster>(&());
    let untyped: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let create = |name: &str, spec: serde_json::Value| {
        let untyped = untyped.clone();
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "proglog.dev/v1alpha1",
            "kind": "ProgLogCluster",
            "metadata": {"name": name},
            "spec": spec,
        }))
        .expect("object");
        async move { untyped.create(&PostParams::default(), &object).await }
    };

    let message = rejection(create("zero", json!({"replicas": 0})).await);
    assert!(message.contains("replicas"), "{message}");
    let message = rejection(create("pull", json!({"imagePullPolicy": "Sometimes"})).await);
    assert!(message.contains("imagePullPolicy"), "{message}");
    let message = rejection(create("size", json!({"storage": {"size": "lots"}})).await);
    assert!(message.contains("Kubernetes quantity"), "{message}");
    let message = rejection(
        create(
            "acl",
            json!({"acl": {"rules": [{"subject": "a,b", "action": "produce"}]}}),
        )
        .await,
    );
    assert!(message.contains("subject"), "{message}");

    // Record sizes: the node's limit (proglog_proto::limits::MAX_RECORD_BYTES) and nothing
    // else; a record larger than a segment is valid (the node gives it a segment of its own).
    let message = rejection(create("record", json!({"log": {"maxRecordBytes": 67108865}})).await);
    assert!(message.contains("maxRecordBytes"), "{message}");
    api.create(
        &PostParams::default(),
        &common::cluster(
            "bigrecord",
            json!({"log": {"maxRecordBytes": 67108864, "maxStoreBytes": 1048576}}),
        ),
    )
    .await
    .expect("the largest record size with small segments is accepted");

    // Defaults are filled in by the API server.
    let created = api
        .create(
            &PostParams::default(),
            &common::cluster("ok", json!({"storage": {"size": "10Gi"}})),
        )
        .await
        .expect("valid spec accepted");
    assert_eq!(created.spec.replicas, 3);
    assert_eq!(created.spec.tls.certificate_lifetime_hours, 2160);

    // Storage may grow but never shrink (CEL transition rule with oldSelf).
    let patch = |size: &str| json!({"spec": {"storage": {"size": size}}});
    let shrink = api
        .patch("ok", &PatchParams::default(), &Patch::Merge(patch("5Gi")))
        .await;
    let message = rejection(shrink);
    assert!(message.contains("storage size cannot shrink"), "{message}");
    api.patch("ok", &PatchParams::default(), &Patch::Merge(patch("20Gi")))
        .await
        .expect("growing storage is allowed");
    // Replicas cannot drop below 1 on update either.
    let message = rejection(
        api.patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 0}})),
        )
        .await,
    );
    assert!(message.contains("replicas"), "{message}");

    // spec.replacement.after: a duration of at least one minute; off when absent.
    let message = rejection(create("short", json!({"replacement": {"after": "30s"}})).await);
    assert!(message.contains("at least 1m"), "{message}");
    let message = rejection(create("unit", json!({"replacement": {"after": "10"}})).await);
    assert!(message.contains("after"), "{message}");
    let message =
        rejection(create("noafter", json!({"replacement": {"deleteVolume": true}})).await);
    assert!(message.contains("after"), "{message}");
    let replacing = api
        .create(
            &PostParams::default(),
            &common::cluster("replacing", json!({"replacement": {"after": "1h30m"}})),
        )
        .await
        .expect("a valid replacement policy is accepted");
    let policy = replacing.spec.replacement.expect("replacement kept");
    assert_eq!(policy.after, "1h30m");
    assert!(!policy.delete_volume, "deleteVolume defaults to false");
    assert_eq!(
        created.spec.replacement, None,
        "replacement is off by default"
    );
    common::delete_namespace(&client, &ns).await;
}

/// spec.maintenance.windows: the API server accepts well-formed windows and rejects a bad start,
/// a duration outside 1m..24h or not in hours and minutes, and a repeated day.
#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn maintenance_windows_are_validated() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-window").await;
    let api: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    let resource = ApiResource::erase::<ProgLogCluster>(&());
    let untyped: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let create = |name: &str, window: serde_json::Value| {
        let untyped = untyped.clone();
        let object: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "proglog.dev/v1alpha1",
            "kind": "ProgLogCluster",
            "metadata": {"name": name},
            "spec": {"maintenance": {"windows": [window]}},
        }))
        .expect("object");
        async move { untyped.create(&PostParams::default(), &object).await }
    };
    for (name, window, words) in [
        ("start", json!({"start": "2:00", "duration": "1h"}), "start"),
        ("hour", json!({"start": "24:00", "duration": "1h"}), "start"),
        (
            "days",
            json!({"start": "02:00", "duration": "1d"}),
            "duration must be",
        ),
        (
            "long",
            json!({"start": "02:00", "duration": "25h"}),
            "duration must be",
        ),
        (
            "zero",
            json!({"start": "02:00", "duration": "0m"}),
            "duration must be",
        ),
        (
            "secs",
            json!({"start": "02:00", "duration": "1h30s"}),
            "duration must be",
        ),
        (
            "twice",
            json!({"start": "02:00", "duration": "1h", "days": ["Sat", "Sat"]}),
            "days must not repeat",
        ),
        (
            "day",
            json!({"start": "02:00", "duration": "1h", "days": ["Caturday"]}),
            "days",
        ),
    ] {
        let message = rejection(create(name, window).await);
        assert!(message.contains(words), "{name}: {message}");
    }
    let accepted = api
        .create(
            &PostParams::default(),
            &common::cluster(
                "weekend",
                json!({"maintenance": {"windows": [
                    {"start": "23:30", "duration": "1h30m", "days": ["Sat", "Sun"]},
                    {"start": "02:00", "duration": "24h"},
                ]}}),
            ),
        )
        .await
        .expect("valid windows are accepted");
    let windows = &accepted.spec.maintenance.windows;
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[0].duration, "1h30m");
    common::delete_namespace(&client, &ns).await;
}
