//! What the operator says it did during a rolling restart: its `RollingRestart` and
//! `LeadershipTransferred` events, in order, and the check of that order (followers first in
//! descending ordinal, then a leadership transfer away from the last pod, then that pod); and
//! [`event_notes`], the notes of any one reason of its events.

use k8s_openapi::api::events::v1::Event;
use kube::{Api, Client, api::ListParams};

use crate::E2eError;

/// The operator's field manager and event reporter.
/// The `reportingController` of the operator's events.
pub const OPERATOR: &str = "proglog-operator";

/// One step of a roll as the operator's events record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollStep {
    /// `RollingRestart`: the pod was evicted.
    Restarted(String),
    /// `LeadershipTransferred` before restarting the pod.
    TransferredAwayFrom(String),
}

/// The pod a note names after "restarting " (`... restarting roll-2 (follower)`, `... before
/// restarting roll-0`).
fn pod_in_note(note: &str) -> Option<String> {
    let after = &note[note.rfind("restarting ")? + "restarting ".len()..];
    let pod: String = after
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    (!pod.is_empty()).then_some(pod)
}

/// The operator's events about cluster `cluster` in `ns` whose reason is one of `reasons`,
/// oldest first.
async fn operator_events(
    client: &Client,
    ns: &str,
    cluster: &str,
    reasons: &[&str],
) -> Result<Vec<Event>, E2eError> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let mut relevant: Vec<Event> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.reporting_controller.as_deref() == Some(OPERATOR)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(cluster)
                && e.reason.as_deref().is_some_and(|r| reasons.contains(&r))
        })
        .collect();
    relevant.sort_by_key(|e| {
        (
            e.event_time.as_ref().map(|t| t.0),
            e.metadata.creation_timestamp.as_ref().map(|t| t.0),
        )
    });
    Ok(relevant)
}

/// The roll's steps for `cluster` from the operator's events in `ns`, oldest first.
pub async fn roll_steps(
    client: &Client,
    ns: &str,
    cluster: &str,
) -> Result<Vec<RollStep>, E2eError> {
    operator_events(
        client,
        ns,
        cluster,
        &["RollingRestart", "LeadershipTransferred"],
    )
    .await?
    .iter()
    .map(|e| {
        let note = e.note.clone().unwrap_or_default();
        let pod = pod_in_note(&note)
            .ok_or_else(|| E2eError::Unexpected(format!("no pod in event note {note:?}")))?;
        Ok(match e.reason.as_deref() {
            Some("LeadershipTransferred") => RollStep::TransferredAwayFrom(pod),
            _ => RollStep::Restarted(pod),
        })
    })
    .collect()
}

/// The notes of the operator's events about cluster `cluster` with reason `reason`, oldest
/// first.
pub async fn event_notes(
    client: &Client,
    ns: &str,
    cluster: &str,
    reason: &str,
) -> Result<Vec<String>, E2eError> {
    Ok(operator_events(client, ns, cluster, &[reason])
        .await?
        .into_iter()
        .map(|e| e.note.unwrap_or_default())
        .collect())
}

/// Checks `steps` is one roll of `replicas` pods in the operator's order: every pod restarted
/// once; the pods before the last in descending ordinal; a leadership transfer away from the
/// last pod after them and right before its restart. Returns the restart order.
pub fn check_roll_order(
    steps: &[RollStep],
    cluster: &str,
    replicas: usize,
) -> Result<Vec<String>, String> {
    let restarts: Vec<&String> = steps
        .iter()
        .filter_map(|s| match s {
            RollStep::Restarted(pod) => Some(pod),
            RollStep::TransferredAwayFrom(_) => None,
        })
        .collect();
    let mut expected_pods: Vec<String> = (0..replicas).map(|o| format!("{cluster}-{o}")).collect();
    let mut sorted: Vec<String> = restarts.iter().map(|p| (*p).clone()).collect();
    sorted.sort();
    expected_pods.sort();
    if sorted != expected_pods {
        return Err(format!(
            "expected each of {expected_pods:?} restarted once, got {restarts:?} ({steps:?})"
        ));
    }
    let ordinal = |pod: &str| pod.rsplit('-').next().and_then(|o| o.parse::<u32>().ok());
    let (last, followers) = restarts.split_last().ok_or("no restart")?;
    let ordinals: Vec<Option<u32>> = followers.iter().map(|p| ordinal(p)).collect();
    if ordinals.windows(2).any(|w| w[0] <= w[1]) {
        return Err(format!(
            "followers were not restarted in descending ordinal: {followers:?}"
        ));
    }
    if replicas > 1 {
        let before_last = steps
            .iter()
            .position(|s| *s == RollStep::Restarted((*last).clone()))
            .and_then(|i| i.checked_sub(1))
            .map(|i| &steps[i]);
        if before_last != Some(&RollStep::TransferredAwayFrom((*last).clone())) {
            return Err(format!(
                "the last pod {last} (the leader) was not restarted right after a leadership \
                 transfer away from it: {steps:?}"
            ));
        }
    }
    Ok(restarts.into_iter().cloned().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn restarted(pod: &str) -> RollStep {
        RollStep::Restarted(pod.to_owned())
    }

    fn transfer(pod: &str) -> RollStep {
        RollStep::TransferredAwayFrom(pod.to_owned())
    }

    #[test]
    fn notes_name_the_pod() {
        assert_eq!(
            pod_in_note("rolling restart: 0/3 pods updated, restarting roll-2 (follower)"),
            Some("roll-2".to_owned())
        );
        assert_eq!(
            pod_in_note(
                "rolling restart: 2/3 pods updated, transferring leadership from 10000 to \
                 10002 before restarting roll-0"
            ),
            Some("roll-0".to_owned())
        );
        assert_eq!(pod_in_note("nothing here"), None);
    }

    #[test]
    fn the_operator_order_passes() {
        let steps = [
            restarted("roll-2"),
            restarted("roll-1"),
            transfer("roll-0"),
            restarted("roll-0"),
        ];
        assert_eq!(
            check_roll_order(&steps, "roll", 3).unwrap(),
            ["roll-2", "roll-1", "roll-0"]
        );
        // The leader may be any ordinal.
        let steps = [
            restarted("roll-2"),
            restarted("roll-0"),
            transfer("roll-1"),
            restarted("roll-1"),
        ];
        assert!(check_roll_order(&steps, "roll", 3).is_ok());
    }

    #[test]
    fn other_orders_fail() {
        let ascending = [
            restarted("roll-1"),
            restarted("roll-2"),
            transfer("roll-0"),
            restarted("roll-0"),
        ];
        assert!(check_roll_order(&ascending, "roll", 3).is_err());
        let no_transfer = [
            restarted("roll-2"),
            restarted("roll-1"),
            restarted("roll-0"),
        ];
        assert!(check_roll_order(&no_transfer, "roll", 3).is_err());
        let twice = [
            restarted("roll-2"),
            restarted("roll-2"),
            restarted("roll-1"),
            transfer("roll-0"),
            restarted("roll-0"),
        ];
        assert!(check_roll_order(&twice, "roll", 3).is_err());
        let missing = [restarted("roll-2"), transfer("roll-1"), restarted("roll-1")];
        assert!(check_roll_order(&missing, "roll", 3).is_err());
    }
}
