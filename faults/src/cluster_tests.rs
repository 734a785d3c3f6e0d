//! Tests of `cluster.rs`.

use super::*;

fn config() -> ClusterConfig {
    ClusterConfig {
        node_bin: "/b/proglog-node".into(),
        cli_bin: "/b/proglog".into(),
        run_dir: "/run/x".into(),
        snapshot_entries: 500,
        snapshot_keep_entries: 100,
        node_failpoint: None,
    }
}

fn cluster() -> Cluster {
    use tonic::transport::ClientTlsConfig;
    let topo = Topology::new(3);
    Cluster {
        endpoints: Endpoints {
            addrs: (0..3)
                .map(|i| format!("{}:8400", topo.node_ip(i)))
                .collect(),
            names: (0..3).map(|i| format!("n{i}")).collect(),
            tls: ClientTlsConfig::new(),
        },
        nodes: (0..3).map(|_| NodeProc::default()).collect(),
        topo,
        config: config(),
        unexpected_exits: Vec::new(),
    }
}

#[test]
fn node_command_runs_in_the_node_namespace_with_raft_and_mtls() {
    let cmd = cluster().node_command(1).join(" ");
    assert_eq!(
        cmd,
        "ip netns exec pflt-n1 /b/proglog-node --data-dir /run/x/n1/data \
         --bind-addr 10.77.0.11:8400 --advertise-addr 10.77.0.11:8400 \
         --metrics-addr 10.77.0.11:9400 --ordinal 1 --raft true \
         --tls-cert /run/x/certs/node.pem --tls-key /run/x/certs/node-key.pem \
         --tls-ca /run/x/certs/ca.pem --acl-file /run/x/certs/acl.csv \
         --termination-log /run/x/n1.termination"
    );
}

#[test]
fn cli_command_is_root_against_one_node() {
    let cmd = cluster().cli_command(2, &["cluster", "add", "10.77.0.12:8400"]);
    assert_eq!(
        cmd.join(" "),
        "/b/proglog --addr 10.77.0.12:8400 --ca /run/x/certs/ca.pem \
         --cert /run/x/certs/root.pem --key /run/x/certs/root-key.pem \
         --connect-timeout 2s cluster add 10.77.0.12:8400"
    );
}
