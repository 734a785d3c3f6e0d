//! The network of a fault run: one network namespace per node and one for the clients, each
//! with a veth pair whose other end is a port of a bridge in a hub namespace the harness makes.
//! Addresses exist only inside those namespaces (default `10.77.0.0/24`: nodes `.10`, `.11`,
//! …, the client `.100`); nothing is configured in the root namespace.
//!
//! Setup is idempotent: [`setup`] first calls [`teardown`], which removes every namespace whose
//! name starts with the harness's prefix (what a crashed run left behind), killing by PID the
//! processes still inside them (`ip netns pids`). The command lists are pure functions
//! ([`Topology::setup_commands`]) so tests can check them without root.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Prefix of every namespace the harness makes (and removes at start and exit).
pub const PREFIX: &str = "pflt";
/// The bridge inside the hub namespace.
pub const BRIDGE: &str = "br0";
/// The interface name inside each member namespace.
pub const IFACE: &str = "eth0";

/// Who is attached to the bridge.
#[derive(Debug, Clone)]
pub struct Topology {
    /// Namespace name prefix ([`PREFIX`] unless a test says otherwise).
    pub prefix: String,
    /// How many node namespaces.
    pub nodes: usize,
    /// The first three octets of the /24 (default `10.77.0`).
    pub subnet: [u8; 3],
}

impl Topology {
    /// `nodes` nodes in `10.77.0.0/24`.
    pub fn new(nodes: usize) -> Self {
        Self {
            prefix: PREFIX.to_owned(),
            nodes,
            subnet: [10, 77, 0],
        }
    }

    /// The hub namespace holding the bridge.
    pub fn hub(&self) -> String {
        format!("{}-hub", self.prefix)
    }

    /// Node `i`'s namespace.
    pub fn node_ns(&self, i: usize) -> String {
        format!("{}-n{i}", self.prefix)
    }

    /// The clients' (and the runner's) namespace.
    pub fn client_ns(&self) -> String {
        format!("{}-client", self.prefix)
    }

    /// Node `i`'s address.
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 10 + u8::try_from(i).expect("fewer than 90 nodes"))
    }

    /// The client namespace's address.
    pub fn client_ip(&self) -> Ipv4Addr {
        let [a, b, c] = self.subnet;
        Ipv4Addr::new(a, b, c, 100)
    }

    /// Every member namespace with its address and the hub-side veth name: nodes, then client.
    pub fn members(&self) -> Vec<(String, Ipv4Addr, String)> {
        let mut members: Vec<_> = (0..self.nodes)
            .map(|i| (self.node_ns(i), self.node_ip(i), format!("v-n{i}")))
            .collect();
        members.push((self.client_ns(), self.client_ip(), "v-client".to_owned()));
        members
    }

    /// The commands that build the network, in order (run as root).
    pub fn setup_commands(&self) -> Vec<Vec<String>> {
        let hub = self.hub();
        let mut cmds = vec![
            argv(&["ip", "netns", "add", &hub]),
            argv(&["ip", "-n", &hub, "link", "set", "lo", "up"]),
            argv(&["ip", "-n", &hub, "link", "add", BRIDGE, "type", "bridge"]),
            argv(&["ip", "-n", &hub, "link", "set", BRIDGE, "up"]),
        ];
        for (ns, ip, veth) in self.members() {
            let cidr = format!("{ip}/24");
            cmds.extend([
                argv(&["ip", "netns", "add", &ns]),
                argv(&["ip", "-n", &ns, "link", "set", "lo", "up"]),
                argv(&[
                    "ip", "-n", &hub, "link", "add", &veth, "type", "veth", "peer", "name", IFACE,
                    "netns", &ns,
                ]),
                argv(&["ip", "-n", &hub, "link", "set", &veth, "master", BRIDGE]),
                argv(&["ip", "-n", &hub, "link", "set", &veth, "up"]),
                argv(&["ip", "-n", &ns, "addr", "add", &cidr, "dev", IFACE]),
                argv(&["ip", "-n", &ns, "link", "set", IFACE, "up"]),
            ]);
        }
        cmds
    }

    /// Whether `name` is one of this harness's namespaces (of any run).
    pub fn owns(&self, name: &str) -> bool {
        name.strip_prefix(&self.prefix)
            .is_some_and(|rest| rest.starts_with('-'))
    }
}

/// `args` as owned strings.
pub fn argv(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| (*s).to_owned()).collect()
}

/// `cmd` run inside namespace `ns` (`ip netns exec NS ...`).
pub fn in_ns(ns: &str, cmd: &[String]) -> Vec<String> {
    let mut full = argv(&["ip", "netns", "exec", ns]);
    full.extend(cmd.iter().cloned());
    full
}

/// Runs a command; an error carries its stderr.
pub fn run(cmd: &[String]) -> Result<String> {
    let (program, args) = cmd.split_first().context("empty command")?;
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", cmd.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            cmd.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The names of the namespaces that exist (`ip netns list`, first word of each line).
pub fn list_namespaces() -> Result<Vec<String>> {
    Ok(parse_netns_list(&run(&argv(&["ip", "netns", "list"]))?))
}

/// The names in `ip netns list` output (`NAME` or `NAME (id: N)` per line).
pub fn parse_netns_list(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Removes every namespace of the harness (this run's or a crashed run's), first killing the
/// processes inside them by PID. Idempotent; returns how many namespaces were removed.
pub fn teardown(topo: &Topology) -> Result<usize> {
    let ours: Vec<String> = list_namespaces()?
        .into_iter()
        .filter(|ns| topo.owns(ns))
        .collect();
    for ns in &ours {
        kill_inside(ns);
    }
    let mut errors = Vec::new();
    for ns in &ours {
        // A process that just died may still pin the namespace for a moment.
        let mut result = run(&argv(&["ip", "netns", "del", ns]));
        for _ in 0..20 {
            if result.is_ok() || !list_namespaces()?.contains(ns) {
                result = Ok(String::new());
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            result = run(&argv(&["ip", "netns", "del", ns]));
        }
        if let Err(e) = result {
            errors.push(e.to_string());
        }
    }
    if !errors.is_empty() {
        bail!("teardown: {}", errors.join("; "));
    }
    Ok(ours.len())
}

/// SIGKILLs the processes inside `ns` (they are the harness's: nodes, runner, helpers).
fn kill_inside(ns: &str) {
    let Ok(pids) = run(&argv(&["ip", "netns", "pids", ns])) else {
        return;
    };
    let own = std::process::id().to_string();
    for pid in pids.split_whitespace().filter(|pid| *pid != own) {
        let _ = Command::new("kill").args(["-KILL", pid]).status();
    }
}

/// Builds the network after removing leftovers.
pub fn setup(topo: &Topology) -> Result<()> {
    let removed = teardown(topo)?;
    if removed > 0 {
        eprintln!("removed {removed} namespace(s) left over by an earlier run");
    }
    for cmd in topo.setup_commands() {
        if let Err(e) = run(&cmd) {
            let _ = teardown(topo);
            return Err(e);
        }
    }
    Ok(())
}

/// Removes the network when dropped (the runner's guard: teardown on exit, even on failure).
#[derive(Debug)]
pub struct NetworkGuard {
    topo: Topology,
}

impl NetworkGuard {
    /// Builds the network; it is removed when the guard is dropped.
    pub fn setup(topo: Topology) -> Result<Self> {
        setup(&topo)?;
        Ok(Self { topo })
    }
}

impl Drop for NetworkGuard {
    fn drop(&mut self) {
        if let Err(e) = teardown(&self.topo) {
            eprintln!("network teardown failed: {e:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        let topo = Topology::new(3);
        assert_eq!(topo.node_ip(0).to_string(), "10.77.0.10");
        assert_eq!(topo.node_ip(2).to_string(), "10.77.0.12");
        assert_eq!(topo.client_ip().to_string(), "10.77.0.100");
        assert_eq!(topo.node_ns(1), "pflt-n1");
        assert_eq!(topo.client_ns(), "pflt-client");
        assert!(topo.owns("pflt-hub") && topo.owns("pflt-n7"));
        assert!(!topo.owns("pflthub") && !topo.owns("other-n0") && !topo.owns("pf-n0"));
    }

    #[test]
    fn setup_builds_everything_inside_namespaces() {
        let topo = Topology::new(3);
        let cmds = topo.setup_commands();
        let lines: Vec<String> = cmds.iter().map(|c| c.join(" ")).collect();
        assert_eq!(lines[0], "ip netns add pflt-hub");
        assert!(lines.contains(&"ip -n pflt-hub link add br0 type bridge".to_owned()));
        assert!(lines.contains(
            &"ip -n pflt-hub link add v-n1 type veth peer name eth0 netns pflt-n1".to_owned()
        ));
        assert!(lines.contains(&"ip -n pflt-n2 addr add 10.77.0.12/24 dev eth0".to_owned()));
        assert!(lines.contains(&"ip -n pflt-client addr add 10.77.0.100/24 dev eth0".to_owned()));
        // Every command names a namespace: nothing touches the root namespace's links/routes.
        for cmd in &cmds {
            assert!(
                cmd.windows(2).any(|w| w[0] == "-n") || cmd[..3] == ["ip", "netns", "add"],
                "{cmd:?}"
            );
        }
        assert_eq!(cmds.len(), 4 + 4 * 7);
    }

    #[test]
    fn netns_list_and_exec() {
        assert_eq!(
            parse_netns_list("pflt-n0 (id: 3)\npflt-hub\n\nother (id: 1)\n"),
            vec!["pflt-n0", "pflt-hub", "other"]
        );
        assert_eq!(
            in_ns("pflt-n0", &argv(&["iptables", "-F"])).join(" "),
            "ip netns exec pflt-n0 iptables -F"
        );
    }
}
