//! The simulated cluster: pods, partitions (one Raft group each) and the invariant checker.
//! Every change goes through [`Cluster::apply`] (a planned step) or [`Cluster::fail`] /
//! [`Cluster::restore`] (the world), and every one of them is checked.

/// A tiny deterministic PRNG (SplitMix64): seeds reproduce runs exactly.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[(self.next() % items.len() as u64) as usize])
    }
}

pub type Pod = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodState {
    /// Running and a placement target.
    Up,
    /// Crashed at step `since`; its replicas are stale until it comes back (or is declared lost).
    Down { since: u64 },
    /// Being scaled away: replicas move off, then the pod is deleted.
    Draining,
    /// Deleted (scaled in, or lost and replaced).
    Gone,
}

#[derive(Debug, Clone)]
pub struct Replica {
    pub pod: Pod,
    pub voter: bool,
    /// Steps until this replica has caught up with the leader (0 = caught up).
    pub lag: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Partition {
    pub replicas: Vec<Replica>,
    pub leader: Option<Pod>,
}

/// One planned step, as the operator would execute it against one partition's leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    AddLearner {
        p: usize,
        pod: Pod,
    },
    Promote {
        p: usize,
        pod: Pod,
    },
    TransferLeader {
        p: usize,
        to: Pod,
    },
    Remove {
        p: usize,
        pod: Pod,
    },
    /// Something is in progress (a learner catching up); observe again.
    Wait,
    /// Nothing to do: the placement is where the planner wants it.
    Idle,
}

/// Figures of one phase, printed in its summary line.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub steps: u64,
    pub moves: u64,
    pub aborted: u64,
    pub transfers: u64,
    pub elections: u64,
    /// Fewest live, caught-up voters of any partition at any step (failures included).
    pub min_live: usize,
    /// Fewest live voters of any partition right after a planned step.
    pub min_live_planned: usize,
    pub max_voters: usize,
    pub max_leader_skew: usize,
}

#[derive(Debug)]
pub struct Cluster {
    pub pods: Vec<PodState>,
    pub parts: Vec<Partition>,
    pub r: usize,
    pub now: u64,
    /// Steps a pod may stay down before its replicas are re-created elsewhere.
    pub grace: u64,
    pub rng: Rng,
    pub stats: Stats,
    pub violations: Vec<String>,
}

fn majority(n: usize) -> usize {
    n / 2 + 1
}

impl Cluster {
    pub fn new(pods: usize, r: usize, seed: u64) -> Self {
        Cluster {
            pods: vec![PodState::Up; pods],
            parts: Vec::new(),
            r,
            now: 0,
            grace: 30,
            rng: Rng::new(seed),
            stats: Stats::default(),
            violations: Vec::new(),
        }
    }

    pub fn is_up(&self, pod: Pod) -> bool {
        matches!(self.pods[pod], PodState::Up | PodState::Draining)
    }
    /// Placement targets: up and not draining.
    pub fn active(&self) -> Vec<Pod> {
        (0..self.pods.len())
            .filter(|&i| self.pods[i] == PodState::Up)
            .collect()
    }
    /// Down for longer than the grace period: its replicas must be re-created elsewhere.
    pub fn is_lost(&self, pod: Pod) -> bool {
        matches!(self.pods[pod], PodState::Down { since } if self.now - since >= self.grace)
    }
    pub fn voters(&self, p: usize) -> Vec<Pod> {
        self.parts[p]
            .replicas
            .iter()
            .filter(|x| x.voter)
            .map(|x| x.pod)
            .collect()
    }
    fn live(&self, p: usize, set: &[Pod]) -> usize {
        set.iter()
            .filter(|&&pod| self.is_up(pod) && self.replica(p, pod).is_some_and(|x| x.lag == 0))
            .count()
    }
    pub fn live_voters(&self, p: usize) -> usize {
        self.live(p, &self.voters(p))
    }
    pub fn has_quorum(&self, p: usize) -> bool {
        self.live_voters(p) >= majority(self.voters(p).len())
    }
    pub fn replica(&self, p: usize, pod: Pod) -> Option<&Replica> {
        self.parts[p].replicas.iter().find(|x| x.pod == pod)
    }
    pub fn replicas_on(&self, pod: Pod) -> usize {
        self.parts
            .iter()
            .filter(|x| x.replicas.iter().any(|y| y.pod == pod))
            .count()
    }
    pub fn leaders_on(&self, pod: Pod) -> usize {
        self.parts.iter().filter(|x| x.leader == Some(pod)).count()
    }
    /// max - min over `pods` of `f`.
    pub fn skew(&self, pods: &[Pod], f: impl Fn(Pod) -> usize) -> usize {
        let v: Vec<usize> = pods.iter().map(|&x| f(x)).collect();
        v.iter().max().unwrap_or(&0) - v.iter().min().unwrap_or(&0)
    }

    /// Initial placement of a new log's partitions: each on the R least-loaded pods, led by the
    /// least-leading of them (not a move: the group is created with this membership).
    pub fn create(&mut self, partitions: usize) {
        for _ in 0..partitions {
            let mut pods = self.active();
            pods.sort_by_key(|&x| (self.replicas_on(x), self.leaders_on(x), x));
            pods.truncate(self.r);
            let leader = *pods
                .iter()
                .min_by_key(|&&x| (self.leaders_on(x), x))
                .expect("pods");
            let replicas = pods
                .iter()
                .map(|&pod| Replica {
                    pod,
                    voter: true,
                    lag: 0,
                })
                .collect();
            self.parts.push(Partition {
                replicas,
                leader: Some(leader),
            });
        }
        self.observe();
    }

    fn violate(&mut self, what: String) {
        self.violations.push(format!("step {}: {what}", self.now));
    }

    /// Executes one planned step and checks that it was safe.
    pub fn apply(&mut self, action: &Action) {
        self.now += 1;
        self.stats.steps += 1;
        for part in &mut self.parts {
            for x in part.replicas.iter_mut().filter(|x| x.lag > 0) {
                if matches!(self.pods[x.pod], PodState::Up | PodState::Draining) {
                    x.lag -= 1;
                }
            }
        }
        let (p, old_voters, old_live) = match *action {
            Action::AddLearner { p, .. }
            | Action::Promote { p, .. }
            | Action::TransferLeader { p, .. }
            | Action::Remove { p, .. } => (p, self.voters(p), self.live_voters(p)),
            Action::Wait | Action::Idle => return self.observe(),
        };
        // A membership change or transfer is decided by the partition's leader and commits only
        // with a quorum: the planner must never ask a group that has none.
        if self.parts[p].leader.is_none() || !self.has_quorum(p) {
            self.violate(format!(
                "{action:?} on partition {p}, which has no leader or quorum"
            ));
        }
        match *action {
            Action::AddLearner { pod, .. } => {
                if self.replica(p, pod).is_some() || !self.is_up(pod) {
                    self.violate(format!(
                        "learner for p{p} on pod {pod}: already a replica or down"
                    ));
                }
                let lag = self.rng.range(1, 4);
                self.parts[p].replicas.push(Replica {
                    pod,
                    voter: false,
                    lag,
                });
            }
            Action::Promote { pod, .. } => {
                match self.parts[p].replicas.iter_mut().find(|x| x.pod == pod) {
                    Some(x) if x.lag == 0 && !x.voter => x.voter = true,
                    _ => self.violate(format!("promoted p{p}@{pod}, not a caught-up learner")),
                }
            }
            Action::TransferLeader { to, .. } => {
                if self.replica(p, to).is_some_and(|x| x.voter && x.lag == 0) && self.is_up(to) {
                    self.parts[p].leader = Some(to);
                    self.stats.transfers += 1;
                } else {
                    self.violate(format!(
                        "leadership of p{p} to pod {to}: not a live caught-up voter"
                    ));
                }
            }
            Action::Remove { pod, .. } => {
                if self.parts[p].leader == Some(pod) {
                    self.violate(format!(
                        "removed the leader of p{p} (pod {pod}) without a transfer"
                    ));
                    self.parts[p].leader = None;
                }
                self.parts[p].replicas.retain(|x| x.pod != pod);
            }
            Action::Wait | Action::Idle => {}
        }
        // Joint consensus: a change from C_old to C_new needs a live majority of both (the
        // members of C_old are as live as they were before the change).
        let new_voters = self.voters(p);
        let new_live = self.live(p, &new_voters);
        if new_live < majority(new_voters.len()) || old_live < majority(old_voters.len()) {
            self.violate(format!(
                "{action:?} left p{p} without a quorum ({new_live}/{} live voters)",
                new_voters.len()
            ));
        }
        if new_live < old_live.min(self.r) {
            self.violate(format!(
                "{action:?} cut p{p} to {new_live} live voters (had {old_live}, R={})",
                self.r
            ));
        }
        let s = &mut self.stats;
        s.min_live_planned = s.min_live_planned.min(new_live);
        self.observe();
    }

    /// A pod crashes: partitions it led elect a new leader among their live voters.
    pub fn fail(&mut self, pod: Pod) {
        self.pods[pod] = PodState::Down { since: self.now };
        self.observe();
    }

    /// A crashed pod comes back with its data; its replicas must catch up first.
    pub fn restore(&mut self, pod: Pod) {
        self.pods[pod] = PodState::Up;
        for part in &mut self.parts {
            for x in part.replicas.iter_mut().filter(|x| x.pod == pod) {
                x.lag = self.rng.range(1, 4);
            }
        }
        self.observe();
    }

    /// Elections and the checks that hold after every step, planned or not.
    fn observe(&mut self) {
        for p in 0..self.parts.len() {
            let leader_ok = self.parts[p].leader.is_some_and(|l| self.is_up(l));
            if !leader_ok {
                let candidates: Vec<Pod> = self
                    .voters(p)
                    .into_iter()
                    .filter(|&v| self.is_up(v) && self.replica(p, v).is_some_and(|x| x.lag == 0))
                    .collect();
                self.parts[p].leader = if self.has_quorum(p) {
                    self.rng.pick(&candidates)
                } else {
                    None
                };
                self.stats.elections += 1;
            }
            let live = self.live_voters(p);
            self.stats.min_live = self.stats.min_live.min(live);
            self.stats.max_voters = self.stats.max_voters.max(self.voters(p).len());
            let mut pods: Vec<Pod> = self.parts[p].replicas.iter().map(|x| x.pod).collect();
            pods.sort_unstable();
            pods.dedup();
            if pods.len() != self.parts[p].replicas.len() {
                self.violate(format!("p{p} has two replicas on one pod"));
            }
            if !self.has_quorum(p) || self.parts[p].leader.is_none() {
                self.violate(format!(
                    "p{p} lost quorum ({live}/{} live voters)",
                    self.voters(p).len()
                ));
            }
        }
        let up: Vec<Pod> = (0..self.pods.len()).filter(|&x| self.is_up(x)).collect();
        let skew = self.skew(&up, |x| self.leaders_on(x));
        self.stats.max_leader_skew = self.stats.max_leader_skew.max(skew);
    }

    /// The steady-state invariants, checked when the planner has nothing left to do.
    pub fn check_balanced(&mut self, phase: &str) {
        let active = self.active();
        let (ls, rs) = (
            self.skew(&active, |x| self.leaders_on(x)),
            self.skew(&active, |x| self.replicas_on(x)),
        );
        if ls > 1 || rs > 1 {
            self.violate(format!(
                "{phase}: leaders/pod skew {ls}, replicas/pod skew {rs} (want <= 1)"
            ));
        }
        for p in 0..self.parts.len() {
            let voters = self.voters(p);
            // A pod down within its grace period keeps its replicas (they catch up when it returns).
            let placed = voters.iter().all(|&v| {
                self.pods[v] == PodState::Up
                    || matches!(self.pods[v], PodState::Down { .. }) && !self.is_lost(v)
            });
            if voters.len() != self.r || self.parts[p].replicas.len() != self.r || !placed {
                self.violate(format!(
                    "{phase}: p{p} is not R={} voters on active pods: {:?}",
                    self.r, self.parts[p]
                ));
            }
        }
    }

    /// Resets the per-phase figures.
    pub fn take_stats(&mut self) -> Stats {
        let fresh = Stats {
            min_live: usize::MAX,
            min_live_planned: usize::MAX,
            ..Stats::default()
        };
        std::mem::replace(&mut self.stats, fresh)
    }
}
