//! Members whose node process keeps failing: a pod whose `proglog` container crash-loops, is
//! terminated with an error, or last exited with one of the node's fail-stop statuses and is not
//! Ready again. Reported as a Degraded condition (reason `MemberFailed`) naming each pod and the
//! cause the node wrote to its termination log, so `kubectl get plc` shows that a replica is lost
//! and why (docs/ARCHITECTURE.md "Failure semantics").

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::status::Problem;
use crate::builders::NODE_CONTAINER;
/// Longest part of a termination message quoted in the condition.
const MAX_CAUSE_CHARS: usize = 400;

/// What `proglog-node`'s exit statuses mean. They are defined by the node
/// (`proglog_node::config::EXIT_INVALID_CONFIG`, `proglog_node::raft::fatal::EXIT_*`), which the
/// operator does not link; docs/ARCHITECTURE.md lists them.
fn exit_meaning(code: i32) -> Option<&'static str> {
    match code {
        64 => Some("invalid configuration"),
        70 => Some("Raft core panicked, a bug; a restart usually recovers"),
        74 => Some("storage failed; a restart helps only if the cause is gone"),
        75 => Some("Raft core stopped"),
        _ => None,
    }
}

/// One failing member pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MemberFailure {
    /// Pod name.
    pub pod: String,
    /// What the pod status says, for humans.
    pub summary: String,
}

fn node_container(pod: &Pod) -> Option<&ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == NODE_CONTAINER)
}

fn failure_of(pod: &Pod) -> Option<MemberFailure> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = node_container(pod)?;
    let state = status.state.as_ref();
    let waiting = state.and_then(|s| s.waiting.as_ref());
    let terminated_now = state.and_then(|s| s.terminated.as_ref());
    let last = status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref());
    let crash_loop = waiting.and_then(|w| w.reason.as_deref()) == Some("CrashLoopBackOff");
    let failed_now = terminated_now.is_some_and(|t| t.exit_code != 0);
    let fail_stopped = !status.ready && last.is_some_and(|t| exit_meaning(t.exit_code).is_some());
    if !(crash_loop || failed_now || fail_stopped) {
        return None;
    }
    let terminated = terminated_now.or(last);
    let mut summary = String::new();
    if crash_loop {
        summary.push_str("CrashLoopBackOff, ");
    }
    summary.push_str(&format!("{} restarts", status.restart_count));
    if let Some(t) = terminated {
        summary.push_str(&format!(", exited with status {}", t.exit_code));
        match exit_meaning(t.exit_code) {
            Some(meaning) => summary.push_str(&format!(" ({meaning})")),
            None => {
                if let Some(reason) = t.reason.as_deref() {
                    summary.push_str(&format!(" ({reason})"));
                }
            }
        }
        if let Some(message) = t
            .message
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
        {
            let cause: String = message.chars().take(MAX_CAUSE_CHARS).collect();
            summary.push_str(": ");
            summary.push_str(&cause);
        }
    }
    Some(MemberFailure {
        pod: pod.metadata.name.clone().unwrap_or_default(),
        summary,
    })
}

/// The failing member pods, in the order given.
pub(crate) fn failed_members(pods: &[Pod]) -> Vec<MemberFailure> {
    pods.iter().filter_map(failure_of).collect()
}

/// The Degraded problem for `failures`, if any.
pub(crate) fn problem(failures: &[MemberFailure]) -> Option<Problem> {
    if failures.is_empty() {
        return None;
    }
    let message = failures
        .iter()
        .map(|f| format!("pod {} failed ({})", f.pod, f.summary))
        .collect::<Vec<_>>()
        .join("; ");
    Some(Problem {
        reason: "MemberFailed".to_owned(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const CAUSE: &str = "proglog-node: raft core stopped (storage): when Write Apply(LogId { \
                         index: 9 }): disk I/O error; exit status 74: a restart helps only if \
                         the cause is gone";

    /// A pod as the API server shows it, with the node container's status.
    fn pod(name: &str, container_status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": { "name": name, "namespace": "logs" },
            "status": {
                "phase": "Running",
                "containerStatuses": [container_status],
            },
        }))
        .unwrap()
    }

    fn crash_looping(name: &str) -> Pod {
        pod(
            name,
            json!({
                "name": "proglog",
                "image": "proglog-node:dev",
                "imageID": "",
                "ready": false,
                "restartCount": 4,
                "started": false,
                "state": { "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": "back-off 1m20s restarting failed container=proglog",
                } },
                "lastState": { "terminated": {
                    "exitCode": 74,
                    "reason": "Error",
                    "message": CAUSE,
                    "startedAt": "2026-12-01T00:00:00Z",
                    "finishedAt": "2026-12-01T00:00:01Z",
                } },
            }),
        )
    }

    fn healthy(name: &str) -> Pod {
        pod(
            name,
            json!({
                "name": "proglog",
                "image": "proglog-node:dev",
                "imageID": "",
                "ready": true,
                "restartCount": 1,
                "state": { "running": { "startedAt": "2026-12-01T00:00:00Z" } },
                // Recovered from an earlier fail-stop: not a failure any more.
                "lastState": { "terminated": { "exitCode": 74, "message": CAUSE } },
            }),
        )
    }

    #[test]
    fn a_crash_looping_member_is_degraded_with_its_pod_and_cause() {
        let pods = [
            healthy("demo-0"),
            crash_looping("demo-1"),
            healthy("demo-2"),
        ];
        let failures = failed_members(&pods);
        assert_eq!(failures.len(), 1);
        let problem = problem(&failures).unwrap();
        assert_eq!(problem.reason, "MemberFailed");
        assert!(
            problem.message.contains("pod demo-1 failed"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("CrashLoopBackOff"),
            "{}",
            problem.message
        );
        assert!(
            problem
                .message
                .contains("exited with status 74 (storage failed")
        );
        assert!(
            problem.message.contains("disk I/O error"),
            "{}",
            problem.message
        );
    }

    #[test]
    fn a_fail_stop_exit_counts_before_the_back_off_starts() {
        // First restart after exit 74: running again but not Ready yet.
        let restarting = pod(
            "demo-2",
            json!({
                "name": "proglog",
                "image": "proglog-node:dev",
                "imageID": "",
                "ready": false,
                "restartCount": 1,
                "state": { "running": { "startedAt": "2026-12-01T00:00:02Z" } },
                "lastState": { "terminated": { "exitCode": 70, "message": "panicked" } },
            }),
        );
        let failures = failed_members(&[restarting]);
        assert_eq!(failures.len(), 1);
        assert!(
            failures[0]
                .summary
                .contains("status 70 (Raft core panicked")
        );
    }

    #[test]
    fn healthy_and_other_pods_are_not_failures() {
        let starting = pod(
            "demo-3",
            json!({
                "name": "proglog",
                "image": "proglog-node:dev",
                "imageID": "",
                "ready": false,
                "restartCount": 0,
                "state": { "waiting": { "reason": "ContainerCreating" } },
            }),
        );
        assert!(failed_members(&[healthy("demo-0"), starting]).is_empty());
        assert_eq!(problem(&[]), None);
    }
}
