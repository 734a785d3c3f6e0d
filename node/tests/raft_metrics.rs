//! The Raft and certificate gauges of running nodes (`metrics::raft`, `metrics::certificates`:
//! what the chart's alerts and dashboard read): a formed 3-node cluster has exactly one node
//! reporting itself leader, every node knows a leader, the leader reports both followers with
//! no entries missing once a produce is everywhere, and a new leader after the old one stops
//! counts as a leader change; a real `proglog-node --raft true` serves them on `/metrics` with
//! its certificates' expiry and the worker threads its runtime got (`PROGLOG_WORKER_THREADS`).

mod node_process;
mod raft_common;

use node_process::cluster::ProcessCluster;
use raft_common::*;

/// The value of the sample `series` (name and labels, exactly as exported) in Prometheus text.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|value| value.trim().parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn raft_gauges_follow_the_cluster() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let mut client = cluster.log_client(leader).await;
    produce(&mut client, "hello").await.expect("produce");
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 1).await;
    }

    // The gauges follow openraft's metrics channel, so they may trail by a moment: wait for
    // the state they must reach.
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let last_index = cluster
        .node(leader)
        .metrics()
        .last_log_index
        .expect("entries");
    wait_until(
        "the leader reports itself leading and both followers caught up",
        || {
            let text = cluster.node(leader).prometheus().encode();
            let caught_up = followers.iter().all(|&i| {
                let series = format!(
                    "proglog_raft_follower_lag_entries{{follower=\"{}\"}}",
                    cluster.node(i).node_id()
                );
                sample(&text, &series) == Some(0.0)
            });
            (sample(&text, "proglog_raft_is_leader") == Some(1.0)
                && sample(&text, "proglog_raft_applied_index") >= Some(last_index as f64)
                && caught_up)
                .then_some(())
        },
    )
    .await;
    for &i in &followers {
        wait_until(&format!("follower {i} reports the leader"), || {
            let text = cluster.node(i).prometheus().encode();
            (sample(&text, "proglog_raft_is_leader") == Some(0.0)
                && sample(&text, "proglog_raft_has_leader") == Some(1.0)
                && sample(&text, "proglog_raft_committed_index") >= Some(last_index as f64)
                && !text.contains("proglog_raft_follower_lag_entries{"))
            .then_some(())
        })
        .await;
        let text = cluster.node(i).prometheus().encode();
        assert!(
            sample(&text, "proglog_raft_leader_changes_total") >= Some(1.0),
            "{text}"
        );
        assert!(sample(&text, "proglog_raft_term") >= Some(1.0), "{text}");
    }

    // The leader stops: a survivor becomes leader, and the other survivor counts the change.
    let changes_before: Vec<f64> = followers
        .iter()
        .map(|&i| {
            sample(
                &cluster.node(i).prometheus().encode(),
                "proglog_raft_leader_changes_total",
            )
            .expect("leader changes")
        })
        .collect();
    cluster.stop(leader).await;
    let new_leader = cluster.wait_for_leader_among(&followers).await;
    for (&i, before) in followers.iter().zip(changes_before) {
        wait_until(&format!("node {i} counts the new leader"), || {
            let text = cluster.node(i).prometheus().encode();
            let leading = if i == new_leader { 1.0 } else { 0.0 };
            (sample(&text, "proglog_raft_leader_changes_total") > Some(before)
                && sample(&text, "proglog_raft_is_leader") == Some(leading))
            .then_some(())
        })
        .await;
    }
}

#[test]
fn a_node_process_serves_the_raft_and_certificate_gauges() {
    let mut cluster = ProcessCluster::new(1);
    // Not this machine's CPU count (2 here), so the gauge shows the setting reached the runtime.
    cluster.start(0, &[("PROGLOG_WORKER_THREADS", "3")]);
    cluster.form();
    // The certificates are read by a task of their own at start-up: wait for them too.
    let expiry = |certificate: &str| {
        format!("proglog_tls_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}}")
    };
    let (_, text) = cluster.wait_for_http(
        0,
        "/metrics",
        "the leader's Raft and certificate gauges",
        |code, body| {
            code == 200
                && sample(body, "proglog_raft_is_leader") == Some(1.0)
                && sample(body, &expiry("node")).is_some()
                && sample(body, &expiry("ca")).is_some()
        },
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    // Read from the files the node was given (the dev certificates are valid now).
    for certificate in ["node", "ca"] {
        let series = expiry(certificate);
        let at = sample(&text, &series).expect("waited for above");
        assert!(at > now, "{series} is {at}, in the past");
    }
    assert_eq!(
        sample(&text, "proglog_raft_has_leader"),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "proglog_raft_term") >= Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "proglog_runtime_worker_threads"),
        Some(3.0),
        "{text}"
    );
    cluster.stop(0);
}
