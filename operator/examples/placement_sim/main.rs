//! Placement and rebalancing of P partitions (one Raft group each) × R replicas over K pods, as
//! pods are added, removed and fail, with every step checked (docs/SCALE_OUT.md).
//!
//! `cargo run -p proglog-operator --example placement_sim -- --seed N [--partitions P]
//! [--replicas R] [--pods K]`; `cargo test -p proglog-operator --example placement_sim`.
//!
//! Checked at every step: a planned step is decided by a leader with a quorum, leaves a live
//! majority of both the old and the new voter set (joint consensus), never cuts a partition
//! below min(R, its live voters before), never removes a leader without a transfer, never
//! promotes a learner that has not caught up; after any step (failures included) no partition
//! is without a quorum and a leader, and no two replicas share a pod. When the planner is idle:
//! leaders and replicas per active pod within ±1, every partition R voters on active pods.

mod model;
mod planner;

use model::{Action, Cluster, PodState, Stats};
use planner::Planner;

/// Steps without the planner becoming idle after which a phase counts as stuck.
const MAX_STEPS: u64 = 20_000;

#[derive(Debug, Clone, Copy)]
struct Shape {
    partitions: usize,
    replicas: usize,
    pods: usize,
}

#[derive(Debug)]
struct PhaseReport {
    name: String,
    stats: Stats,
    pods: usize,
    leader_skew: usize,
    replica_skew: usize,
}

struct Sim {
    c: Cluster,
    planner: Planner,
    reports: Vec<PhaseReport>,
}

impl Sim {
    fn new(shape: Shape, seed: u64, unsafe_remove_first: bool) -> Self {
        let mut c = Cluster::new(shape.pods, shape.replicas, seed);
        c.take_stats();
        c.create(shape.partitions);
        let planner = Planner {
            unsafe_remove_first,
            ..Planner::default()
        };
        let mut sim = Sim {
            c,
            planner,
            reports: Vec::new(),
        };
        sim.converge("create");
        sim
    }

    /// Runs the planner for at most `steps` steps (or until idle when `None`).
    fn run(&mut self, steps: Option<u64>) -> bool {
        for _ in 0..steps.unwrap_or(MAX_STEPS) {
            let action = self.planner.next(&mut self.c);
            if action == Action::Idle {
                return true;
            }
            self.c.apply(&action);
        }
        if steps.is_none() {
            self.c.violations.push("planner did not become idle".into());
        }
        false
    }

    /// Runs until idle, checks the balanced state and records the phase's figures.
    fn converge(&mut self, name: &str) {
        self.run(None);
        self.c.check_balanced(name);
        let active = self.c.active();
        self.reports.push(PhaseReport {
            name: name.to_owned(),
            leader_skew: self.c.skew(&active, |x| self.c.leaders_on(x)),
            replica_skew: self.c.skew(&active, |x| self.c.replicas_on(x)),
            pods: active.len(),
            stats: self.c.take_stats(),
        });
    }

    fn add_pods(&mut self, n: usize) {
        self.c.pods.extend(std::iter::repeat_n(PodState::Up, n));
    }

    fn random_up_pod(&mut self) -> usize {
        let up = self.c.active();
        self.c.rng.pick(&up).expect("an active pod")
    }

    /// Idles until the grace period of a down pod has passed (time moves, nothing is planned
    /// except what a down-but-not-lost pod allows).
    fn wait_steps(&mut self, n: u64) {
        for _ in 0..n {
            let action = self.planner.next(&mut self.c);
            self.c.apply(&if action == Action::Idle {
                Action::Wait
            } else {
                action
            });
        }
    }

    fn scenario(&mut self) {
        self.add_pods(3);
        self.converge("scale out +3");

        let victim = self.random_up_pod();
        self.c.fail(victim);
        self.wait_steps(self.c.grace / 2);
        self.converge(&format!("pod {victim} down (within grace)"));
        self.c.restore(victim);
        self.converge(&format!("pod {victim} back"));

        self.add_pods(1);
        let during = self.c.rng.range(2, 12);
        self.run(Some(during));
        let lost = self.random_up_pod();
        self.c.fail(lost);
        self.wait_steps(self.c.grace + 1);
        self.converge(&format!("scale out +1, pod {lost} lost mid-rebalance"));

        self.add_pods(1);
        self.converge("replacement pod joins");

        // A StatefulSet shrinks from its highest ordinals: drain those.
        let mut active = self.c.active();
        active.sort_unstable();
        for &pod in active.iter().rev().take(2) {
            self.c.pods[pod] = PodState::Draining;
        }
        self.converge("scale in -2 (drain highest)");
    }
}

fn simulate(shape: Shape, seed: u64, unsafe_remove_first: bool) -> Sim {
    let mut sim = Sim::new(shape, seed, unsafe_remove_first);
    if sim.c.violations.is_empty() {
        sim.scenario();
    }
    sim
}

fn main() {
    let mut shape = Shape {
        partitions: 32,
        replicas: 3,
        pods: 3,
    };
    let mut seed = 1;
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).and_then(|v| v.parse().ok());
        match (pair[0].as_str(), value) {
            ("--seed", Some(v)) => seed = v,
            ("--partitions", Some(v)) => shape.partitions = v as usize,
            ("--replicas", Some(v)) => shape.replicas = v as usize,
            ("--pods", Some(v)) => shape.pods = v as usize,
            _ => {
                eprintln!(
                    "usage: placement_sim [--seed N] [--partitions P] [--replicas R] [--pods K (>= R)]"
                );
                std::process::exit(2);
            }
        }
    }
    if shape.pods < shape.replicas || shape.replicas == 0 {
        eprintln!("need --pods >= --replicas >= 1");
        std::process::exit(2);
    }
    let sim = simulate(shape, seed, false);
    println!(
        "seed {seed}: {} partitions x {} replicas, {} pods at start",
        shape.partitions, shape.replicas, shape.pods
    );
    println!(
        "{:<42} {:>4} {:>6} {:>6} {:>7} {:>8} {:>9} {:>8} {:>12} {:>9}",
        "phase",
        "pods",
        "steps",
        "moves",
        "aborted",
        "transfer",
        "elections",
        "min live",
        "max lead skew",
        "final l/r"
    );
    for r in &sim.reports {
        let s = &r.stats;
        let min_live = if s.min_live == usize::MAX {
            "-".to_owned()
        } else {
            s.min_live.to_string()
        };
        println!(
            "{:<42} {:>4} {:>6} {:>6} {:>7} {:>8} {:>9} {:>8} {:>12} {:>6}/{}",
            r.name,
            r.pods,
            s.steps,
            s.moves,
            s.aborted,
            s.transfers,
            s.elections,
            min_live,
            s.max_leader_skew,
            r.leader_skew,
            r.replica_skew
        );
    }
    let peak = sim
        .reports
        .iter()
        .map(|r| r.stats.max_voters)
        .max()
        .unwrap_or(0);
    println!("peak voters in one group: {peak} (R+1 while a move is in flight)");
    if sim.c.violations.is_empty() {
        println!("invariants: OK at every step");
    } else {
        println!("invariants VIOLATED ({}):", sim.c.violations.len());
        sim.c
            .violations
            .iter()
            .take(10)
            .for_each(|v| println!("  {v}"));
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPES: [Shape; 4] = [
        Shape {
            partitions: 32,
            replicas: 3,
            pods: 3,
        },
        Shape {
            partitions: 7,
            replicas: 3,
            pods: 4,
        },
        Shape {
            partitions: 100,
            replicas: 3,
            pods: 5,
        },
        Shape {
            partitions: 24,
            replicas: 5,
            pods: 5,
        },
    ];

    #[test]
    fn invariants_hold_for_many_seeds() {
        for shape in SHAPES {
            for seed in 1..=25 {
                let sim = simulate(shape, seed, false);
                assert!(
                    sim.c.violations.is_empty(),
                    "{shape:?} seed {seed}: {:?}",
                    sim.c.violations
                );
                assert_eq!(sim.reports.len(), 7, "every phase ran");
                for (i, r) in sim.reports.iter().enumerate() {
                    let ctx = format!("{shape:?} seed {seed}: {r:?}");
                    assert!(r.leader_skew <= 1 && r.replica_skew <= 1, "{ctx}");
                    // Never below a quorum, even with a pod down; never below R in phases
                    // without failures (a planned move adds before it removes).
                    assert!(r.stats.min_live > shape.replicas / 2, "{ctx}");
                    if [0, 1, 5, 6].contains(&i) && r.stats.steps > 0 {
                        assert!(r.stats.min_live_planned >= shape.replicas, "{ctx}");
                    }
                }
                let scale_out = &sim.reports[1].stats;
                assert!(scale_out.moves > 0 && scale_out.max_voters == shape.replicas + 1);
            }
        }
    }

    #[test]
    fn runs_are_reproducible() {
        let a = simulate(SHAPES[0], 7, false);
        let b = simulate(SHAPES[0], 7, false);
        let steps = |s: &Sim| {
            s.reports
                .iter()
                .map(|r| (r.stats.steps, r.stats.moves))
                .collect::<Vec<_>>()
        };
        assert_eq!(steps(&a), steps(&b));
    }

    #[test]
    fn checker_catches_remove_before_add() {
        for seed in 1..=5 {
            let sim = simulate(SHAPES[0], seed, true);
            let cut = sim
                .c
                .violations
                .iter()
                .any(|v| v.contains("live voters (had"));
            assert!(
                cut,
                "seed {seed}: the unsafe planner went unnoticed: {:?}",
                sim.c.violations
            );
        }
    }

    #[test]
    fn checker_catches_quorum_loss_when_a_pod_fails_during_an_unsafe_move() {
        let mut sim = Sim::new(SHAPES[0], 3, true);
        sim.add_pods(1);
        // Remove-first leaves a two-voter group; losing one more pod of it loses quorum.
        let (p, pod) = loop {
            match sim.planner.next(&mut sim.c) {
                Action::Remove { p, pod } => break (p, pod),
                other => sim.c.apply(&other),
            }
        };
        sim.c.apply(&Action::Remove { p, pod });
        let other = sim
            .c
            .voters(p)
            .into_iter()
            .find(|&v| Some(v) != sim.c.parts[p].leader)
            .unwrap();
        sim.c.fail(other);
        assert!(
            sim.c.violations.iter().any(|v| v.contains("lost quorum")),
            "{:?}",
            sim.c.violations
        );
    }
}
