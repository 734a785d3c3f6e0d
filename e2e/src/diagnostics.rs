//! What a failed scenario leaves behind for the reader: the pods, the events, the cluster's
//! status, every pod's log (and its previous container's) and the operator's log. Gathered with
//! `kubectl` so the output reads like what a human would type; each command is bounded in time
//! and its failure is reported in place, so a half-broken cluster still yields a dump.

use std::time::Duration;

use tokio::process::Command;

use crate::env;

/// How long one diagnostic command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of each pod log in the dump.
const POD_LOG_LINES: &str = "300";
/// Lines of the operator log in the dump.
const OPERATOR_LOG_LINES: &str = "400";

/// Namespace and Deployment of the in-cluster operator (`scripts/install-operator.sh`).
pub const OPERATOR_NAMESPACE: &str = "proglog-system";
/// The operator Deployment installed by the Helm chart.
pub const OPERATOR_DEPLOYMENT: &str = "deploy/proglog-operator";

async fn kubectl(args: &[&str]) -> String {
    let program = env::kubectl();
    let run = Command::new(&program)
        .args(args)
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(COMMAND_TIMEOUT, run).await {
        Err(_) => format!("(timed out after {COMMAND_TIMEOUT:?})\n"),
        Ok(Err(err)) => format!("(cannot run {program}: {err})\n"),
        Ok(Ok(output)) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !stderr.trim().is_empty() {
                text.push_str(&format!("(stderr) {}", stderr.trim_end()));
                text.push('\n');
            }
            text
        }
    }
}

fn section(out: &mut String, title: &str, body: &str) {
    out.push_str(&format!("===== {title} =====\n{}\n", body.trim_end()));
}

/// Everything about namespace `ns` and the ProgLogClusters `clusters` in it, as one text.
pub async fn collect(ns: &str, clusters: &[&str], operator_log_tail: Option<String>) -> String {
    let mut out = String::new();
    section(
        &mut out,
        &format!("kubectl -n {ns} get plc,sts,pods,pvc,svc,pdb -o wide"),
        &kubectl(&["-n", ns, "get", "plc,sts,pods,pvc,svc,pdb", "-o", "wide"]).await,
    );
    section(
        &mut out,
        &format!("events in {ns}, oldest first"),
        &kubectl(&[
            "-n",
            ns,
            "get",
            "events",
            // Events written through events.k8s.io (the operator's) have no lastTimestamp.
            "--sort-by=.metadata.creationTimestamp",
            "-o",
            "custom-columns=CREATED:.metadata.creationTimestamp,LAST:.lastTimestamp,TYPE:.type,REASON:.reason,OBJECT:.involvedObject.name,MESSAGE:.message",
        ])
        .await,
    );
    for cluster in clusters {
        section(
            &mut out,
            &format!("status of ProgLogCluster {cluster}"),
            &kubectl(&[
                "-n",
                ns,
                "get",
                "plc",
                cluster,
                "-o",
                "jsonpath={.metadata.generation}{\"\\n\"}{.status}",
            ])
            .await,
        );
    }
    let pods = kubectl(&[
        "-n",
        ns,
        "get",
        "pods",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
    ])
    .await;
    for pod in pods
        .lines()
        .filter(|p| !p.is_empty() && !p.starts_with('('))
    {
        section(
            &mut out,
            &format!("describe pod {pod} (conditions and last state)"),
            &kubectl(&["-n", ns, "describe", "pod", pod]).await,
        );
        section(
            &mut out,
            &format!("logs of {pod}"),
            &kubectl(&[
                "-n",
                ns,
                "logs",
                pod,
                "--all-containers",
                "--tail",
                POD_LOG_LINES,
            ])
            .await,
        );
        section(
            &mut out,
            &format!("logs of {pod}, previous container"),
            &kubectl(&[
                "-n",
                ns,
                "logs",
                pod,
                "--all-containers",
                "--previous",
                "--tail",
                POD_LOG_LINES,
            ])
            .await,
        );
    }
    let operator_log = match operator_log_tail {
        Some(tail) => tail,
        None => {
            kubectl(&[
                "-n",
                OPERATOR_NAMESPACE,
                "logs",
                OPERATOR_DEPLOYMENT,
                "--tail",
                OPERATOR_LOG_LINES,
            ])
            .await
        }
    };
    section(&mut out, "operator log", &operator_log);
    out
}

/// Prints [`collect`] to stderr (shown by `cargo test` for a failed test).
pub async fn dump(ns: &str, clusters: &[&str], operator_log_tail: Option<String>) {
    let text = collect(ns, clusters, operator_log_tail).await;
    eprintln!(
        "\n########## diagnostics of namespace {ns} ##########\n{text}########## end of diagnostics ##########\n"
    );
}
