//! The delayers of the current fault when the kernel has no netem: the NFQUEUE rules that send
//! a node's packets to [`crate::delay`] and the delayer processes, started inside the node
//! namespaces (`ip netns exec NS proglog-faults delay ...`) and stopped at heal.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use crate::cluster::run_checked;
use crate::delay::DelayConfig;
use crate::netns::{IFACE, Topology, argv, in_ns};
use crate::rules::loss_rule;
use crate::schedule::LinkFault;

/// The iptables rule sending node `x`'s outgoing packets (to `dst`, or all) to queue 0.
pub fn nfqueue_rule(topo: &Topology, x: usize, dst: Option<usize>) -> Vec<String> {
    let mut cmd = argv(&["iptables", "-w", "-A", "OUTPUT", "-o", IFACE]);
    if let Some(d) = dst {
        cmd.extend(argv(&["-d", &topo.node_ip(d).to_string()]));
    }
    cmd.extend(argv(&[
        "-j",
        "NFQUEUE",
        "--queue-num",
        "0",
        "--queue-bypass",
    ]));
    in_ns(&topo.node_ns(x), &cmd)
}

/// The delayer process for node `x`'s namespace.
pub fn delayer_command(exe: &str, topo: &Topology, x: usize, config: &DelayConfig) -> Vec<String> {
    let mut cmd = vec![exe.to_owned()];
    cmd.extend(config.args());
    in_ns(&topo.node_ns(x), &cmd)
}

/// The running delayers of the current fault.
#[derive(Debug)]
pub struct Delayers {
    topo: Topology,
    /// This binary (which has the `delay` subcommand), resolved when the run started: a rebuild
    /// during the run replaces the file, and `/proc/self/exe` then names a deleted one.
    exe: String,
    children: Vec<Child>,
}

impl Delayers {
    pub fn new(topo: Topology, exe: String) -> Self {
        Self {
            topo,
            exe,
            children: Vec::new(),
        }
    }

    /// Starts a delayer in node `x`'s namespace and waits until it has bound the queue.
    async fn start(&mut self, x: usize, config: &DelayConfig) -> Result<()> {
        let cmd = delayer_command(&self.exe, &self.topo, x, config);
        let mut child = Command::new(&cmd[0])
            .args(&cmd[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("delayer stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(5), lines.next_line()).await;
        self.children.push(child);
        match ready {
            Ok(Ok(Some(line))) if line == "ready" => Ok(()),
            other => bail!("delayer in n{x} did not start: {other:?}"),
        }
    }

    /// Delay, jitter and loss on the link between nodes `a` and `b`.
    pub async fn link(&mut self, a: usize, b: usize, link: &LinkFault) -> Result<()> {
        let config = delay_config(link);
        for (x, y) in [(a, b), (b, a)] {
            self.start(x, &config).await?;
            run_checked(&loss_rule(&self.topo, x, Some(y), link.loss_pct)).await?;
            run_checked(&nfqueue_rule(&self.topo, x, Some(y))).await?;
        }
        Ok(())
    }

    /// Delay, jitter and loss on every node's link.
    pub async fn all(&mut self, link: &LinkFault) -> Result<()> {
        let config = delay_config(link);
        for x in 0..self.topo.nodes {
            self.start(x, &config).await?;
            run_checked(&loss_rule(&self.topo, x, None, link.loss_pct)).await?;
            run_checked(&nfqueue_rule(&self.topo, x, None)).await?;
        }
        Ok(())
    }

    /// Reordering on every node's link: `pct`% of packets held 20±5 ms, the rest sent at once.
    pub async fn reorder(&mut self, pct: u32) -> Result<()> {
        let config = DelayConfig {
            queue: 0,
            delay_ms: 20.0,
            jitter_ms: 5.0,
            delay_pct: pct,
        };
        for x in 0..self.topo.nodes {
            self.start(x, &config).await?;
            run_checked(&nfqueue_rule(&self.topo, x, None)).await?;
        }
        Ok(())
    }

    /// Stops the delayers (call after the NFQUEUE rules are gone: they release what they hold
    /// for a moment first).
    pub async fn stop_all(&mut self) {
        if self.children.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        for mut child in self.children.drain(..) {
            let _ = child.kill().await;
        }
    }
}

fn delay_config(link: &LinkFault) -> DelayConfig {
    DelayConfig {
        queue: 0,
        delay_ms: f64::from(link.delay_ms),
        jitter_ms: f64::from(link.jitter_ms),
        delay_pct: 100,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_and_commands() {
        let topo = Topology::new(3);
        assert_eq!(
            nfqueue_rule(&topo, 0, Some(1)).join(" "),
            "ip netns exec pflt-n0 iptables -w -A OUTPUT -o eth0 -d 10.77.0.11 -j NFQUEUE --queue-num 0 --queue-bypass"
        );
        let config = DelayConfig {
            queue: 0,
            delay_ms: 20.0,
            jitter_ms: 5.0,
            delay_pct: 25,
        };
        assert_eq!(
            delayer_command("/x/proglog-faults", &topo, 2, &config).join(" "),
            "ip netns exec pflt-n2 /x/proglog-faults delay --queue 0 --delay-ms 20 --jitter-ms 5 --delay-pct 25"
        );
    }
}
