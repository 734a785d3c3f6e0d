//! Events the controller publishes about a ProgLogCluster (events.k8s.io through kube's
//! Recorder), optionally naming a related object such as the pod a step acted on.

use k8s_openapi::api::core::v1::ObjectReference;
use kube::{
    Resource,
    runtime::events::{Event as KubeEvent, EventType},
};

use super::Context;
use crate::crd::ProgLogCluster;
use crate::planner::Step;

/// The event of a membership change `step` (reason `MembershipChanged`): its note says what
/// changed, its action names the node, so each change stays its own event (see
/// [`Step::event_action`]).
pub fn membership_event(step: &Step) -> KubeEvent {
    KubeEvent {
        type_: EventType::Normal,
        reason: "MembershipChanged".to_owned(),
        note: Some(step.to_string()),
        action: step.event_action(),
        secondary: None,
    }
}

/// Publishes a membership change's event about `cluster`; a failure is logged, never fatal.
pub(crate) async fn publish_membership(ctx: &Context, cluster: &ProgLogCluster, step: &Step) {
    send(ctx, cluster, &membership_event(step)).await;
}

/// Publishes an event about `cluster`; a failure is logged, never fatal.
pub(crate) async fn publish(
    ctx: &Context,
    cluster: &ProgLogCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    publish_about(ctx, cluster, type_, reason, action, note, None).await;
}

/// [`publish`] with a related object. kube's Recorder folds events with the same type, reason,
/// action and related object into one series that keeps the first note, so events that must
/// each be readable (one per restarted pod) name their pod here.
pub(crate) async fn publish_about(
    ctx: &Context,
    cluster: &ProgLogCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
    related: Option<ObjectReference>,
) {
    let event = KubeEvent {
        type_,
        reason: reason.to_owned(),
        note: Some(note),
        action: action.to_owned(),
        secondary: related,
    };
    send(ctx, cluster, &event).await;
}

/// Publishes `event` about `cluster`; a failure is logged, never fatal.
async fn send(ctx: &Context, cluster: &ProgLogCluster, event: &KubeEvent) {
    if let Err(error) = ctx.recorder.publish(event, &cluster.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}
