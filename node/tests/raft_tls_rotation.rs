//! Certificate renewal in a running Raft cluster, without restarting any node's Raft side: every
//! node's certificate, key and CA bundle are swapped for ones from a new CA the way the kubelet
//! updates a mounted Secret (one atomic symlink swap), after which the servers trust only the new
//! CA. Produce forwarding, votes and replication must keep working over connections the nodes
//! open after the swap, which only succeed if they present the new certificate and trust the new
//! CA (the client side of the node-to-node transport follows the files too).

#![allow(
    clippy::disallowed_methods,
    reason = "imitates the kubelet's Secret volume swap, not the node's own state"
)]

mod raft_common;

use std::path::Path;
use std::time::Duration;

use proglog_cli::dev_ca::{CertUsage, DevCa, dev_node_sans};
use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use proglog_proto::log::v1::log_client::LogClient;
use raft_common::*;
use tonic::transport::Endpoint;

/// Names of the files a Secret update replaces.
const ROTATED: [&str; 5] = [
    "ca.pem",
    "node.pem",
    "node-key.pem",
    "root.pem",
    "root-key.pem",
];

/// Turns the flat certificate directory into the kubelet's layout: every file is a symlink
/// through `..data`, which points at a versioned directory, so a rotation is one rename.
fn adopt_secret_volume_layout(certs: &Path) {
    let version = certs.join("..v1");
    std::fs::create_dir(&version).expect("version directory");
    for entry in std::fs::read_dir(certs).expect("list certificates") {
        let entry = entry.expect("directory entry");
        let name = entry.file_name();
        if entry.path() == version {
            continue;
        }
        std::fs::rename(entry.path(), version.join(&name)).expect("move into the version");
        std::os::unix::fs::symlink(Path::new("..data").join(&name), certs.join(&name))
            .expect("file symlink");
    }
    std::os::unix::fs::symlink("..v1", certs.join("..data")).expect("..data symlink");
}

/// Writes the new files into `..v2` (keeping the files not rotated) and swaps `..data` to it
/// atomically.
fn swap_secret_volume(certs: &Path, files: &[(&str, &str)]) {
    let version = certs.join("..v2");
    std::fs::create_dir(&version).expect("version directory");
    for entry in std::fs::read_dir(certs.join("..v1")).expect("list the old version") {
        let entry = entry.expect("directory entry");
        std::fs::copy(entry.path(), version.join(entry.file_name())).expect("copy kept file");
    }
    for (name, contents) in files {
        std::fs::write(version.join(name), contents).expect("write rotated file");
    }
    let staged = certs.join("..data_tmp");
    std::os::unix::fs::symlink("..v2", &staged).expect("staged symlink");
    std::fs::rename(&staged, certs.join("..data")).expect("swap ..data");
}

/// Whether a `root` client using `files` can consume from node `i` (a fresh connection).
async fn can_consume(cluster: &TestCluster, i: usize, files: &ClientTlsFiles) -> bool {
    let tls = client_tls_config(files).expect("client tls");
    let channel = Endpoint::from_shared(format!("https://{}", cluster.addrs[i]))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy();
    consume(&mut LogClient::new(channel), 0).await.is_ok()
}

/// Polls until a fresh `root` connection with `files` is served by node `i`.
async fn wait_until_served(cluster: &TestCluster, i: usize, files: &ClientTlsFiles) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !can_consume(cluster, i, files).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node {i} never served a client with the rotated certificates"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn produce_n(cluster: &TestCluster, via: usize, prefix: &str, n: u32) {
    let mut client = cluster.log_client(via).await;
    for i in 0..n {
        produce(&mut client, format!("{prefix}-{i}"))
            .await
            .unwrap_or_else(|status| panic!("produce {prefix}-{i} via node {via}: {status}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replication_keeps_working_after_every_node_rotates_to_a_new_ca() {
    let mut cluster = TestCluster::new(3);
    adopt_secret_volume_layout(&cluster.certs);
    cluster.tls_reload_interval = Some(Duration::from_millis(50));
    cluster.start_all_and_form().await;
    let leader = cluster.wait_for_leader_among(&[0, 1, 2]).await;
    let (first, second) = ((leader + 1) % 3, (leader + 2) % 3);
    produce_n(&cluster, leader, "before", 10).await;
    produce_n(&cluster, first, "before-forwarded", 5).await;
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 15).await;
        assert_eq!(cluster.node(i).client_tls().generation(), 0);
    }

    // New CA; node certificates re-issued from it with a short validity, and a new `root` for
    // this test's own client calls. The servers' CA bundle becomes the new CA only, so a
    // certificate of the old CA is no longer accepted anywhere.
    let new_ca = DevCa::generate("ProgLog rotated CA").expect("new CA");
    let node = new_ca
        .issue(
            "proglog-node",
            &dev_node_sans(),
            CertUsage::Node,
            Duration::from_secs(3600),
        )
        .expect("new node certificate");
    let root = new_ca
        .issue("root", &[], CertUsage::Client, Duration::from_secs(3600))
        .expect("new root certificate");
    let old = cluster.certs.join("..v1");
    let contents = [
        new_ca.pem().cert_pem.as_str(),
        node.cert_pem.as_str(),
        node.key_pem.as_str(),
        root.cert_pem.as_str(),
        root.key_pem.as_str(),
    ];
    let files: Vec<(&str, &str)> = ROTATED.into_iter().zip(contents).collect();
    swap_secret_volume(&cluster.certs, &files);

    // Every node reloads its client identity (one swap, so exactly one new generation) and its
    // server configuration.
    let new_root = ClientTlsFiles {
        ca: cluster.certs.join("ca.pem"),
        cert: Some(cluster.certs.join("root.pem")),
        key: Some(cluster.certs.join("root-key.pem")),
        server_name: None,
    };
    for i in 0..3 {
        let node = cluster.node(i).clone();
        wait_until(&format!("node {i} reloads its client certificates"), || {
            (node.client_tls().generation() == 1).then_some(())
        })
        .await;
        wait_until_served(&cluster, i, &new_root).await;
    }
    // The old certificates are now unusable: the old root identity is refused by every server
    // even by a client that trusts the new CA.
    let old_root = ClientTlsFiles {
        ca: cluster.certs.join("ca.pem"),
        cert: Some(old.join("root.pem")),
        key: Some(old.join("root-key.pem")),
        server_name: None,
    };
    for i in 0..3 {
        assert!(
            !can_consume(&cluster, i, &old_root).await,
            "node {i} still accepts a certificate of the old CA"
        );
    }

    // Replace the leader's server (its Raft side keeps running): the followers' connections to
    // it are told to go away, so forwarding a produce needs a new connection, which the leader
    // accepts only with the new certificate.
    cluster.restart_server(leader).await;
    produce_n(&cluster, first, "after-forwarded-1", 5).await;
    produce_n(&cluster, second, "after-forwarded-2", 5).await;
    produce_n(&cluster, leader, "after", 5).await;
    for i in 0..3 {
        cluster.wait_for_next_offset(i, 30).await;
    }

    // Stop the leader: the followers must reach each other (votes, then replication) over
    // connections opened after the rotation.
    cluster.stop(leader).await;
    let new_leader = cluster.wait_for_leader_among(&[first, second]).await;
    let other = if new_leader == first { second } else { first };
    produce_n(&cluster, other, "after-failover", 10).await;
    for i in [first, second] {
        cluster.wait_for_next_offset(i, 40).await;
    }
    assert_eq!(cluster.records(first), cluster.records(second));
}
