//! Fast, clean shutdown and hand-over (issue 16), with real `proglog-node` processes: a leader
//! SIGTERMed under a produce load hands its leadership over (no acknowledged record lost, no
//! error the client library does not retry itself, the term grows by at most one); a follower
//! SIGTERMed causes no election; a `ConsumeStream` ends with a status naming the offset to resume
//! from, and resuming there on another node continues the log without a gap.
//!
//! No timing is asserted here (deadlines only bound "eventually"); `scripts/bench/shutdown.sh`
//! measures how long the shutdown takes.
//!
//! `PROGLOG_TEST_NODE_BIN=/path/to/proglog-node` runs these tests against another build.

mod node_process;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use node_process::cluster::{ProcessCluster, WAIT};
use proglog_client::{ClientConfig, ClusterClient};
use proglog_proto::log::v1::ConsumeRequest;

/// A formed 3-node cluster with some records.
fn formed() -> ProcessCluster {
    let mut cluster = ProcessCluster::new(3);
    for i in 0..3 {
        cluster.start(i, &[]);
    }
    cluster.form();
    cluster.cli_until_ok(0, &["produce", "first"]);
    cluster
}

fn client_config(cluster: &ProcessCluster) -> ClientConfig {
    let tls = cluster.client_tls();
    let seeds = (0..cluster.nodes.len()).map(|i| cluster.addr(i)).collect();
    let mut config = ClientConfig::new(seeds, tls);
    config.max_attempts = 12;
    config.connect_timeout = Duration::from_secs(1);
    config
}

/// What the producers saw: acknowledged `(offset, value)` pairs and the errors returned to them.
#[derive(Default)]
struct Seen {
    acked: Vec<(u64, String)>,
    errors: Vec<String>,
}

#[test]
fn a_leader_sigtermed_under_load_hands_over_without_losing_or_failing_produces() {
    let mut cluster = formed();
    let (leader, term_before) = cluster.leader_among(&[0, 1, 2]);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let client = Arc::new(
        runtime
            .block_on(ClusterClient::connect(client_config(&cluster)))
            .expect("client"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let (client, stop, seen) = (client.clone(), stop.clone(), seen.clone());
            runtime.spawn(async move {
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let value = format!("p{p}-{seq}");
                    seq += 1;
                    let result = client.produce(value.clone()).await;
                    let mut seen = seen.lock().unwrap();
                    match result {
                        Ok(offset) => seen.acked.push((offset, value)),
                        Err(error) => seen.errors.push(error.to_string()),
                    }
                }
            })
        })
        .collect();
    let acked = |seen: &std::sync::Mutex<Seen>| seen.lock().unwrap().acked.len();
    let wait_acked = |n: usize| {
        let deadline = Instant::now() + WAIT;
        while acked(&seen) < n {
            assert!(
                Instant::now() < deadline,
                "producers stalled at {}",
                acked(&seen)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_acked(100);

    let status = cluster.stop(leader);
    assert!(status.success(), "leader exit: {status:?}");
    let at_stop = acked(&seen);
    // The load goes on against the new leader.
    wait_acked(at_stop + 100);
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        runtime.block_on(producer).expect("producer task");
    }

    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let (_, term_after) = cluster.leader_among(&survivors);
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.errors.is_empty(),
        "errors returned to clients: {:?}",
        seen.errors
    );
    assert!(
        term_after <= term_before + 1,
        "term {term_before} → {term_after}: more than one election"
    );
    // Every acknowledged record is in the log at its offset.
    runtime.block_on(async {
        for (offset, value) in &seen.acked {
            let record = client.consume(*offset).await.expect("consume").value;
            assert_eq!(record, value.as_bytes(), "offset {offset}");
        }
    });
}

#[test]
fn a_follower_sigtermed_causes_no_election() {
    let mut cluster = formed();
    let (leader, term_before) = cluster.leader_among(&[0, 1, 2]);
    let follower = (leader + 1) % 3;
    let status = cluster.stop(follower);
    assert!(status.success(), "follower exit: {status:?}");
    // Longer than the election timeout (≤ 1 s): a term change would show by now.
    std::thread::sleep(Duration::from_secs(3));
    let survivors: Vec<usize> = (0..3).filter(|i| *i != follower).collect();
    for i in survivors {
        let (_, term) = cluster.role_and_term(i);
        assert_eq!(term, term_before, "node {i}: the term changed");
    }
    // The leaving follower must not have raised the term on its way out either.
    cluster.start(follower, &[]);
    let deadline = Instant::now() + WAIT;
    loop {
        let (role, term) = cluster.role_and_term(follower);
        if role == "follower" {
            assert_eq!(term, term_before, "the restarted follower's term");
            break;
        }
        assert!(Instant::now() < deadline, "follower did not rejoin");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_consume_stream_ends_cleanly_and_resumes_on_another_node() {
    let mut cluster = formed();
    for i in 0..9 {
        cluster.cli_until_ok(0, &["produce", &format!("r{i}")]);
    }
    let (leader, _) = cluster.leader_among(&[0, 1, 2]);
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // Follow mode: all 10 records, then the stream waits at the end of the log.
    let mut stream = runtime.block_on(async {
        let mut client = cluster
            .try_log_client(follower, Duration::from_secs(2))
            .await
            .expect("connect");
        let mut stream = client
            .consume_stream(ConsumeRequest { offset: 0 })
            .await
            .expect("consume stream")
            .into_inner();
        for expected in 0..10u64 {
            let record = stream.message().await.expect("record").expect("open");
            assert_eq!(record.record.expect("record").offset, expected);
        }
        stream
    });
    // The runtime's threads keep the connection going meanwhile.
    let exit = cluster.stop(follower);
    assert!(exit.success(), "follower exit: {exit:?}");
    let mut next = 10u64;
    let status = runtime.block_on(async {
        tokio::time::timeout(WAIT, async {
            loop {
                match stream.message().await {
                    Ok(Some(record)) => next = record.record.expect("record").offset + 1,
                    Ok(None) => return Ok(()),
                    Err(status) => return Err(status),
                }
            }
        })
        .await
        .expect("the stream ended")
    });
    let status = status.expect_err("the stream ends with a status, not a silent close");
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("resume from offset {next}")),
        "{status:?}"
    );
    // Resuming on another node continues exactly where the stream stopped.
    cluster.cli_until_ok(other, &["produce", "after"]);
    runtime.block_on(async {
        let mut client = cluster
            .try_log_client(other, Duration::from_secs(2))
            .await
            .expect("connect");
        let mut stream = client
            .consume_stream(ConsumeRequest { offset: next })
            .await
            .expect("resume")
            .into_inner();
        let record = tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("a record")
            .expect("ok")
            .expect("open")
            .record
            .expect("record");
        assert_eq!(record.offset, next);
    });
}
