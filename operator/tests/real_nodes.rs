//! The membership planner and admin client driving real `proglog-node` processes on loopback
//! (what the controller does in Kubernetes, minus the pods): a new cluster is initialized once
//! and grown to three voters, a node whose data directory is lost is replaced by its new
//! incarnation, a scale-down removes voters before the "StatefulSet" shrinks, and a member that
//! stays down is replaced (`spec.replacement`) only while the other voters are a quorum.
//!
//! `#[ignore]`d because it needs the `proglog-node` binary next to the test executable (built by
//! `cargo build -p proglog-node`, which `make test` does first); run with
//! `cargo test -p proglog-operator --test real_nodes -- --ignored`.

mod common;

use common::node_process::NodeProcess;

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime},
};

use proglog_operator::{
    admin::AdminCredentials,
    builders::{self, ClusterRef},
    ca,
    controller::membership::{self, Observation, PodView},
    crd::ProgLogCluster,
    planner::{self, PlannerInput, Step},
    replacement::{self, NotReadyPod, ReplacementPolicy},
};
use time::OffsetDateTime;

/// Generous bound on one convergence; never a performance assertion.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(90);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A loopback port no outgoing connection can take before the node binds it.
fn free_port() -> u16 {
    proglog_node::test_ports::reserve_port()
}

/// One node process ("pod") with its own data directory and ports.
struct Node {
    ordinal: u32,
    grpc_port: u16,
    metrics_port: u16,
    data_dir: PathBuf,
    child: NodeProcess,
}

impl Node {
    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    fn start(&mut self, files: &Path) {
        let child = common::node_process::spawn_node(
            files,
            &self.data_dir,
            self.ordinal,
            self.grpc_port,
            self.metrics_port,
        );
        self.child = NodeProcess::running(child);
    }

    fn stop(&mut self) {
        self.child.stop();
    }
}

/// A local "StatefulSet": nodes `0..replicas` run.
struct LocalCluster {
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
    replicas: u32,
    initialized: bool,
    credentials: AdminCredentials,
    steps: Vec<Step>,
    /// `spec.replacement` (None: off).
    replacement: Option<ReplacementPolicy>,
    /// What the pods' Ready conditions say: the pods not Ready, and for how long (the test
    /// plays the kubelet).
    not_ready: Vec<NotReadyPod>,
}

impl LocalCluster {
    fn new(max_nodes: u32) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let spec = serde_json::json!({"log": {"maxStoreBytes": 4194304, "retentionAge": "7d"}});
        let mut cluster: ProgLogCluster =
            serde_json::from_value(serde_json::json!({"apiVersion": "proglog.dev/v1alpha1",
                "kind": "ProgLogCluster", "metadata": {"name": "demo", "namespace": "logs",
                "uid": "00000000-0000-0000-0000-000000000001"}, "spec": spec}))
            .unwrap();
        cluster.metadata.generation = Some(1);
        let cluster_ref = ClusterRef::of(&cluster).unwrap();
        let now = OffsetDateTime::from(SystemTime::now());
        let day = Duration::from_secs(86_400);
        let ca = ca::generate_ca(&cluster_ref, now).unwrap();
        let node_cert = ca::issue_node_certificate(&ca, &cluster_ref, max_nodes, now, day).unwrap();
        let operator =
            ca::issue_client_certificate(&ca, builders::OPERATOR_IDENTITY, now, day).unwrap();
        let files = dir.path();
        std::fs::write(files.join("ca.crt"), &ca.cert_pem).unwrap();
        std::fs::write(files.join("tls.crt"), &node_cert.cert_pem).unwrap();
        std::fs::write(files.join("tls.key"), &node_cert.key_pem).unwrap();
        // The exact files the operator puts in the ConfigMap.
        std::fs::write(
            files.join("proglog.toml"),
            builders::node_config(&cluster).unwrap(),
        )
        .unwrap();
        std::fs::write(
            files.join("acl.csv"),
            builders::acl_policy(&cluster, &cluster_ref, &[]),
        )
        .unwrap();
        let nodes = (0..max_nodes)
            .map(|ordinal| Node {
                ordinal,
                grpc_port: free_port(),
                metrics_port: free_port(),
                data_dir: files.join(format!("data-{ordinal}")),
                child: NodeProcess::default(),
            })
            .collect();
        Self {
            dir,
            nodes,
            replicas: 0,
            initialized: false,
            credentials: AdminCredentials {
                ca_pem: ca.cert_pem,
                cert_pem: operator.cert_pem,
                key_pem: operator.key_pem,
            },
            steps: Vec::new(),
            replacement: None,
            not_ready: Vec::new(),
        }
    }

    /// Starts or stops processes so that exactly `0..replicas` run (like the StatefulSet).
    fn scale(&mut self, replicas: u32) {
        self.replicas = replicas;
        let dir = self.dir.path().to_owned();
        for node in &mut self.nodes {
            if node.ordinal < replicas && !node.child.is_running() {
                node.start(&dir);
            } else if node.ordinal >= replicas {
                node.stop();
            }
        }
    }

    /// What the controller observes, by the controller's own code: the running node processes
    /// stand for Running and Ready pods.
    async fn observe(&self) -> Observation {
        let pods: Vec<PodView> = (0..self.replicas)
            .map(|ordinal| {
                let running = self.nodes[ordinal as usize].child.is_running();
                PodView {
                    ordinal,
                    running,
                    ready: running,
                }
            })
            .collect();
        let endpoint = |ordinal: u32| {
            let node = &self.nodes[ordinal as usize];
            (node.address(), Some("localhost".to_owned()))
        };
        membership::observe_nodes(&pods, endpoint, &self.credentials, CALL_TIMEOUT).await
    }

    /// Runs observe → plan → act until the planner reports Steady.
    async fn converge(&mut self, desired: u32) {
        let deadline = tokio::time::Instant::now() + CONVERGE_TIMEOUT;
        loop {
            let mut observation = self.observe().await;
            let input = PlannerInput {
                desired_replicas: desired,
                statefulset_replicas: self.replicas,
                pods: observation.pods.clone(),
                membership: observation.membership.clone(),
                initialized: self.initialized,
                max_promotion_lag: 100,
            };
            let step = replacement::plan_with_replacement(
                &input,
                self.replacement.as_ref(),
                &self.not_ready,
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "no convergence to {desired} within {CONVERGE_TIMEOUT:?}; last step {step}; \
                 steps {:?}; node logs:\n{}",
                self.steps,
                self.logs()
            );
            assert!(
                !matches!(step, Step::Stuck { .. } | Step::RefuseScaleDown { .. }),
                "{step}"
            );
            let result = match &step {
                Step::Steady => return,
                Step::Wait { .. } => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
                // The StatefulSet's part: start or stop node processes.
                Step::ScaleStatefulSet { replicas } => {
                    self.scale(*replicas);
                    Ok(())
                }
                // The Raft part exactly as the controller does it; then the Kubernetes part:
                // the claim (data directory) deleted with the policy, the pod re-created.
                Step::ReplaceFailedMember {
                    ordinal,
                    delete_volume,
                    ..
                } => match observation.execute(&step).await {
                    Ok(()) => {
                        let dir = self.dir.path().to_owned();
                        let node = &mut self.nodes[*ordinal as usize];
                        node.stop();
                        if *delete_volume {
                            std::fs::remove_dir_all(&node.data_dir).unwrap();
                        }
                        node.start(&dir);
                        // A new pod: its not-Ready clock starts again.
                        self.not_ready.retain(|p| p.ordinal != *ordinal);
                        Ok(())
                    }
                    Err(error) => Err(error),
                },
                // Everything else exactly as the controller executes it.
                step => {
                    let result = observation.execute(step).await;
                    if matches!(step, Step::Initialize { .. }) {
                        self.initialized |= result.is_ok();
                    }
                    result
                }
            };
            // Like the controller: a failed step is retried after observing again.
            if let Err(error) = result {
                eprintln!("step {step} failed: {error}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            self.steps.push(step);
        }
    }

    /// The tail of every node's log, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        for node in &self.nodes {
            let path = self.dir.path().join(format!("node-{}.log", node.ordinal));
            let log = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let panics: Vec<&str> = lines
                .iter()
                .filter(|l| l.contains("panicked at") || l.contains("ERROR"))
                .take(3)
                .copied()
                .collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n");
            text.push_str(&format!(
                "--- node {} (first errors) ---\n{}\n--- node {} (tail) ---\n{tail}\n",
                node.ordinal,
                panics.join("\n"),
                node.ordinal
            ));
        }
        text
    }

    async fn voters(&self) -> Vec<u64> {
        let mut voters: Vec<u64> = self
            .observe()
            .await
            .membership
            .expect("membership")
            .members
            .iter()
            .filter(|m| m.voter)
            .map(|m| m.node_id)
            .collect();
        voters.sort_by_key(|&id| planner::ordinal_of(id));
        voters
    }
}

fn count(steps: &[Step], matches: impl Fn(&Step) -> bool) -> usize {
    steps.iter().filter(|s| matches(s)).count()
}

#[tokio::test]
#[ignore = "needs the proglog-node binary (cargo build -p proglog-node)"]
async fn planner_grows_restarts_and_shrinks_a_real_cluster() {
    let mut cluster = LocalCluster::new(3);
    let started = std::time::Instant::now();
    cluster.converge(3).await;
    // A figure for the docs, not an assertion.
    eprintln!(
        "converged from nothing to 3 voters in {:?} ({} steps)",
        started.elapsed(),
        cluster.steps.len()
    );
    assert_eq!(
        count(&cluster.steps, |s| matches!(s, Step::Initialize { .. })),
        1,
        "{:?}",
        cluster.steps
    );
    assert_eq!(
        count(&cluster.steps, |s| matches!(s, Step::Promote { .. })),
        2
    );
    let voters = cluster.voters().await;
    let ordinals: Vec<u32> = voters.iter().map(|&v| planner::ordinal_of(v)).collect();
    assert_eq!(ordinals, [0, 1, 2], "{voters:?}");

    // Pod 0 restarts with its data: it is never initialized again and keeps its identity.
    cluster.nodes[0].stop();
    let dir = cluster.dir.path().to_owned();
    cluster.nodes[0].start(&dir);
    cluster.steps.clear();
    cluster.converge(3).await;
    assert!(cluster.steps.is_empty(), "{:?}", cluster.steps);
    assert_eq!(cluster.voters().await, voters);

    // Scale down to one: voters are removed (highest ordinal first) before the nodes stop.
    cluster.steps.clear();
    let started = std::time::Instant::now();
    cluster.converge(1).await;
    eprintln!(
        "scaled down from 3 to 1 voter in {:?} ({} steps)",
        started.elapsed(),
        cluster.steps.len()
    );
    assert_eq!(cluster.voters().await, voters[..1]);
    assert_eq!(cluster.replicas, 1);
    let scale_at = cluster
        .steps
        .iter()
        .position(|s| matches!(s, Step::ScaleStatefulSet { .. }))
        .expect("the StatefulSet shrinks");
    let removed: Vec<u64> = cluster.steps[..scale_at]
        .iter()
        .filter_map(|s| match s {
            Step::RemoveVoter { node_id } => Some(*node_id),
            _ => None,
        })
        .collect();
    // Leadership may move first if the leader was among the removed.
    assert_eq!(removed.len(), 2, "{:?}", cluster.steps);
    assert!(removed.contains(&voters[2]) && removed.contains(&voters[1]));
}

/// Volume loss against real nodes: pod 2 comes back at the same address with an empty data
/// directory, hence a new incarnation and node id, while the leader still has the old id in its
/// membership. The new node refuses the leader's Raft RPCs addressed to the old id (they carry the
/// target id), so the leader backs off instead of seeing the member's log go backwards (which made
/// openraft panic: "follower log reversion is not allowed"), and the planner replaces the old
/// member with the new incarnation.
#[tokio::test]
#[ignore = "needs the proglog-node binary (cargo build -p proglog-node)"]
async fn lost_volume_node_is_replaced_by_its_new_incarnation() {
    let mut cluster = LocalCluster::new(3);
    cluster.converge(3).await;
    let voters = cluster.voters().await;
    let old_id = voters[2];
    cluster.nodes[2].stop();
    std::fs::remove_dir_all(&cluster.nodes[2].data_dir).unwrap();
    let dir = cluster.dir.path().to_owned();
    cluster.nodes[2].start(&dir);
    cluster.steps.clear();
    cluster.converge(3).await;
    assert!(
        cluster.steps.iter().any(
            |s| matches!(s, Step::ReplaceMember { old_node_id, .. } if *old_node_id == old_id)
        ),
        "{:?}",
        cluster.steps
    );
    let voters = cluster.voters().await;
    assert_eq!(voters.len(), 3);
    assert!(
        !voters.contains(&old_id),
        "the lost incarnation is no longer a voter"
    );
}

fn down_for_an_hour(ordinal: u32) -> NotReadyPod {
    NotReadyPod {
        ordinal,
        down_for: Duration::from_secs(3600),
    }
}

/// `spec.replacement` against real nodes: a voter that stays down is removed from Raft and comes
/// back empty (new incarnation) as a learner that is promoted; with the volume kept it only
/// restarts and stays the same member; with two of three voters down nothing is replaced.
#[tokio::test]
#[ignore = "needs the proglog-node binary (cargo build -p proglog-node)"]
async fn a_member_that_stays_down_is_replaced_only_with_a_quorum() {
    let mut cluster = LocalCluster::new(3);
    cluster.converge(3).await;
    let voters = cluster.voters().await;
    let dir = cluster.dir.path().to_owned();

    // Two of three down for an hour: the survivor alone is not a quorum; nothing is replaced.
    cluster.replacement = Some(ReplacementPolicy {
        after: Duration::from_secs(600),
        delete_volume: true,
    });
    cluster.nodes[1].stop();
    cluster.nodes[2].stop();
    cluster.not_ready = vec![down_for_an_hour(1), down_for_an_hour(2)];
    for _ in 0..15 {
        let observation = cluster.observe().await;
        let input = PlannerInput {
            desired_replicas: 3,
            statefulset_replicas: 3,
            pods: observation.pods.clone(),
            membership: observation.membership.clone(),
            initialized: true,
            max_promotion_lag: 100,
        };
        let step = replacement::plan_with_replacement(
            &input,
            cluster.replacement.as_ref(),
            &cluster.not_ready,
        );
        assert!(
            matches!(step, Step::Wait { .. }),
            "with two of three voters down the planner must only wait, not {step}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.nodes[1].start(&dir);
    cluster.nodes[2].start(&dir);
    cluster.not_ready.clear();
    cluster.steps.clear();
    cluster.converge(3).await;
    assert_eq!(cluster.voters().await, voters, "{:?}", cluster.steps);

    // One voter down for an hour, volume kept: only its pod is re-created; same member.
    cluster.replacement = Some(ReplacementPolicy {
        after: Duration::from_secs(600),
        delete_volume: false,
    });
    cluster.nodes[2].stop();
    cluster.not_ready = vec![down_for_an_hour(2)];
    cluster.steps.clear();
    cluster.converge(3).await;
    assert_eq!(
        count(&cluster.steps, |s| matches!(
            s,
            Step::ReplaceFailedMember {
                ordinal: 2,
                remove_node_id: None,
                ..
            }
        )),
        1,
        "{:?}",
        cluster.steps
    );
    assert_eq!(cluster.voters().await, voters);

    // One voter down for an hour, volume deleted: removed, back empty, learner, promoted.
    cluster.replacement = Some(ReplacementPolicy {
        after: Duration::from_secs(600),
        delete_volume: true,
    });
    let old_id = voters[1];
    cluster.nodes[1].stop();
    cluster.not_ready = vec![down_for_an_hour(1)];
    cluster.steps.clear();
    let started = std::time::Instant::now();
    cluster.converge(3).await;
    eprintln!(
        "replaced a failed voter in {:?} ({} steps)",
        started.elapsed(),
        cluster.steps.len()
    );
    let kinds: Vec<&str> = cluster.steps.iter().map(Step::kind).collect();
    assert_eq!(
        kinds,
        ["replace_failed_member", "add_learner", "promote"],
        "{:?}",
        cluster.steps
    );
    assert!(matches!(
        cluster.steps[0],
        Step::ReplaceFailedMember { remove_node_id: Some(id), .. } if id == old_id
    ));
    let now = cluster.voters().await;
    assert_eq!(now.len(), 3);
    assert!(!now.contains(&old_id), "{now:?}");
    assert_eq!(planner::ordinal_of(now[1]), 1);
    assert_ne!(now[1], old_id, "pod 1 rejoined under a new incarnation");
}
