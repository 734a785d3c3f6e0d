//! Environment switches of the suite, read in one place so their names and defaults are
//! documented together (also in docs/LOCAL_KUBERNETES.md).

use std::{path::PathBuf, time::Duration};

/// `PROGLOG_E2E_PODS=1`: pods can run (a kubelet and the node image exist: the local cluster of
/// `make e2e-pods`, kind in CI). The pod scenarios fail without it (never pass vacuously); the
/// API-only scenarios need only an API server and kube-controller-manager.
pub fn pods_can_run() -> bool {
    flag("PROGLOG_E2E_PODS")
}

/// `PROGLOG_E2E_OPERATOR=in-cluster`: the operator is already deployed in the cluster (kind
/// workflow). Otherwise the suite runs the operator binary itself against the kubeconfig.
pub fn operator_in_cluster() -> bool {
    std::env::var("PROGLOG_E2E_OPERATOR").is_ok_and(|v| v == "in-cluster")
}

/// The CRD manifests: `PROGLOG_E2E_CRD` (one file, e.g. both CRDs in one YAML stream), default
/// `crds/proglogcluster.yaml` and `crds/progloguser.yaml` of this repository. Read at run time,
/// so the suite compiles before the operator's CRDs exist.
pub fn crd_paths() -> Vec<PathBuf> {
    match std::env::var_os("PROGLOG_E2E_CRD") {
        Some(path) => vec![PathBuf::from(path)],
        None => ["proglogcluster.yaml", "progloguser.yaml"]
            .iter()
            .map(|file| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../crds")
                    .join(file)
            })
            .collect(),
    }
}

/// Node image for clusters whose pods run: `PROGLOG_E2E_NODE_IMAGE` (default the image the kind
/// workflow builds and loads).
pub fn node_image() -> String {
    std::env::var("PROGLOG_E2E_NODE_IMAGE").unwrap_or_else(|_| "proglog-node:dev".to_owned())
}

/// Deadline for control-plane-only steps: `PROGLOG_E2E_TIMEOUT_SECS` (default 120 s).
pub fn api_timeout() -> Duration {
    seconds("PROGLOG_E2E_TIMEOUT_SECS", 120)
}

/// Deadline for pods to become Ready: `PROGLOG_E2E_POD_TIMEOUT_SECS` (default 600 s; image
/// loading and Raft membership changes happen one pod at a time).
pub fn pod_timeout() -> Duration {
    seconds("PROGLOG_E2E_POD_TIMEOUT_SECS", 600)
}

/// `kubectl` to use for port-forwarding: `KUBECTL`, default `kubectl` on PATH.
pub fn kubectl() -> String {
    std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".to_owned())
}

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

fn seconds(name: &str, default: u64) -> Duration {
    let secs = std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Duration::from_secs(secs)
}

/// Deadline of a whole pod scenario: `PROGLOG_E2E_SCENARIO_TIMEOUT_SECS` (default 1800 s).
pub fn scenario_timeout() -> Duration {
    seconds("PROGLOG_E2E_SCENARIO_TIMEOUT_SECS", 1800)
}

/// `PROGLOG_E2E_KEEP_NAMESPACE=1`: keep a failed scenario's namespace for inspection (by
/// default it is deleted after the diagnostics are printed, so later scenarios have the
/// machine's resources).
pub fn keep_failed_namespace() -> bool {
    flag("PROGLOG_E2E_KEEP_NAMESPACE")
}
