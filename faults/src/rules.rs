//! The command lines of the network faults, run inside the node namespaces (pure functions,
//! unit tested): iptables DROP partitions, `tc netem` link faults, and their iptables
//! equivalents for kernels without netem (`statistic` loss, `TEE` duplication, NFQUEUE to the
//! userspace delayer of [`crate::delay`]).

use crate::netns::{IFACE, Topology, argv, in_ns};
use crate::schedule::LinkFault;

/// `iptables -w ARGS` inside node `i`'s namespace.
fn ipt(topo: &Topology, i: usize, args: &[&str]) -> Vec<String> {
    let mut cmd = argv(&["iptables", "-w"]);
    cmd.extend(argv(args));
    in_ns(&topo.node_ns(i), &cmd)
}

/// `tc ARGS` inside node `i`'s namespace.
fn tc(topo: &Topology, i: usize, args: &[&str]) -> Vec<String> {
    let mut cmd = argv(&["tc"]);
    cmd.extend(argv(args));
    in_ns(&topo.node_ns(i), &cmd)
}

/// Node `to` drops every packet from node `from`.
pub fn drop_from(topo: &Topology, to: usize, from: usize) -> Vec<Vec<String>> {
    let src = topo.node_ip(from).to_string();
    vec![ipt(topo, to, &["-A", "INPUT", "-s", &src, "-j", "DROP"])]
}

/// Nodes `a` and `b` cannot talk: each drops what comes from and goes to the other.
pub fn partition_pair(topo: &Topology, a: usize, b: usize) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    for (x, y) in [(a, b), (b, a)] {
        let other = topo.node_ip(y).to_string();
        cmds.push(ipt(topo, x, &["-A", "INPUT", "-s", &other, "-j", "DROP"]));
        cmds.push(ipt(topo, x, &["-A", "OUTPUT", "-d", &other, "-j", "DROP"]));
    }
    cmds
}

/// Node `x` cannot talk to any other node (clients still reach it).
pub fn isolate(topo: &Topology, x: usize) -> Vec<Vec<String>> {
    (0..topo.nodes)
        .filter(|&y| y != x)
        .flat_map(|y| partition_pair(topo, x, y))
        .collect()
}

/// `iptables -w ARGS` inside the clients' namespace.
fn ipt_clients(topo: &Topology, args: &[&str]) -> Vec<String> {
    let mut cmd = argv(&["iptables", "-w"]);
    cmd.extend(argv(args));
    in_ns(&topo.client_ns(), &cmd)
}

/// The clients cannot talk to the nodes `cut` (both ways, in the clients' namespace: the nodes
/// still reach each other and the other nodes still reach the clients).
pub fn cut_clients_from(topo: &Topology, cut: &[usize]) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    for &x in cut {
        let ip = topo.node_ip(x).to_string();
        cmds.push(ipt_clients(topo, &["-A", "INPUT", "-s", &ip, "-j", "DROP"]));
        cmds.push(ipt_clients(
            topo,
            &["-A", "OUTPUT", "-d", &ip, "-j", "DROP"],
        ));
    }
    cmds
}

/// Removes every rule the nemesis may have added (must succeed).
pub fn heal_rules(topo: &Topology) -> Vec<Vec<String>> {
    (0..topo.nodes)
        .flat_map(|i| {
            [
                ipt(topo, i, &["-F", "INPUT"]),
                ipt(topo, i, &["-F", "OUTPUT"]),
                ipt(topo, i, &["-t", "mangle", "-F", "POSTROUTING"]),
            ]
        })
        .chain([
            ipt_clients(topo, &["-F", "INPUT"]),
            ipt_clients(topo, &["-F", "OUTPUT"]),
        ])
        .collect()
}

/// Removes qdiscs (fails harmlessly where there is none).
pub fn heal_qdiscs(topo: &Topology) -> Vec<Vec<String>> {
    (0..topo.nodes)
        .map(|i| tc(topo, i, &["qdisc", "del", "dev", IFACE, "root"]))
        .collect()
}

pub fn netem_args(link: &LinkFault) -> Vec<String> {
    argv(&[
        "netem",
        "delay",
        &format!("{}ms", link.delay_ms),
        &format!("{}ms", link.jitter_ms),
        "distribution",
        "normal",
        "loss",
        &format!("{}%", link.loss_pct),
    ])
}

/// `probability` for the iptables statistic match.
fn probability(pct: u32) -> String {
    format!("{:.2}", f64::from(pct) / 100.0)
}

/// Netem commands degrading the link between `a` and `b` (both directions): a `prio` root with
/// netem under band 4 and a u32 filter sending the packets for the peer there.
pub fn netem_link(topo: &Topology, a: usize, b: usize, link: &LinkFault) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    for (x, y) in [(a, b), (b, a)] {
        let dst = format!("{}/32", topo.node_ip(y));
        cmds.push(tc(
            topo,
            x,
            &[
                "qdisc", "replace", "dev", IFACE, "root", "handle", "1:", "prio", "bands", "4",
            ],
        ));
        let mut child = argv(&[
            "qdisc", "add", "dev", IFACE, "parent", "1:4", "handle", "40:",
        ]);
        child.extend(netem_args(link));
        let child: Vec<&str> = child.iter().map(String::as_str).collect();
        cmds.push(tc(topo, x, &child));
        cmds.push(tc(
            topo,
            x,
            &[
                "filter", "add", "dev", IFACE, "parent", "1:", "protocol", "ip", "prio", "1",
                "u32", "match", "ip", "dst", &dst, "flowid", "1:4",
            ],
        ));
    }
    cmds
}

/// Netem on every node's interface.
pub fn netem_all(topo: &Topology, netem: &[String]) -> Vec<Vec<String>> {
    let mut args = argv(&["qdisc", "replace", "dev", IFACE, "root"]);
    args.extend(netem.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    (0..topo.nodes).map(|i| tc(topo, i, &args)).collect()
}

/// Netem arguments duplicating and reordering.
pub fn netem_dup_reorder(duplicate_pct: u32, reorder_pct: u32) -> Vec<String> {
    argv(&[
        "netem",
        "delay",
        "20ms",
        "reorder",
        &format!("{reorder_pct}%"),
        "50%",
        "duplicate",
        &format!("{duplicate_pct}%"),
    ])
}

/// iptables: node `x` drops `pct`% of what it sends to `dst` (every destination when `None`).
pub fn loss_rule(topo: &Topology, x: usize, dst: Option<usize>, pct: u32) -> Vec<String> {
    let p = probability(pct);
    let mut args = vec!["-A", "OUTPUT", "-o", IFACE];
    let ip;
    if let Some(d) = dst {
        ip = topo.node_ip(d).to_string();
        args.extend(["-d", &ip]);
    }
    args.extend([
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        &p,
        "-j",
        "DROP",
    ]);
    ipt(topo, x, &args)
}

/// iptables: every node sends a copy of `pct`% of its packets to each other member (nodes and
/// the client) with the `TEE` target.
pub fn duplicate_rules(topo: &Topology, pct: u32) -> Vec<Vec<String>> {
    let p = probability(pct);
    let mut cmds = Vec::new();
    for x in 0..topo.nodes {
        let peers = (0..topo.nodes)
            .filter(|&y| y != x)
            .map(|y| topo.node_ip(y))
            .chain([topo.client_ip()]);
        for ip in peers {
            let ip = ip.to_string();
            cmds.push(ipt(
                topo,
                x,
                &[
                    "-t",
                    "mangle",
                    "-A",
                    "POSTROUTING",
                    "-d",
                    &ip,
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &p,
                    "-j",
                    "TEE",
                    "--gateway",
                    &ip,
                ],
            ));
        }
    }
    cmds
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(cmds: &[Vec<String>]) -> Vec<String> {
        cmds.iter().map(|c| c.join(" ")).collect()
    }

    #[test]
    fn partitions_drop_inside_the_node_namespaces() {
        let topo = Topology::new(3);
        assert_eq!(
            lines(&drop_from(&topo, 1, 2)),
            ["ip netns exec pflt-n1 iptables -w -A INPUT -s 10.77.0.12 -j DROP"]
        );
        assert_eq!(
            lines(&partition_pair(&topo, 0, 1)),
            [
                "ip netns exec pflt-n0 iptables -w -A INPUT -s 10.77.0.11 -j DROP",
                "ip netns exec pflt-n0 iptables -w -A OUTPUT -d 10.77.0.11 -j DROP",
                "ip netns exec pflt-n1 iptables -w -A INPUT -s 10.77.0.10 -j DROP",
                "ip netns exec pflt-n1 iptables -w -A OUTPUT -d 10.77.0.10 -j DROP",
            ]
        );
        let iso = lines(&isolate(&topo, 2));
        assert_eq!(iso.len(), 8);
        assert!(
            iso.iter().all(|l| !l.contains("10.77.0.100")),
            "clients still reach it"
        );
        assert!(
            iso.contains(
                &"ip netns exec pflt-n0 iptables -w -A INPUT -s 10.77.0.12 -j DROP".into()
            )
        );
        let heal = lines(&heal_rules(&topo));
        assert_eq!(heal.len(), 11);
        assert!(heal.contains(&"ip netns exec pflt-client iptables -w -F OUTPUT".into()));
        assert!(
            heal.contains(&"ip netns exec pflt-n2 iptables -w -t mangle -F POSTROUTING".into())
        );
        assert_eq!(
            lines(&heal_qdiscs(&topo))[0],
            "ip netns exec pflt-n0 tc qdisc del dev eth0 root"
        );
    }

    #[test]
    fn client_cuts_drop_inside_the_client_namespace_only() {
        let topo = Topology::new(5);
        assert_eq!(
            lines(&cut_clients_from(&topo, &[1, 3])),
            [
                "ip netns exec pflt-client iptables -w -A INPUT -s 10.77.0.11 -j DROP",
                "ip netns exec pflt-client iptables -w -A OUTPUT -d 10.77.0.11 -j DROP",
                "ip netns exec pflt-client iptables -w -A INPUT -s 10.77.0.13 -j DROP",
                "ip netns exec pflt-client iptables -w -A OUTPUT -d 10.77.0.13 -j DROP",
            ]
        );
    }

    #[test]
    fn link_fault_commands() {
        let topo = Topology::new(3);
        let link = LinkFault {
            delay_ms: 100,
            jitter_ms: 50,
            loss_pct: 20,
        };
        let cmds = lines(&netem_link(&topo, 0, 2, &link));
        assert_eq!(
            cmds,
            [
                "ip netns exec pflt-n0 tc qdisc replace dev eth0 root handle 1: prio bands 4",
                "ip netns exec pflt-n0 tc qdisc add dev eth0 parent 1:4 handle 40: netem delay 100ms 50ms distribution normal loss 20%",
                "ip netns exec pflt-n0 tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.77.0.12/32 flowid 1:4",
                "ip netns exec pflt-n2 tc qdisc replace dev eth0 root handle 1: prio bands 4",
                "ip netns exec pflt-n2 tc qdisc add dev eth0 parent 1:4 handle 40: netem delay 100ms 50ms distribution normal loss 20%",
                "ip netns exec pflt-n2 tc filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst 10.77.0.10/32 flowid 1:4",
            ]
        );
        assert_eq!(
            lines(&netem_all(&topo, &netem_dup_reorder(10, 25)))[1],
            "ip netns exec pflt-n1 tc qdisc replace dev eth0 root netem delay 20ms reorder 25% 50% duplicate 10%"
        );
        assert_eq!(
            loss_rule(&topo, 1, Some(0), 20).join(" "),
            "ip netns exec pflt-n1 iptables -w -A OUTPUT -o eth0 -d 10.77.0.10 -m statistic --mode random --probability 0.20 -j DROP"
        );
        assert_eq!(
            loss_rule(&topo, 2, None, 5).join(" "),
            "ip netns exec pflt-n2 iptables -w -A OUTPUT -o eth0 -m statistic --mode random --probability 0.05 -j DROP"
        );
        let dup = lines(&duplicate_rules(&topo, 10));
        assert_eq!(dup.len(), 9, "3 nodes x (2 peers + client)");
        assert_eq!(
            dup[0],
            "ip netns exec pflt-n0 iptables -w -t mangle -A POSTROUTING -d 10.77.0.11 -m statistic --mode random --probability 0.10 -j TEE --gateway 10.77.0.11"
        );
    }
}
