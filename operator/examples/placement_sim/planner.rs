//! The placement planner: from the observed cluster, the next single step. One replica move at
//! a time, cluster-wide: add the new replica as a learner, wait until it has caught up, promote
//! it, hand leadership away if the old replica leads, and only then remove the old replica.

use std::collections::VecDeque;

use crate::model::{Action, Cluster, Pod, PodState};

/// A replica move in flight (the operator would keep it in the resource's status, so that a
/// restarted operator finishes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub p: usize,
    pub from: Pod,
    pub to: Pod,
}

#[derive(Debug, Default)]
pub struct Planner {
    pub current: Option<Move>,
    /// Leadership transfers still to issue (a path that moves one leader net between two pods).
    pub transfers: VecDeque<(usize, Pod)>,
    /// Deliberately wrong order, for the negative test: remove the old replica before adding.
    pub unsafe_remove_first: bool,
}

impl Planner {
    pub fn next(&mut self, c: &mut Cluster) -> Action {
        self.forget_empty_pods(c);
        if let Some(m) = self.current {
            match self.continue_move(c, m) {
                Some(action) => return action,
                None => self.current = None,
            }
        }
        if let Some(m) = self.choose_move(c) {
            self.current = Some(m);
            self.transfers.clear();
            if let Some(action) = self.continue_move(c, m) {
                return action;
            }
        }
        if let Some(action) = self.leader_step(c) {
            return action;
        }
        // Replicas of a pod that came back are still catching up: leaders may move there later.
        let catching_up = c
            .parts
            .iter()
            .any(|x| x.replicas.iter().any(|y| y.lag > 0 && c.is_up(y.pod)));
        if catching_up {
            Action::Wait
        } else {
            Action::Idle
        }
    }

    /// Draining pods with no replicas left are deleted (the StatefulSet shrinks); lost pods
    /// whose replicas were all re-created elsewhere are forgotten (their members are removed).
    fn forget_empty_pods(&self, c: &mut Cluster) {
        for pod in 0..c.pods.len() {
            let gone = c.pods[pod] == PodState::Draining || c.is_lost(pod);
            if gone && c.replicas_on(pod) == 0 {
                c.pods[pod] = PodState::Gone;
            }
        }
    }

    fn continue_move(&mut self, c: &mut Cluster, m: Move) -> Option<Action> {
        let Move { p, from, to } = m;
        let (to_rep, from_rep) = (c.replica(p, to).cloned(), c.replica(p, from).cloned());
        if self.unsafe_remove_first && from_rep.is_some() {
            return Some(self.hand_off_or_remove(c, p, from));
        }
        if !c.is_up(to) && from_rep.is_some() {
            // The target died mid-move: take its replica back out; the old one never left.
            if to_rep.is_some() {
                return Some(Action::Remove { p, pod: to });
            }
            c.stats.aborted += 1;
            return None;
        }
        match to_rep {
            None if from_rep.is_some() => return Some(Action::AddLearner { p, pod: to }),
            Some(x) if !x.voter && x.lag > 0 => return Some(Action::Wait),
            Some(x) if !x.voter => return Some(Action::Promote { p, pod: to }),
            _ => {}
        }
        if from_rep.is_some() {
            // A voter that went down meanwhile is what the new replica replaces: removing the
            // live `from` now would leave the group below R live voters.
            let down = c
                .voters(p)
                .into_iter()
                .find(|&v| v != from && v != to && !caught_up(c, p, v));
            match down {
                Some(pod) if !c.is_up(pod) => {
                    c.stats.moves += 1;
                    self.current = None;
                    return Some(self.hand_off_or_remove(c, p, pod));
                }
                Some(_) => return Some(Action::Wait), // catching up after a restart
                None => {}
            }
            return Some(self.hand_off_or_remove(c, p, from));
        }
        c.stats.moves += 1;
        None
    }

    fn hand_off_or_remove(&self, c: &Cluster, p: usize, from: Pod) -> Action {
        if c.parts[p].leader != Some(from) {
            return Action::Remove { p, pod: from };
        }
        let mut candidates: Vec<Pod> = c
            .voters(p)
            .into_iter()
            .filter(|&v| v != from && caught_up(c, p, v))
            .collect();
        candidates.sort_by_key(|&v| (c.leaders_on(v), v));
        match candidates.first() {
            Some(&to) => Action::TransferLeader { p, to },
            None => Action::Wait,
        }
    }

    fn choose_move(&self, c: &mut Cluster) -> Option<Move> {
        let active = c.active();
        if active.len() < c.r {
            return None;
        }
        let target = |c: &Cluster, p: usize| {
            active
                .iter()
                .copied()
                .filter(|&x| c.replica(p, x).is_none())
                .min_by_key(|&x| (c.replicas_on(x), c.leaders_on(x), x))
        };
        // 1. Replicas on lost pods, then on draining pods, must go. A live replica may only leave
        //    a partition whose other replicas are all live (else the move would cut it below R).
        for forced in [true, false] {
            for p in 0..c.parts.len() {
                for rep in c.parts[p].replicas.clone() {
                    let must = if forced {
                        c.is_lost(rep.pod)
                    } else {
                        c.pods[rep.pod] == PodState::Draining
                    };
                    let others_live = c.parts[p]
                        .replicas
                        .iter()
                        .all(|x| x.pod == rep.pod || caught_up(c, p, x.pod));
                    if must
                        && (forced || others_live)
                        && c.has_quorum(p)
                        && let Some(to) = target(c, p)
                    {
                        let from = rep.pod;
                        return Some(Move { p, from, to });
                    }
                }
            }
        }
        // 2. Balance replicas over active pods: from the fullest to the emptiest, preferring a
        //    partition the source does not lead (no leadership transfer needed).
        let from = *active.iter().max_by_key(|&&x| (c.replicas_on(x), x))?;
        let to = *active.iter().min_by_key(|&&x| (c.replicas_on(x), x))?;
        if c.replicas_on(from) <= c.replicas_on(to) + 1 {
            return None;
        }
        let movable: Vec<usize> = (0..c.parts.len())
            .filter(|&p| c.replica(p, from).is_some() && c.replica(p, to).is_none())
            .filter(|&p| c.parts[p].replicas.iter().all(|x| caught_up(c, p, x.pod)))
            .collect();
        let followers: Vec<usize> = movable
            .iter()
            .copied()
            .filter(|&p| c.parts[p].leader != Some(from))
            .collect();
        let p = c.rng.pick(if followers.is_empty() {
            &movable
        } else {
            &followers
        })?;
        Some(Move { p, from, to })
    }

    /// Leaders within ±1 per active pod: a breadth-first search for a chain of transfers from a
    /// pod with the most leaders to one with at least two fewer (each hop: a partition led by
    /// the first pod with a caught-up voter on the second), issued one transfer per step.
    fn leader_step(&mut self, c: &Cluster) -> Option<Action> {
        while let Some((p, to)) = self.transfers.pop_front() {
            if caught_up(c, p, to) && c.parts[p].leader.is_some_and(|l| l != to) {
                return Some(Action::TransferLeader { p, to });
            }
            self.transfers.clear();
        }
        let active = c.active();
        let max = active.iter().map(|&x| c.leaders_on(x)).max()?;
        let mut via: Vec<Option<(Pod, usize)>> = vec![None; c.pods.len()];
        let mut seen = vec![false; c.pods.len()];
        let mut queue: VecDeque<Pod> = active
            .iter()
            .copied()
            .filter(|&x| c.leaders_on(x) == max)
            .collect();
        queue.iter().for_each(|&x| seen[x] = true);
        while let Some(u) = queue.pop_front() {
            if c.leaders_on(u) + 2 <= max {
                let mut path = Vec::new();
                let mut at = u;
                while let Some((prev, p)) = via[at] {
                    path.push((p, at));
                    at = prev;
                }
                self.transfers = path.into_iter().rev().collect();
                return self.leader_step(c);
            }
            for p in (0..c.parts.len()).filter(|&p| c.parts[p].leader == Some(u)) {
                for w in c.voters(p) {
                    if !seen[w] && c.pods[w] == PodState::Up && caught_up(c, p, w) {
                        seen[w] = true;
                        via[w] = Some((u, p));
                        queue.push_back(w);
                    }
                }
            }
        }
        None
    }
}

/// A replica on a running pod that has caught up with its leader.
fn caught_up(c: &Cluster, p: usize, pod: Pod) -> bool {
    c.is_up(pod) && c.replica(p, pod).is_some_and(|x| x.lag == 0)
}
