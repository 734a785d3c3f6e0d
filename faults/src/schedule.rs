//! The fault schedule of a run: the fault kinds ([`Fault`], [`KINDS`]) and [`schedule`], which
//! draws a run's faults from a seed. Every kind appears at least once per run, in an order drawn
//! from the seed; then random ones fill the remaining duration. Targets that depend on the
//! cluster's state ("the leader", "a follower") are resolved by the nemesis when the fault
//! starts, so a replayed seed replays the same kinds, durations and choices, not necessarily the
//! same node ids.

use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The snapshot-install steps a node can be crashed at (the node's `crash-at:<step>` failpoints,
/// see [`crate::install_crash`]).
pub const INSTALL_CRASH_STEPS: [&str; 5] = proglog_node::raft::snapshot_install::INSTALL_STEPS;
/// The step in the middle of the install: records partly copied into the live log.
pub const MID_INSTALL: &str = "install-copying";

/// The largest Raft election timeout of a node (node/src/raft/node.rs), for pause lengths.
pub const ELECTION_TIMEOUT_MAX_MS: u64 = 1000;

/// One fault, with everything drawn from the seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the leader (or node `node` when `leader` is false), restart after `down_ms`.
    Kill {
        leader: bool,
        node: usize,
        down_ms: u64,
    },
    /// SIGSTOP the leader for `ms`, then SIGCONT.
    PauseLeader { ms: u64 },
    /// Drop all traffic between the leader and the other nodes.
    IsolateLeader { ms: u64 },
    /// Drop all traffic between one follower (the `pick`th) and the other nodes.
    IsolateFollower { ms: u64, pick: usize },
    /// Node `to` drops every packet from node `from` (one direction only).
    OneWay { ms: u64, from: usize, to: usize },
    /// Isolate the leader `on_ms`, heal `off_ms`, repeatedly for `total_ms`.
    Flap {
        on_ms: u64,
        off_ms: u64,
        total_ms: u64,
    },
    /// Delay with jitter and loss on the link between nodes `a` and `b`.
    SlowLink {
        ms: u64,
        a: usize,
        b: usize,
        link: LinkFault,
    },
    /// Delay with jitter and loss on every node's link.
    SlowAll { ms: u64, link: LinkFault },
    /// Duplicate and reorder packets on every node's link.
    DupReorder {
        ms: u64,
        duplicate_pct: u32,
        reorder_pct: u32,
    },
    /// SIGKILL the leader (or node `node`), cut its files back to what it fsynced
    /// ([`crate::power_cut`]), restart after `down_ms`. With `tear_seed`, part of each unsynced
    /// tail survives (drawn from that seed).
    PowerCut {
        leader: bool,
        node: usize,
        down_ms: u64,
        tear_seed: Option<u64>,
    },
    /// A power cut of every node at once.
    PowerCutAll {
        down_ms: u64,
        tear_seed: Option<u64>,
    },
    /// The fsyncs of the leader (or node `node`) fail with EIO for `ms`: it must stop (exit
    /// status 74) without acknowledging what it could not make durable; then its unsynced
    /// writes are dropped, as after a real fsync failure, and it is restarted.
    FsyncError { leader: bool, node: usize, ms: u64 },
    /// The disk of the leader (or of every node, `all`) is full for `ms`; then the space comes
    /// back and nodes that stopped are restarted.
    DiskFull { all: bool, ms: u64 },
    /// Remove the leader (or the `pick`th follower) from the cluster, wipe its disk, start it
    /// empty and add it back ([`crate::membership`]).
    ReplaceMember { leader: bool, pick: usize },
    /// Damage one file of node `pick` (and of the next node too when `two`, in clusters of 5)
    /// while it is down ([`crate::disk::NodeDisk::damage`]), restart it, read its whole log if
    /// it runs (recorded, so the checker sees whether it served a damaged value), then replace
    /// the member, as an operator would a member with a bad disk.
    BitFlip { pick: usize, seed: u64, two: bool },
    /// The clocks of the leader (or node `node`) jump `secs` forward ([`crate::clock`]).
    ClockJump {
        leader: bool,
        node: usize,
        secs: u64,
    },
    /// The clocks of node `node` run 1.5 times as fast for `ms`.
    ClockSkew { node: usize, ms: u64 },
    /// The clients (the workload's namespace) cannot reach the leader (`leader`) or a minority
    /// of followers (from the `pick`th on) for `ms`; the nodes still reach each other. Clients
    /// must fail over to the nodes they still reach.
    IsolateClients { ms: u64, leader: bool, pick: usize },
    /// A follower (the `pick`th) is cut off until the others purged their Raft logs past it,
    /// restarted with `crash-at:<step>` armed, let back in, and aborts at `step` of the snapshot
    /// install it receives; restarted without the failpoint, it must catch up
    /// ([`crate::install_crash`]).
    SnapshotInstallCrash { pick: usize, step: &'static str },
}

/// Delay, jitter and loss of a degraded link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkFault {
    pub delay_ms: u32,
    pub jitter_ms: u32,
    pub loss_pct: u32,
}

/// The kinds, in a fixed order (the table's rows).
pub const KINDS: [&str; 19] = [
    "kill",
    "pause-leader",
    "isolate-leader",
    "isolate-follower",
    "one-way",
    "flap",
    "slow-link",
    "slow-all",
    "dup-reorder",
    "power-cut",
    "power-cut-all",
    "fsync-error",
    "disk-full",
    "replace-member",
    "bit-flip",
    "clock-jump",
    "clock-skew",
    "isolate-clients",
    "snapshot-install-crash",
];

impl Fault {
    /// The kind's name (one of [`KINDS`]).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Kill { .. } => KINDS[0],
            Self::PauseLeader { .. } => KINDS[1],
            Self::IsolateLeader { .. } => KINDS[2],
            Self::IsolateFollower { .. } => KINDS[3],
            Self::OneWay { .. } => KINDS[4],
            Self::Flap { .. } => KINDS[5],
            Self::SlowLink { .. } => KINDS[6],
            Self::SlowAll { .. } => KINDS[7],
            Self::DupReorder { .. } => KINDS[8],
            Self::PowerCut { .. } => KINDS[9],
            Self::PowerCutAll { .. } => KINDS[10],
            Self::FsyncError { .. } => KINDS[11],
            Self::DiskFull { .. } => KINDS[12],
            Self::ReplaceMember { .. } => KINDS[13],
            Self::BitFlip { .. } => KINDS[14],
            Self::ClockJump { .. } => KINDS[15],
            Self::ClockSkew { .. } => KINDS[16],
            Self::IsolateClients { .. } => KINDS[17],
            Self::SnapshotInstallCrash { .. } => KINDS[18],
        }
    }

    /// How long the fault lasts before it is healed.
    pub fn active_ms(&self) -> u64 {
        match *self {
            Self::Kill { down_ms, .. }
            | Self::PowerCut { down_ms, .. }
            | Self::PowerCutAll { down_ms, .. } => down_ms,
            Self::Flap { total_ms, .. } => total_ms,
            Self::PauseLeader { ms }
            | Self::IsolateLeader { ms }
            | Self::IsolateFollower { ms, .. }
            | Self::OneWay { ms, .. }
            | Self::SlowLink { ms, .. }
            | Self::SlowAll { ms, .. }
            | Self::DupReorder { ms, .. }
            | Self::FsyncError { ms, .. }
            | Self::DiskFull { ms, .. }
            | Self::ClockSkew { ms, .. }
            | Self::IsolateClients { ms, .. } => ms,
            // The node notices within a second; then its timers fire.
            Self::ClockJump { .. } => 3000,
            // Done when the member is back; budget for the catch-up.
            Self::ReplaceMember { .. } | Self::BitFlip { .. } => 5000,
            // Waiting for the purge (about 15 s with the default snapshot policy: the Raft log
            // grows by batches, not appends), the crash, the restart and the catch-up.
            Self::SnapshotInstallCrash { .. } => 18000,
        }
    }

    /// Draws a fault of kind `kind` (`kills` = kills and power cuts of one node drawn so far:
    /// every other one hits the leader, the rest a random node, which may be the leader too).
    fn draw(kind: &str, rng: &mut StdRng, nodes: usize, kills: usize) -> Self {
        let link = |rng: &mut StdRng| LinkFault {
            delay_ms: 100,
            jitter_ms: 50,
            loss_pct: rng.random_range(10..=30),
        };
        let pair = |rng: &mut StdRng| {
            let a = rng.random_range(0..nodes);
            let b = (a + rng.random_range(1..nodes)) % nodes;
            (a, b)
        };
        match kind {
            "kill" => Self::Kill {
                leader: kills.is_multiple_of(2),
                node: rng.random_range(0..nodes),
                down_ms: rng.random_range(1000..=3000),
            },
            "pause-leader" => Self::PauseLeader {
                ms: rng.random_range(ELECTION_TIMEOUT_MAX_MS * 3 / 2..=ELECTION_TIMEOUT_MAX_MS * 5),
            },
            "isolate-leader" => Self::IsolateLeader {
                ms: rng.random_range(3000..=8000),
            },
            "isolate-follower" => Self::IsolateFollower {
                ms: rng.random_range(3000..=8000),
                pick: rng.random_range(0..nodes),
            },
            "one-way" => {
                let (from, to) = pair(rng);
                Self::OneWay {
                    ms: rng.random_range(3000..=8000),
                    from,
                    to,
                }
            }
            "flap" => Self::Flap {
                on_ms: 1000,
                off_ms: 1000,
                total_ms: 6000,
            },
            "slow-link" => {
                let (a, b) = pair(rng);
                Self::SlowLink {
                    ms: rng.random_range(5000..=10000),
                    a,
                    b,
                    link: link(rng),
                }
            }
            "slow-all" => Self::SlowAll {
                ms: rng.random_range(5000..=10000),
                link: link(rng),
            },
            "dup-reorder" => Self::DupReorder {
                ms: rng.random_range(5000..=10000),
                duplicate_pct: rng.random_range(5..=20),
                reorder_pct: rng.random_range(10..=30),
            },
            "power-cut" => Self::PowerCut {
                leader: kills.is_multiple_of(2),
                node: rng.random_range(0..nodes),
                down_ms: rng.random_range(1000..=3000),
                tear_seed: rng.random_bool(0.5).then(|| rng.random()),
            },
            "power-cut-all" => Self::PowerCutAll {
                down_ms: rng.random_range(1000..=3000),
                tear_seed: rng.random_bool(0.5).then(|| rng.random()),
            },
            "fsync-error" => Self::FsyncError {
                leader: kills.is_multiple_of(2),
                node: rng.random_range(0..nodes),
                ms: rng.random_range(2000..=4000),
            },
            "disk-full" => Self::DiskFull {
                all: rng.random_bool(0.5),
                ms: rng.random_range(3000..=6000),
            },
            "replace-member" => Self::ReplaceMember {
                leader: rng.random_bool(0.5),
                pick: rng.random_range(0..nodes),
            },
            "bit-flip" => Self::BitFlip {
                pick: rng.random_range(0..nodes),
                seed: rng.random(),
                two: nodes >= 5,
            },
            "clock-jump" => Self::ClockJump {
                leader: rng.random_bool(0.5),
                node: rng.random_range(0..nodes),
                secs: rng.random_range(60..=600),
            },
            "clock-skew" => Self::ClockSkew {
                node: rng.random_range(0..nodes),
                ms: rng.random_range(6000..=10000),
            },
            "isolate-clients" => Self::IsolateClients {
                ms: rng.random_range(3000..=8000),
                leader: rng.random_bool(0.5),
                pick: rng.random_range(0..nodes),
            },
            "snapshot-install-crash" => {
                // Any step; `schedule` makes a run's first one `MID_INSTALL`.
                let steps = INSTALL_CRASH_STEPS;
                Self::SnapshotInstallCrash {
                    pick: rng.random_range(0..nodes),
                    step: steps[rng.random_range(0..steps.len())],
                }
            }
            other => unreachable!("unknown fault kind {other}"),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |ms: u64| ms as f64 / 1000.0;
        match self {
            Self::Kill {
                leader: true,
                down_ms,
                ..
            } => write!(f, "kill -9 the leader, restart after {:.1}s", s(*down_ms)),
            Self::Kill { node, down_ms, .. } => {
                write!(f, "kill -9 n{node}, restart after {:.1}s", s(*down_ms))
            }
            Self::PauseLeader { ms } => write!(f, "SIGSTOP the leader for {:.1}s", s(*ms)),
            Self::IsolateLeader { ms } => write!(f, "isolate the leader for {:.1}s", s(*ms)),
            Self::IsolateFollower { ms, .. } => {
                write!(f, "isolate a follower for {:.1}s", s(*ms))
            }
            Self::OneWay { ms, from, to } => {
                write!(f, "n{to} drops packets from n{from} for {:.1}s", s(*ms))
            }
            Self::Flap {
                on_ms,
                off_ms,
                total_ms,
            } => write!(
                f,
                "flap the leader's partition {:.1}s on/{:.1}s off for {:.1}s",
                s(*on_ms),
                s(*off_ms),
                s(*total_ms)
            ),
            Self::SlowLink { ms, a, b, link } => {
                write!(f, "degrade link n{a}<->n{b} ({link}) for {:.1}s", s(*ms))
            }
            Self::SlowAll { ms, link } => {
                write!(f, "degrade all links ({link}) for {:.1}s", s(*ms))
            }
            Self::DupReorder {
                ms,
                duplicate_pct,
                reorder_pct,
            } => write!(
                f,
                "duplicate {duplicate_pct}% / reorder {reorder_pct}% on all links for {:.1}s",
                s(*ms)
            ),
            Self::PowerCut {
                leader,
                node,
                down_ms,
                tear_seed,
            } => {
                let who = if *leader {
                    "the leader".to_owned()
                } else {
                    format!("n{node}")
                };
                let torn = if tear_seed.is_some() { " (torn)" } else { "" };
                write!(
                    f,
                    "power cut{torn} of {who}, back after {:.1}s",
                    s(*down_ms)
                )
            }
            Self::PowerCutAll { down_ms, tear_seed } => {
                let torn = if tear_seed.is_some() { " (torn)" } else { "" };
                write!(
                    f,
                    "power cut{torn} of every node, back after {:.1}s",
                    s(*down_ms)
                )
            }
            Self::FsyncError { leader, node, ms } => {
                let who = if *leader {
                    "the leader".to_owned()
                } else {
                    format!("n{node}")
                };
                write!(f, "fsyncs of {who} fail (EIO) for {:.1}s", s(*ms))
            }
            Self::DiskFull { all, ms } => {
                let who = if *all { "every node" } else { "the leader" };
                write!(f, "the disk of {who} is full for {:.1}s", s(*ms))
            }
            Self::ReplaceMember { leader: true, .. } => {
                write!(f, "replace the leader with an empty node")
            }
            Self::ReplaceMember { .. } => write!(f, "replace a follower with an empty node"),
            Self::BitFlip {
                pick, two: false, ..
            } => write!(f, "damage a file of n{pick}"),
            Self::BitFlip { pick, .. } => {
                write!(f, "damage a file of n{pick} and of the next node")
            }
            Self::ClockJump { leader, node, secs } => {
                let who = if *leader {
                    "the leader".to_owned()
                } else {
                    format!("n{node}")
                };
                write!(f, "the clocks of {who} jump {secs}s forward")
            }
            Self::ClockSkew { node, ms } => {
                write!(f, "the clocks of n{node} run 1.5x fast for {:.1}s", s(*ms))
            }
            Self::IsolateClients { ms, leader, .. } => {
                let from = if *leader {
                    "the leader"
                } else {
                    "a minority of followers"
                };
                write!(f, "cut the clients from {from} for {:.1}s", s(*ms))
            }
            Self::SnapshotInstallCrash { step, .. } => write!(
                f,
                "cut a follower off until the others purge past it, crash it at {step} of the snapshot install"
            ),
        }
    }
}

impl fmt::Display for LinkFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "delay {}±{}ms, loss {}%",
            self.delay_ms, self.jitter_ms, self.loss_pct
        )
    }
}

/// One scheduled fault: when it starts (ms after the workload started), what, and the healed
/// pause after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub start_ms: u64,
    pub fault: Fault,
    pub gap_ms: u64,
}

/// Quiet time before the first fault.
pub const WARMUP_MS: u64 = 5000;

/// The schedule of a run of `duration_ms`: every kind of `kinds` (all of [`KINDS`] when empty)
/// once, shuffled, then random ones of them while they fit. Deterministic in `seed`.
pub fn schedule(seed: u64, duration_ms: u64, nodes: usize, kinds: &[&'static str]) -> Vec<Step> {
    let kinds: &[&'static str] = if kinds.is_empty() { &KINDS } else { kinds };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut mandatory: Vec<&str> = kinds.to_vec();
    mandatory.shuffle(&mut rng);
    let mut steps = Vec::new();
    let mut at = WARMUP_MS;
    let mut kills = 0;
    let next_kind = |rng: &mut StdRng, i: usize| -> &'static str {
        mandatory
            .get(i)
            .copied()
            .unwrap_or_else(|| kinds[rng.random_range(0..kinds.len())])
    };
    for i in 0.. {
        let kind = next_kind(&mut rng, i);
        let mut fault = Fault::draw(kind, &mut rng, nodes, kills);
        // A run's first install crash is in the middle of the install: part of the snapshot's
        // records copied into the live log, the install not complete.
        let first_install_crash = !steps
            .iter()
            .any(|s: &Step| matches!(s.fault, Fault::SnapshotInstallCrash { .. }));
        if let Fault::SnapshotInstallCrash { step, .. } = &mut fault
            && first_install_crash
        {
            *step = MID_INSTALL;
        }
        let gap_ms = rng.random_range(3000..=5000);
        // Allow for the time it takes to find the leader and run the commands.
        let cost = fault.active_ms() + gap_ms + 500;
        if i >= kinds.len() && at + cost > duration_ms {
            break;
        }
        if matches!(kind, "kill" | "power-cut" | "fsync-error") {
            kills += 1;
        }
        steps.push(Step {
            start_ms: at,
            fault,
            gap_ms,
        });
        at += cost;
    }
    steps
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
