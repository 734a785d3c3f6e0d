//! Whether every node of a cluster enforces a ProgLogUser's rules: the user is Ready only then,
//! so an application that waits for Ready is allowed by whichever node it reaches. Nodes read
//! the ACL from the cluster's ConfigMap through a volume that the kubelet refreshes only every
//! minute or so, at a different moment on every pod; so the ConfigMap having the rules is not
//! enough, each node is asked (`CheckAccess` of the admin API, answered from the policy it
//! enforces now).
//!
//! The rules are those the cluster controller writes for the user ([`user_rules`]). They count
//! as enforced when
//! 1. the cluster's ACL ConfigMap has every rule (a pod that starts from now on mounts it, so it
//!    enforces them from its first request), and
//! 2. every *running* pod of the cluster (phase Running and not being deleted, Ready or not)
//!    answers `CheckAccess` with "allowed" for every rule. A running pod that does not answer
//!    is *not* counted: it may be serving requests with an older file.
//!
//! Pods that are not running (Pending, Failed, being deleted, or not created yet) are not
//! waited for: they have no process serving requests, and when their node starts it reads the
//! ConfigMap of step 1. (A Pending pod whose volume was mounted before the ConfigMap had the
//! rules may start with the older file; the kubelet refreshes it within its sync period. That
//! window is documented in docs/ARCHITECTURE.md.)

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, api::ListParams};

use super::{
    ReconcileError,
    certificates::stored_operator_credentials,
    nodes::{ProbeTarget, running_pods},
};
use crate::{
    admin::{AdminCredentials, AdminError},
    builders::{ACL_FILE_KEY, ClusterRef, UserRule, user_rules},
    user_crd::ProgLogUser,
};

/// Whether a user's rules are enforced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Enforcement {
    /// The ConfigMap has every rule and every running node confirmed each of them.
    Enforced {
        /// How many rules.
        rules: usize,
        /// How many running nodes confirmed them.
        nodes: usize,
    },
    /// Not yet; what is missing (names the ConfigMap or the nodes).
    Propagating(String),
}

/// What one node said about the user's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAnswer {
    /// It allows every rule.
    Enforces,
    /// It denies these rules (their ACL lines).
    Denies(Vec<String>),
    /// It did not answer (connection or call failed): not counted as enforcing.
    NoAnswer(String),
}

/// Whether every node of the cluster enforces `user`'s rules. `targets` are the running nodes
/// (`None`: the cluster's running pods); `timeout` bounds each connection and call.
pub(crate) async fn enforcement(
    client: &Client,
    cluster_ref: &ClusterRef,
    user: &ProgLogUser,
    targets: Option<&[ProbeTarget]>,
    timeout: Duration,
) -> Result<Enforcement, ReconcileError> {
    let rules = user_rules(user, cluster_ref);
    if rules.is_empty() {
        return Ok(Enforcement::Enforced { rules: 0, nodes: 0 });
    }
    let missing = missing_from_config_map(client, cluster_ref, &rules).await?;
    if !missing.is_empty() {
        return Ok(Enforcement::Propagating(format!(
            "the ACL ConfigMap {} does not have {} yet",
            cluster_ref.config_map_name(),
            missing.join("; ")
        )));
    }
    let listed;
    let targets = match targets {
        Some(targets) => targets,
        None => {
            listed = running_pods(client, cluster_ref).await?;
            &listed
        }
    };
    if targets.is_empty() {
        return Ok(Enforcement::Enforced {
            rules: rules.len(),
            nodes: 0,
        });
    }
    let secrets = Api::namespaced(client.clone(), &cluster_ref.namespace);
    let Some(credentials) = stored_operator_credentials(&secrets, cluster_ref).await? else {
        return Ok(Enforcement::Propagating(format!(
            "the operator's credentials for cluster {} are not stored yet",
            cluster_ref.name
        )));
    };
    let answers = futures::future::join_all(targets.iter().map(|target| async {
        let answer = ask(target, &credentials, &rules, timeout).await;
        (target.pod.clone(), answer)
    }))
    .await;
    Ok(match waiting_for(&answers) {
        None => Enforcement::Enforced {
            rules: rules.len(),
            nodes: targets.len(),
        },
        Some(waiting) => Enforcement::Propagating(waiting),
    })
}

/// The rules' lines the ConfigMap's ACL lacks. Read by listing (the operator's role lists and
/// watches ConfigMaps but does not get them).
async fn missing_from_config_map(
    client: &Client,
    cluster_ref: &ClusterRef,
    rules: &[UserRule],
) -> Result<Vec<String>, ReconcileError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &cluster_ref.namespace);
    let name = cluster_ref.config_map_name();
    let selector = format!("metadata.name={name}");
    let maps = api.list(&ListParams::default().fields(&selector)).await?;
    let acl = maps
        .items
        .into_iter()
        .find_map(|map| map.data?.remove(ACL_FILE_KEY))
        .unwrap_or_default();
    Ok(missing_lines(&acl, rules))
}

/// The lines of `rules` that are not lines of `acl`.
fn missing_lines(acl: &str, rules: &[UserRule]) -> Vec<String> {
    rules
        .iter()
        .map(UserRule::line)
        .filter(|line| !acl.lines().any(|l| l.trim() == line))
        .collect()
}

/// Asks one node about every rule.
async fn ask(
    target: &ProbeTarget,
    credentials: &AdminCredentials,
    rules: &[UserRule],
    timeout: Duration,
) -> NodeAnswer {
    let result = async {
        let mut admin = target.connect(credentials, timeout).await?;
        let mut denied = Vec::new();
        for rule in rules {
            if !admin
                .check_access(&rule.subject, &rule.object, rule.action)
                .await?
            {
                denied.push(rule.line());
            }
        }
        Ok::<_, AdminError>(denied)
    }
    .await;
    match result {
        Ok(denied) if denied.is_empty() => NodeAnswer::Enforces,
        Ok(denied) => NodeAnswer::Denies(denied),
        Err(error) => {
            tracing::debug!(pod = %target.pod, %error, "CheckAccess failed");
            NodeAnswer::NoAnswer(error.to_string())
        }
    }
}

/// `None` when every node enforces the rules, else which nodes do not yet and why.
pub fn waiting_for(answers: &[(String, NodeAnswer)]) -> Option<String> {
    let waiting: Vec<String> = answers
        .iter()
        .filter_map(|(pod, answer)| match answer {
            NodeAnswer::Enforces => None,
            NodeAnswer::Denies(lines) => Some(format!("{pod} (denies {})", lines.join("; "))),
            NodeAnswer::NoAnswer(error) => Some(format!("{pod} (no answer: {})", brief(error))),
        })
        .collect();
    (!waiting.is_empty()).then(|| {
        format!(
            "waiting for {} of {} running nodes to enforce the rules: {}",
            waiting.len(),
            answers.len(),
            waiting.join(", ")
        )
    })
}

/// An error message cut to a length that fits a condition message.
fn brief(error: &str) -> String {
    const MAX: usize = 160;
    match error.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &error[..at]),
        None => error.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(object: &str, action: &'static str) -> UserRule {
        UserRule {
            subject: "app".to_owned(),
            object: object.to_owned(),
            action,
        }
    }

    #[test]
    fn config_map_lines_must_match_whole_lines() {
        let acl = "# head\nproglog-operator, *, admin\n# ProgLogUser app\napp, *, produce\n";
        let rules = [rule("*", "produce"), rule("log", "consume")];
        assert_eq!(missing_lines(acl, &rules), ["app, log, consume"]);
        assert!(missing_lines("app, *, produce\napp, log, consume", &rules).is_empty());
        // A longer identity's line is not this user's.
        assert_eq!(missing_lines("myapp, *, produce", &rules[..1]).len(), 1);
    }

    #[test]
    fn every_running_node_must_confirm_and_silence_is_not_consent() {
        let all = [
            ("demo-0".to_owned(), NodeAnswer::Enforces),
            ("demo-1".to_owned(), NodeAnswer::Enforces),
        ];
        assert_eq!(waiting_for(&all), None);
        let some = [
            ("demo-0".to_owned(), NodeAnswer::Enforces),
            (
                "demo-1".to_owned(),
                NodeAnswer::Denies(vec!["app, log, consume".to_owned()]),
            ),
            (
                "demo-2".to_owned(),
                NodeAnswer::NoAnswer("connecting: refused".to_owned()),
            ),
        ];
        let message = waiting_for(&some).unwrap();
        assert_eq!(
            message,
            "waiting for 2 of 3 running nodes to enforce the rules: demo-1 (denies app, log, \
             consume), demo-2 (no answer: connecting: refused)"
        );
        assert!(!message.contains("demo-0"));
        assert_eq!(brief(&"x".repeat(500)).chars().count(), 161);
    }
}
