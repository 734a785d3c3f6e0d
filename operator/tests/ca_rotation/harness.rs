//! The stand-ins of the CA rotation test: node processes reading their certificates through a
//! Secret-volume-like symlink, the kubelet's copy of the node Secret into those files, the
//! Raft cluster formed by the controller's own code, and the produce/consume workload.

use std::{
    path::{Path, PathBuf},
    process::Child,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use proglog_client::{ClientConfig, ClusterClient, mutual_tls};
use proglog_operator::{
    admin::AdminCredentials,
    controller::membership::{self, PodView},
    planner::{self, PlannerInput, Step},
};
use tokio::sync::watch;

pub const NODES: u32 = 3;
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Generous bound on the rotation; never a performance assertion.
pub const ROTATION_TIMEOUT: Duration = Duration::from_secs(180);
/// How long one operation may keep failing (retried with reloaded credentials) before it
/// counts as failed for good.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

pub fn text(secret: &Secret, key: &str) -> String {
    String::from_utf8(secret.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

/// One node process reading its certificates through `files/{tls.crt,tls.key,ca.crt}`, which
/// are symlinks into `files/current/` (like a Secret volume's `..data`).
pub struct Node {
    pub ordinal: u32,
    port: u16,
    child: Child,
}

impl Node {
    pub fn start(ordinal: u32, files: &Path) -> Self {
        let port = proglog_node::test_ports::reserve_port();
        let metrics_port = proglog_node::test_ports::reserve_port();
        let child = crate::common::node_process::spawn_node(
            files,
            &files.join(format!("data-{ordinal}")),
            ordinal,
            port,
            metrics_port,
        );
        Self {
            ordinal,
            port,
            child,
        }
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kubelet's part: copies the node Secret into the nodes' files, atomically.
pub struct Kubelet {
    pub secrets: Api<Secret>,
    pub files: PathBuf,
    pub node_secret: String,
    pub user_secret: String,
    pub last: Option<(String, String, String)>,
    pub swaps: u32,
    /// The user Secret's (ca.crt, tls.crt, tls.key), for the workload.
    pub user: watch::Sender<Option<(String, String, String)>>,
}

impl Kubelet {
    pub async fn sync(&mut self) {
        let Ok(secret) = self.secrets.get(&self.node_secret).await else {
            return;
        };
        let current = (
            text(&secret, "tls.crt"),
            text(&secret, "tls.key"),
            text(&secret, "ca.crt"),
        );
        if self.last.as_ref() != Some(&current) {
            self.swaps += 1;
            let dir = self.files.join(format!("..data-{}", self.swaps));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("tls.crt"), &current.0).unwrap();
            std::fs::write(dir.join("tls.key"), &current.1).unwrap();
            std::fs::write(dir.join("ca.crt"), &current.2).unwrap();
            let link = self.files.join("..data.tmp");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(&dir, &link).unwrap();
            std::fs::rename(&link, self.files.join("current")).unwrap();
            self.last = Some(current);
        }
        if let Ok(Some(user)) = self.secrets.get_opt(&self.user_secret).await {
            let creds = (
                text(&user, "ca.crt"),
                text(&user, "tls.crt"),
                text(&user, "tls.key"),
            );
            self.user.send_if_modified(|old| {
                let changed = old.as_ref() != Some(&creds);
                *old = Some(creds);
                changed
            });
        }
    }
}

/// Grows the nodes to a Raft cluster of three voters with the controller's own observe/plan
/// and execute code (the StatefulSet is fixed at three pods here).
pub async fn form_cluster(nodes: &[Node], credentials: &AdminCredentials) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut initialized = false;
    loop {
        assert!(Instant::now() < deadline, "no 3-voter cluster within 90 s");
        let pods: Vec<PodView> = nodes
            .iter()
            .map(|n| PodView {
                ordinal: n.ordinal,
                running: true,
                ready: true,
            })
            .collect();
        let endpoint = |ordinal: u32| {
            (
                nodes[ordinal as usize].address(),
                Some("localhost".to_owned()),
            )
        };
        let mut observation =
            membership::observe_nodes(&pods, endpoint, credentials, CALL_TIMEOUT).await;
        let step = planner::plan(&PlannerInput {
            desired_replicas: NODES,
            statefulset_replicas: NODES,
            pods: observation.pods.clone(),
            membership: observation.membership.clone(),
            initialized,
            max_promotion_lag: 100,
        });
        match &step {
            Step::Steady => return,
            Step::Wait { .. } => tokio::time::sleep(Duration::from_millis(200)).await,
            step => {
                let result = observation.execute(step).await;
                initialized |= matches!(step, Step::Initialize { .. }) && result.is_ok();
                if let Err(error) = result {
                    eprintln!("step {step} failed: {error}; retrying");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }
}

#[derive(Default)]
pub struct Workload {
    pub acknowledged: AtomicU64,
    /// Operations that failed and succeeded on a later try (with reloaded credentials).
    pub retried: AtomicU64,
    /// Operations that kept failing for [`GIVE_UP_AFTER`].
    pub failed: AtomicU64,
    pub stop: AtomicBool,
}

/// Produces a record and reads it back, over and over, reconnecting whenever the user Secret
/// changes (as an application reloading its mounted Secret does) or an operation fails.
pub async fn run_workload(
    seeds: Vec<String>,
    mut user: watch::Receiver<Option<(String, String, String)>>,
    stats: Arc<Workload>,
) {
    let connect = |creds: &(String, String, String)| {
        let mut config = ClientConfig::new(seeds.clone(), mutual_tls(&creds.0, &creds.1, &creds.2));
        config.request_timeout = Duration::from_secs(3);
        ClusterClient::connect(config)
    };
    let mut client: Option<ClusterClient> = None;
    let mut i = 0u64;
    while !stats.stop.load(Ordering::SeqCst) {
        i += 1;
        let value = format!("record {i}");
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            if client.is_none() || user.has_changed().unwrap_or(false) {
                let creds = user.borrow_and_update().clone().expect("user credentials");
                client = connect(&creds).await.ok();
            }
            let result = match &client {
                None => Err("connect failed".to_owned()),
                Some(c) => match c.produce(value.clone()).await {
                    Ok(offset) => match c.consume(offset).await {
                        Ok(record) if record.value[..] == *value.as_bytes() => Ok(()),
                        Ok(_) => Err(format!("offset {offset} holds another record")),
                        Err(e) => Err(format!("consume: {e}")),
                    },
                    Err(e) => Err(format!("produce: {e}")),
                },
            };
            attempts += 1;
            match result {
                Ok(()) => {
                    stats.acknowledged.fetch_add(1, Ordering::SeqCst);
                    if attempts > 1 {
                        stats.retried.fetch_add(1, Ordering::SeqCst);
                    }
                    break;
                }
                Err(error) if started.elapsed() < GIVE_UP_AFTER => {
                    eprintln!("workload: {value} attempt {attempts}: {error}; reconnecting");
                    client = None;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(error) => {
                    eprintln!("workload: {value} failed for good: {error}");
                    stats.failed.fetch_add(1, Ordering::SeqCst);
                    break;
                }
            }
        }
    }
}
