//! Every membership change stays readable as its own event, against a real API server: kube's
//! Recorder folds events with the same type, reason, action and objects into one series that
//! keeps the *first* note, so the controller's `MembershipChanged` events (all about the
//! ProgLogCluster) carry an action naming the node ([`membership_event`]). With one action for
//! all of them, a scale-up showed only its first learner, and a failed member's replacement
//! never showed its new node being added (found by the e2e's replacement scenario).

mod common;

use kube::{
    Api, Resource,
    api::PostParams,
    runtime::events::{Recorder, Reporter},
};
use proglog_operator::{controller::membership_event, crd::ProgLogCluster, planner::Step};
use serde_json::json;

#[tokio::test]
#[ignore = "needs KUBECONFIG (make test-operator)"]
async fn each_membership_change_is_an_event_of_its_own() {
    let client = common::client().await;
    common::install_crd(&client).await;
    let ns = common::namespace(&client, "plc-events").await;
    let clusters: Api<ProgLogCluster> = Api::namespaced(client.clone(), &ns);
    let cluster = clusters
        .create(
            &PostParams::default(),
            &common::cluster("demo", json!({ "replicas": 3 })),
        )
        .await
        .unwrap();
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "proglog-operator".to_owned(),
            instance: None,
        },
    );

    // A scale-up from one voter, then pod 1 replaced by a new incarnation and added again.
    let learner = |ordinal: u32, node_id: u64| Step::AddLearner {
        ordinal,
        node_id,
        address: format!("demo-{ordinal}.demo-headless:8400"),
    };
    let steps = [
        Step::Initialize { node_id: 10 },
        learner(1, 11),
        Step::Promote { node_id: 11 },
        learner(2, 12),
        Step::Promote { node_id: 12 },
        Step::ReplaceFailedMember {
            ordinal: 1,
            remove_node_id: Some(11),
            delete_volume: true,
            down_for_secs: 600,
        },
        learner(1, 21),
        Step::Promote { node_id: 21 },
    ];
    for step in &steps {
        recorder
            .publish(&membership_event(step), &cluster.object_ref(&()))
            .await
            .unwrap();
    }

    let notes = common::event_notes(&client, &ns, "MembershipChanged").await;
    for step in &steps {
        assert!(
            notes.contains(&step.to_string()),
            "the change {:?} is not readable in the events: {notes:?}",
            step.to_string()
        );
    }
}
