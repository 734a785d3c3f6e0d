//! The Rust client library against an in-process 3-node cluster: routing to the leader from any
//! seed, consumes from followers, transparent retry across a leader failover, clear errors, and
//! the seeds-only mode the `proglog` CLI uses (everything through one address, which forwards).

mod raft_common;

use std::time::Duration;

use proglog_client::{ClientConfig, ClientError, ClusterClient};
use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use raft_common::*;

fn config(cluster: &TestCluster, seeds: Vec<String>) -> ClientConfig {
    let tls = client_tls_config(&ClientTlsFiles {
        ca: cluster.certs.join("ca.pem"),
        cert: Some(cluster.certs.join("root.pem")),
        key: Some(cluster.certs.join("root-key.pem")),
        server_name: None,
    })
    .expect("client tls");
    let mut config = ClientConfig::new(seeds, tls);
    config.max_attempts = 12;
    config.connect_timeout = Duration::from_secs(1);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_routes_to_the_leader_and_retries_across_failover() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;

    let client = ClusterClient::connect(config(&cluster, vec![cluster.addrs[follower].clone()]))
        .await
        .expect("connect through a follower seed");
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.addrs[leader].as_str())
    );
    for i in 0..10u64 {
        assert_eq!(client.produce(format!("c{i}")).await.expect("produce"), i);
    }
    for i in 0..10u64 {
        let record = client.consume(i).await.expect("consume");
        assert_eq!(record.value, format!("c{i}").as_bytes());
    }

    cluster.stop(leader).await;
    // The old leader refuses connections: the produce was never sent, so the client may retry
    // until the new leader is known.
    let offset = client
        .produce("after failover")
        .await
        .expect("produce after failover");
    assert_eq!(offset, 10);
    assert_ne!(
        client.leader().as_deref(),
        Some(cluster.addrs[leader].as_str())
    );
    assert_eq!(
        client.consume(10).await.expect("consume").value,
        "after failover".as_bytes()
    );

    // Past the end is a clear rejection, not a retry loop.
    match client.consume(1_000).await {
        Err(ClientError::Rejected(status)) => assert_eq!(status.code(), tonic::Code::OutOfRange),
        other => panic!("expected OUT_OF_RANGE, got {other:?}"),
    }
}

#[tokio::test]
async fn client_configuration_errors_are_clear() {
    let cluster = TestCluster::new(1);
    let no_seeds = ClusterClient::connect(config(&cluster, vec![])).await;
    assert!(matches!(no_seeds, Err(ClientError::NoSeeds)));
    // Nothing listens on node 0's port (it was never started).
    let mut unreachable = config(&cluster, vec![cluster.addrs[0].clone()]);
    unreachable.request_timeout = Duration::from_secs(2);
    let result = ClusterClient::connect(unreachable).await;
    assert!(
        matches!(result, Err(ClientError::Unreachable(_))),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seeds_only_sends_everything_to_the_seed_which_forwards_produces() {
    let mut cluster = TestCluster::new(3);
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    // As behind a port-forward: only the seed is reachable, whatever GetServers says.
    let mut pinned = config(&cluster, vec![cluster.addrs[follower].clone()]);
    pinned.seeds_only = true;
    let client = ClusterClient::connect(pinned).await.expect("connect");
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.addrs[follower].as_str())
    );
    for i in 0..3u64 {
        assert_eq!(client.produce(format!("p{i}")).await.expect("produce"), i);
    }
    let servers = client.servers().await.expect("servers");
    assert_eq!(servers.len(), 3, "{servers:?}");
    assert_eq!(servers.iter().filter(|s| s.is_leader).count(), 1);
    let bounds = client
        .log_bounds(proglog_proto::log::v1::Consistency::Linearizable)
        .await
        .expect("bounds");
    assert_eq!((bounds.lowest_offset, bounds.next_offset), (0, 3));
    let mut stream = client.consume_stream(1).await.expect("consume stream");
    let first = stream.message().await.expect("stream").expect("a record");
    assert_eq!(first.record.expect("record").value, "p1".as_bytes());
    assert_eq!(
        client.leader().as_deref(),
        Some(cluster.addrs[follower].as_str()),
        "still the seed"
    );
}
