//! The nemesis: injects the faults of a [`schedule`](crate::schedule) into a running
//! [`Cluster`], one at a time, and heals everything between two faults (flushes the rules,
//! removes qdiscs and delayers, resumes paused nodes, restarts stopped ones).
//!
//! Process faults are signals to the node PIDs (SIGKILL then a restart, SIGSTOP/SIGCONT; a power
//! cut is a SIGKILL plus [`crate::power_cut`] on the node's files before the restart);
//! network faults are the command lines of [`crate::rules`] run inside the node namespaces.
//! Link faults use `tc netem` when the kernel has it ([`Shaper::detect`]). Without it
//! ([`Shaper::Iptables`], e.g. a kernel without `CONFIG_NET_SCH_NETEM`), loss uses the iptables
//! `statistic` match, duplication the `TEE` target, and delay, jitter and reordering come from
//! [`crate::delay`], a userspace NFQUEUE delayer started inside the namespace.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::cluster::{Cluster, run_checked};
use crate::delayers::Delayers;
use crate::history::RunClock;
use crate::netns::argv;
use crate::rules::{
    cut_clients_from, drop_from, duplicate_rules, heal_qdiscs, heal_rules, isolate, netem_all,
    netem_args, netem_dup_reorder, netem_link,
};
pub use crate::schedule::{Fault, KINDS, LinkFault, Step, schedule};
use crate::workload::{ClientSettings, Recorder, probe_read};

/// How link faults (delay, loss, duplication, reordering) are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shaper {
    /// `tc qdisc ... netem` on each node's interface.
    Netem,
    /// iptables `statistic` DROP (loss), `TEE` (duplication) and NFQUEUE to the userspace
    /// delayer (delay, jitter, reordering).
    Iptables,
}

impl Shaper {
    /// Netem when the kernel has it (tried on the loopback of the namespace the runner is in).
    pub async fn detect() -> Self {
        let add = argv(&[
            "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
        ]);
        if run_checked(&add).await.is_ok() {
            let _ = run_checked(&argv(&["tc", "qdisc", "del", "dev", "lo", "root"])).await;
            Self::Netem
        } else {
            Self::Iptables
        }
    }
}

/// A fault that happened: its kind, when it was injected and healed, and what exactly.
#[derive(Debug, Clone)]
pub struct FaultEvent {
    pub kind: &'static str,
    pub start_ns: u64,
    pub end_ns: u64,
    pub detail: String,
}

/// Injects faults into a cluster, one at a time, healing in between.
#[derive(Debug)]
pub struct Nemesis {
    pub cluster: Cluster,
    pub shaper: Shaper,
    pub clock: RunClock,
    pub events: Vec<FaultEvent>,
    log: std::fs::File,
    delayers: Delayers,
    /// Where faults that read from a node record what it served (see [`Nemesis::observe`]).
    observer: Option<(std::sync::Arc<Recorder>, ClientSettings)>,
}

impl Nemesis {
    /// `exe`: this binary, for the delayer processes.
    pub fn new(cluster: Cluster, shaper: Shaper, clock: RunClock, exe: String) -> Result<Self> {
        let log = std::fs::File::create(cluster.config.run_dir.join("nemesis.log"))?;
        let delayers = Delayers::new(cluster.topo.clone(), exe);
        Ok(Self {
            cluster,
            shaper,
            clock,
            events: Vec::new(),
            log,
            delayers,
            observer: None,
        })
    }

    /// Lets faults record reads of what a damaged node serves in the run's history.
    pub fn observe(&mut self, rec: std::sync::Arc<Recorder>, settings: ClientSettings) {
        self.observer = Some((rec, settings));
    }

    /// Writes a timestamped line to `nemesis.log` and stdout.
    pub fn note(&mut self, text: &str) {
        let line = format!("[{:8.3}s] {text}", self.clock.now_ns() as f64 / 1e9);
        println!("{line}");
        let _ = writeln!(self.log, "{line}");
    }

    /// Runs `steps` (start times relative to `t0_ns` on the run clock), healing after each.
    pub async fn run(&mut self, steps: &[Step], t0_ns: u64) -> Result<()> {
        for step in steps {
            let at = t0_ns + step.start_ms * 1_000_000;
            let now = self.clock.now_ns();
            if at > now {
                tokio::time::sleep(Duration::from_nanos(at - now)).await;
            }
            let start_ns = self.clock.now_ns();
            self.note(&format!("inject {}", step.fault));
            let result = self.inject(&step.fault).await;
            let heal = self.heal().await;
            let end_ns = self.clock.now_ns();
            let detail = match &result {
                Ok(detail) => detail.clone(),
                Err(e) => format!("FAILED: {e:#}"),
            };
            self.note(&format!("healed {} ({detail})", step.fault.kind()));
            self.events.push(FaultEvent {
                kind: step.fault.kind(),
                start_ns,
                end_ns,
                detail,
            });
            result.with_context(|| format!("injecting {}", step.fault))?;
            heal?;
            tokio::time::sleep(Duration::from_millis(step.gap_ms)).await;
        }
        Ok(())
    }

    /// The leader, or (when none is known within 5 s) node `fallback`.
    async fn leader_or(&self, fallback: usize) -> (usize, &'static str) {
        match self.cluster.wait_for_leader(Duration::from_secs(5)).await {
            Ok(leader) => (leader, "leader"),
            Err(_) => (
                fallback % self.cluster.len(),
                "no leader known; random node",
            ),
        }
    }

    /// The leader when `leader` (see [`Nemesis::leader_or`]), else node `node`.
    async fn leader_or_node(&self, leader: bool, node: usize) -> (usize, &'static str) {
        if leader {
            self.leader_or(node).await
        } else {
            (node, "chosen")
        }
    }

    async fn exec_all(&self, cmds: &[Vec<String>]) -> Result<()> {
        for cmd in cmds {
            run_checked(cmd).await?;
        }
        Ok(())
    }

    /// Injects `fault`, waits its duration (leaving heal to the caller); returns what was done.
    async fn inject(&mut self, fault: &Fault) -> Result<String> {
        let topo = self.cluster.topo.clone();
        let n = self.cluster.len();
        let sleep = |ms: u64| tokio::time::sleep(Duration::from_millis(ms));
        Ok(match fault.clone() {
            Fault::Kill {
                leader,
                node,
                down_ms,
            } => {
                let (victim, how) = self.leader_or_node(leader, node).await;
                let pid = self.cluster.pid(victim).unwrap_or_default();
                self.cluster.kill(victim).await?;
                sleep(down_ms).await;
                self.cluster.start(victim)?;
                format!("killed n{victim} ({how}, pid {pid}), restarted")
            }
            Fault::PauseLeader { ms } => {
                let (victim, how) = self.leader_or(0).await;
                self.cluster.pause(victim, true).await?;
                sleep(ms).await;
                self.cluster.pause(victim, false).await?;
                format!("paused n{victim} ({how})")
            }
            Fault::IsolateLeader { ms } => {
                let (victim, how) = self.leader_or(0).await;
                self.exec_all(&isolate(&topo, victim)).await?;
                sleep(ms).await;
                format!("isolated n{victim} ({how})")
            }
            Fault::IsolateFollower { ms, pick } => {
                let (leader, _) = self.leader_or(pick + 1).await;
                let followers: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
                let victim = followers[pick % followers.len()];
                self.exec_all(&isolate(&topo, victim)).await?;
                sleep(ms).await;
                format!("isolated follower n{victim} (leader n{leader})")
            }
            Fault::OneWay { ms, from, to } => {
                self.exec_all(&drop_from(&topo, to, from)).await?;
                sleep(ms).await;
                format!("n{to} dropped from n{from}")
            }
            Fault::Flap {
                on_ms,
                off_ms,
                total_ms,
            } => {
                let (victim, how) = self.leader_or(0).await;
                let mut elapsed = 0;
                let mut flaps = 0;
                while elapsed < total_ms {
                    self.exec_all(&isolate(&topo, victim)).await?;
                    sleep(on_ms).await;
                    self.exec_all(&heal_rules(&topo)).await?;
                    sleep(off_ms).await;
                    elapsed += on_ms + off_ms;
                    flaps += 1;
                }
                format!("flapped n{victim} ({how}) {flaps} times")
            }
            Fault::SlowLink { ms, a, b, link } => {
                match self.shaper {
                    Shaper::Netem => self.exec_all(&netem_link(&topo, a, b, &link)).await?,
                    Shaper::Iptables => {
                        self.delayers.link(a, b, &link).await?;
                    }
                }
                sleep(ms).await;
                format!("n{a}<->n{b} {link} via {:?}", self.shaper)
            }
            Fault::SlowAll { ms, link } => {
                match self.shaper {
                    Shaper::Netem => self.exec_all(&netem_all(&topo, &netem_args(&link))).await?,
                    Shaper::Iptables => self.delayers.all(&link).await?,
                }
                sleep(ms).await;
                format!("all links {link} via {:?}", self.shaper)
            }
            Fault::DupReorder {
                ms,
                duplicate_pct,
                reorder_pct,
            } => {
                match self.shaper {
                    Shaper::Netem => {
                        let args = netem_dup_reorder(duplicate_pct, reorder_pct);
                        self.exec_all(&netem_all(&topo, &args)).await?
                    }
                    Shaper::Iptables => {
                        self.exec_all(&duplicate_rules(&topo, duplicate_pct))
                            .await?;
                        self.delayers.reorder(reorder_pct).await?;
                    }
                }
                sleep(ms).await;
                format!(
                    "dup {duplicate_pct}% reorder {reorder_pct}% via {:?}",
                    self.shaper
                )
            }
            Fault::PowerCut {
                leader,
                node,
                down_ms,
                tear_seed,
            } => {
                let (victim, how) = self.leader_or_node(leader, node).await;
                self.cluster.kill_all(&[victim]).await?;
                let cut = self.cluster.power_cut(victim, tear_seed)?;
                sleep(down_ms).await;
                self.cluster.start(victim)?;
                format!("power cut n{victim} ({how}): {cut}; restarted")
            }
            Fault::PowerCutAll { down_ms, tear_seed } => {
                let all: Vec<usize> = (0..n).collect();
                self.cluster.kill_all(&all).await?;
                let mut cuts = Vec::new();
                for i in all {
                    let seed = tear_seed.map(|s| s.wrapping_add(i as u64));
                    cuts.push(format!("n{i}: {}", self.cluster.power_cut(i, seed)?));
                }
                sleep(down_ms).await;
                for i in 0..n {
                    self.cluster.start(i)?;
                }
                format!("power cut of all nodes ({}); restarted", cuts.join("; "))
            }
            Fault::FsyncError { leader, node, ms } => {
                let (victim, how) = self.leader_or_node(leader, node).await;
                let disk = self.cluster.disk(victim);
                disk.fail_fsyncs(true)?;
                let stopped = self
                    .cluster
                    .wait_exit(victim, Duration::from_millis(ms))
                    .await;
                // Remaining time of the fault, if it stopped early: the cluster runs without it.
                let outcome = match stopped {
                    Some(status) => format!("stopped by itself ({status})"),
                    None => {
                        self.cluster.kill_all(&[victim]).await?;
                        "still running (no write needed an fsync); killed".to_owned()
                    }
                };
                // After a failed fsync the kernel may have dropped the dirty pages: what the
                // disk holds is what earlier fsyncs covered.
                let cut = self.cluster.power_cut(victim, None);
                disk.fail_fsyncs(false)?;
                let cut = cut?;
                self.cluster.start(victim)?;
                format!("n{victim} ({how}) {outcome}; {cut}; restarted")
            }
            Fault::DiskFull { all, ms } => {
                let victims: Vec<usize> = if all {
                    (0..n).collect()
                } else {
                    vec![self.leader_or(0).await.0]
                };
                let mut filled = Vec::new();
                for &i in &victims {
                    let bytes = self.cluster.disk(i).fill()?;
                    filled.push(format!("n{i} +{} MiB", bytes >> 20));
                }
                sleep(ms).await;
                for &i in &victims {
                    self.cluster.disk(i).free()?;
                }
                // A node whose write failed stops (fail-stop, exit 74) and is restarted by
                // `heal`, as Kubernetes would restart its container.
                let mut outcome = Vec::new();
                for &i in &victims {
                    match self.cluster.wait_exit(i, Duration::from_millis(1500)).await {
                        Some(status) => outcome.push(format!("n{i} stopped ({status})")),
                        None => outcome.push(format!("n{i} kept running")),
                    }
                }
                format!(
                    "filled {}; space back; {}",
                    filled.join(", "),
                    outcome.join(", ")
                )
            }
            Fault::ReplaceMember { leader, pick } => {
                let (current, how) = self.leader_or(pick).await;
                let victim = if leader {
                    current
                } else {
                    let followers: Vec<usize> = (0..n).filter(|&i| i != current).collect();
                    followers[pick % followers.len()]
                };
                let done = crate::membership::replace(&mut self.cluster, victim).await?;
                format!("{done} (leader was n{current}, {how})")
            }
            Fault::BitFlip { pick, seed, two } => {
                let victims: Vec<usize> = if two {
                    vec![pick % n, (pick + 1) % n]
                } else {
                    vec![pick % n]
                };
                let mut ids = Vec::new();
                for &v in &victims {
                    let id = self.cluster.status(v).await.map(|s| s.node_id);
                    ids.push(id.with_context(|| format!("n{v}, to damage, does not answer"))?);
                }
                self.cluster.kill_all(&victims).await?;
                let mut done = Vec::new();
                for (k, &v) in victims.iter().enumerate() {
                    let damage = self.cluster.disk(v).damage(seed.wrapping_add(k as u64))?;
                    // Its own fsyncs made the damage durable: nothing for a power cut to undo.
                    self.cluster.start(v)?;
                    done.push(format!("n{v}: {damage}"));
                }
                for &v in &victims {
                    let started = self.cluster.wait_exit(v, Duration::from_secs(3)).await;
                    let mut seen = match &started {
                        Some(status) => format!("n{v} refused to start ({status})"),
                        None => format!("n{v} restarted"),
                    };
                    if started.is_none()
                        && let Some((rec, settings)) = &self.observer
                    {
                        seen = format!("{seen}; {}", probe_read(settings, rec, v).await?);
                    }
                    done.push(seen);
                }
                for (&v, &id) in victims.iter().zip(&ids) {
                    done.push(crate::membership::replace_id(&mut self.cluster, v, id).await?);
                }
                done.join("; ")
            }
            Fault::ClockJump { leader, node, secs } => {
                let (victim, how) = self.leader_or_node(leader, node).await;
                let offset = self.cluster.clock(victim).advance(secs)?;
                sleep(fault.active_ms()).await;
                format!("n{victim} ({how}) {secs}s ahead, {offset}s in all")
            }
            Fault::ClockSkew { node, ms } => {
                let clock = self.cluster.clock(node);
                let mut elapsed = 0;
                while elapsed < ms {
                    sleep(2000).await;
                    clock.advance(1)?;
                    elapsed += 2000;
                }
                format!("n{node} {}s ahead in all", clock.offset()?)
            }
            Fault::IsolateClients { ms, leader, pick } => {
                let (current, how) = self.leader_or(pick).await;
                let cut: Vec<usize> = if leader {
                    vec![current]
                } else {
                    // A minority: (n - 1) / 2 followers, from the `pick`th on.
                    let followers: Vec<usize> = (0..n).filter(|&i| i != current).collect();
                    (0..(n - 1) / 2)
                        .map(|k| followers[(pick + k) % followers.len()])
                        .collect()
                };
                self.exec_all(&cut_clients_from(&topo, &cut)).await?;
                sleep(ms).await;
                let names: Vec<String> = cut.iter().map(|i| format!("n{i}")).collect();
                let leads = match how {
                    "leader" => format!("n{current} leads"),
                    other => other.to_owned(),
                };
                format!("clients cut from {} ({leads})", names.join(", "))
            }
            Fault::SnapshotInstallCrash { pick, step } => {
                crate::install_crash::snapshot_install_crash(&mut self.cluster, pick, step).await?
            }
        })
    }

    /// Removes every network fault, resumes paused nodes and restarts stopped ones.
    pub async fn heal(&mut self) -> Result<()> {
        let topo = self.cluster.topo.clone();
        self.exec_all(&heal_rules(&topo)).await?;
        for cmd in heal_qdiscs(&topo) {
            let _ = run_checked(&cmd).await;
        }
        self.delayers.stop_all().await;
        let before = self.cluster.unexpected_exits.len();
        self.cluster.revive_all().await?;
        let exits: Vec<String> = self.cluster.unexpected_exits[before..]
            .iter()
            .map(|(i, status)| format!("NODE EXITED BY ITSELF: n{i} ({status}); restarted it"))
            .collect();
        for line in exits {
            self.note(&line);
        }
        Ok(())
    }
}
