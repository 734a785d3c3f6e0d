//! The part of a ProgLogCluster's status the scenarios read (the operator's
//! `ProgLogClusterStatus`, read back as JSON: the suite does not link the operator crate).

use serde::Deserialize;

/// The pod name in a member address `NAME-N.NAME-headless.NS.svc.cluster.local:8400`.
pub fn pod_of_address(address: &str) -> &str {
    address.split(['.', ':']).next().unwrap_or(address)
}

/// A condition of the status.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Available, Progressing or Degraded.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True" or "False".
    pub status: String,
    /// PascalCase reason.
    #[serde(default)]
    pub reason: String,
    /// Explanation.
    #[serde(default)]
    pub message: String,
}

/// A Raft member in the status.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    /// Raft node id (incarnation * 10000 + ordinal).
    pub node_id: u64,
    /// Advertised address (the pod's DNS name).
    pub address: String,
}

/// One entry of `status.members`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// Raft node id.
    pub node_id: u64,
    /// Its pod.
    pub pod: String,
    /// Leader, Voter or Learner.
    pub role: String,
    /// Pod Ready and keeping up with the leader.
    pub healthy: bool,
}

/// The part of a ProgLogCluster's status the scenarios read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// The generation the status describes.
    pub observed_generation: Option<i64>,
    /// Lifecycle phase.
    pub phase: Option<String>,
    /// The operation in progress (a rolling restart's progress, what it waits for).
    pub operation: Option<String>,
    /// Available, Progressing, Degraded.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Ready pods.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Leader address.
    pub leader: Option<String>,
    /// Voters.
    #[serde(default)]
    pub voters: Vec<Member>,
    /// Learners.
    #[serde(default)]
    pub learners: Vec<Member>,
    /// Every member with pod, role and health.
    #[serde(default)]
    pub members: Vec<MemberStatus>,
    /// Node certificate expiry (RFC 3339).
    pub certificate_expiry: Option<String>,
    /// The CAs nodes and clients trust (two while a CA rotation runs).
    #[serde(default)]
    pub trusted_cas: Vec<TrustedCa>,
}

/// One entry of `status.trustedCas`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TrustedCa {
    /// Rotation generation (1 for the first CA).
    pub generation: u64,
    /// Whether it signs new certificates.
    pub signing: bool,
}

impl ClusterStatus {
    /// Pods of the members, sorted, if every member is healthy and exactly one leads.
    pub fn healthy_member_pods(&self) -> Option<Vec<String>> {
        let leaders = self.members.iter().filter(|m| m.role == "Leader").count();
        if leaders != 1 || !self.members.iter().all(|m| m.healthy) {
            return None;
        }
        let mut pods: Vec<String> = self.members.iter().map(|m| m.pod.clone()).collect();
        pods.sort();
        Some(pods)
    }

    /// The condition of `type_`, if present.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether condition `type_` has status `status`.
    pub fn condition_is(&self, type_: &str, status: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == status)
    }

    /// The voter whose pod is `pod`.
    pub fn voter_of_pod(&self, pod: &str) -> Option<&Member> {
        self.voters
            .iter()
            .find(|m| pod_of_address(&m.address) == pod)
    }

    /// Short text for timeouts and logs.
    pub fn brief(&self) -> String {
        let conditions: Vec<String> = self
            .conditions
            .iter()
            .map(|c| format!("{}={}({}: {})", c.type_, c.status, c.reason, c.message))
            .collect();
        let members = |m: &[Member]| -> Vec<String> {
            m.iter()
                .map(|m| format!("{}@{}", m.node_id, pod_of_address(&m.address)))
                .collect()
        };
        format!(
            "phase {:?}, observedGeneration {:?}, ready {}, leader {:?}, voters {:?}, learners {:?}, {}",
            self.phase,
            self.observed_generation,
            self.ready_replicas,
            self.leader.as_deref().map(pod_of_address),
            members(&self.voters),
            members(&self.learners),
            conditions.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn pod_names_come_from_member_addresses() {
        assert_eq!(
            pod_of_address("demo-2.demo-headless.ns.svc.cluster.local:8400"),
            "demo-2"
        );
        assert_eq!(pod_of_address("demo-0:8400"), "demo-0");
    }

    #[test]
    fn the_status_parses_from_the_operator_shape() {
        let status: ClusterStatus = serde_json::from_value(json!({
            "observedGeneration": 2, "phase": "Running", "readyReplicas": 3, "replicas": 3,
            "initialized": true, "leader": "d-1.d-headless.n.svc.cluster.local:8400",
            "voters": [{ "nodeId": 10001, "address": "d-1.d-headless.n.svc.cluster.local:8400", "lag": 0 }],
            "learners": [],
            "conditions": [{ "type": "Available", "status": "True", "reason": "LeaderElected",
                             "message": "1 voter(s)", "lastTransitionTime": "2026-01-01T00:00:00Z" }],
        }))
        .unwrap();
        assert!(status.condition_is("Available", "True"));
        assert_eq!(status.voter_of_pod("d-1").unwrap().node_id, 10001);
        assert!(status.brief().contains("10001@d-1"));
        assert_eq!(
            status.healthy_member_pods(),
            None,
            "no members listed: not healthy"
        );
    }

    #[test]
    fn members_are_healthy_with_one_leader_all_healthy() {
        let parse = |members: serde_json::Value| -> ClusterStatus {
            serde_json::from_value(json!({ "members": members })).unwrap()
        };
        let member = |pod: &str, role: &str, healthy: bool| {
            json!({ "nodeId": 1, "pod": pod, "role": role, "healthy": healthy,
                    "matchedIndex": 7, "lag": 0 })
        };
        let good = parse(json!([
            member("d-1", "Voter", true),
            member("d-0", "Leader", true)
        ]));
        assert_eq!(
            good.healthy_member_pods(),
            Some(vec!["d-0".to_owned(), "d-1".to_owned()])
        );
        let sick = parse(json!([
            member("d-1", "Voter", false),
            member("d-0", "Leader", true)
        ]));
        assert_eq!(sick.healthy_member_pods(), None);
        let leaderless = parse(json!([member("d-1", "Voter", true)]));
        assert_eq!(leaderless.healthy_member_pods(), None);
    }
}
