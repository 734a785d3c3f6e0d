//! How far this node's Raft log is durable, for the state machine.
//!
//! openraft applies an entry once a quorum holds it and this node has *accepted* it, which on a
//! leader can be before its own fsync of the entry finishes (its followers formed the quorum).
//! The state machine must then not make a position durable (`sm-state.json`) that the Raft log
//! on this disk does not hold yet: after a power cut the node would find its state machine ahead
//! of its Raft log, which is exactly what a disk that lost fsynced data looks like, and refuse to
//! start (`startup_check`). So the Raft log store publishes, through [`DurableIndex`], the index
//! below which its entries are durable, and the state machine waits on a [`RaftDurable`] before
//! it persists a position.

use parking_lot::Mutex;
use tokio::sync::watch;

/// The Raft log store's side: raised after each fsync, lowered when a suffix is truncated.
#[derive(Debug)]
pub struct DurableIndex {
    /// Every index below the value is durable on this disk (or purged behind a durable record).
    below: watch::Sender<u64>,
    /// Bumped by each truncation, so a sync that began before it cannot raise the index over
    /// entries the truncation replaced.
    generation: Mutex<u64>,
}

/// What a sync covers, taken just before it starts (see [`DurableIndex::before_sync`]).
#[derive(Debug, Clone, Copy)]
pub struct SyncTicket {
    generation: u64,
    next: u64,
}

impl DurableIndex {
    /// Starts at `below`: everything before it is durable (the log was synced when opened).
    pub fn new(below: u64) -> Self {
        let (below, _) = watch::channel(below);
        Self {
            below,
            generation: Mutex::new(0),
        }
    }

    /// A receiver for the state machine.
    pub fn subscribe(&self) -> RaftDurable {
        RaftDurable(self.below.subscribe())
    }

    /// The current value (every index below it is durable).
    pub fn below(&self) -> u64 {
        *self.below.borrow()
    }

    /// Call right before a sync of the log, with the log's next index at that moment.
    pub fn before_sync(&self, next: impl FnOnce() -> u64) -> SyncTicket {
        let generation = self.generation.lock();
        SyncTicket {
            generation: *generation,
            next: next(),
        }
    }

    /// The sync that `ticket` was taken for succeeded.
    pub fn synced(&self, ticket: SyncTicket) {
        let generation = self.generation.lock();
        if *generation == ticket.generation {
            self.raise(ticket.next);
        }
    }

    /// Entries from `from` on are being removed (a conflicting suffix). Runs `truncate` under
    /// the generation lock, so no sync ticket can straddle it.
    pub fn truncating<T>(&self, from: u64, truncate: impl FnOnce() -> T) -> T {
        let mut generation = self.generation.lock();
        *generation += 1;
        self.below.send_if_modified(|below| {
            let lowered = (*below).min(from);
            std::mem::replace(below, lowered) != lowered
        });
        truncate()
    }

    /// Entries below `below` are covered by a durable purge record (behind a snapshot).
    pub fn purged(&self, below: u64) {
        let _generation = self.generation.lock();
        self.raise(below);
    }

    fn raise(&self, to: u64) {
        self.below.send_if_modified(|below| {
            let raised = (*below).max(to);
            std::mem::replace(below, raised) != raised
        });
    }
}

/// The state machine's side: waits until the Raft log holds an applied position durably.
#[derive(Debug, Clone)]
pub struct RaftDurable(watch::Receiver<u64>);

impl RaftDurable {
    /// No Raft log to wait for (a state machine opened on its own, as tools and tests do).
    pub fn always() -> Self {
        let (_sender, receiver) = watch::channel(u64::MAX);
        Self(receiver)
    }

    /// Every index below this is durable in the Raft log now.
    pub fn below(&self) -> u64 {
        *self.0.borrow()
    }

    /// Waits until every index up to and including `index` is durable in the Raft log. False
    /// when the Raft log store is gone first (the node is stopping): nothing can be confirmed.
    pub async fn covers(&self, index: u64) -> bool {
        let mut receiver = self.0.clone();
        receiver.wait_for(|below| *below > index).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sync_raises_the_index_unless_a_truncation_came_between() {
        let durable = DurableIndex::new(5);
        let ticket = durable.before_sync(|| 10);
        durable.synced(ticket);
        assert_eq!(durable.below(), 10);

        // A sync that began before a truncation covers entries that are gone.
        let stale = durable.before_sync(|| 20);
        durable.truncating(8, || ());
        assert_eq!(durable.below(), 8);
        durable.synced(stale);
        assert_eq!(durable.below(), 8, "a ticket from before the truncation");

        let fresh = durable.before_sync(|| 12);
        durable.synced(fresh);
        assert_eq!(durable.below(), 12);
        durable.purged(30);
        assert_eq!(durable.below(), 30);
        durable.synced(durable.before_sync(|| 25));
        assert_eq!(durable.below(), 30, "never lowered by a sync");
    }

    #[tokio::test]
    async fn covers_waits_for_the_index_and_gives_up_when_the_store_is_gone() {
        let durable = DurableIndex::new(0);
        let waiter = durable.subscribe();
        let waiting = tokio::spawn({
            let waiter = waiter.clone();
            async move { waiter.covers(4).await }
        });
        durable.synced(durable.before_sync(|| 4));
        // A current-thread runtime: the waiter has run and is waiting again after these.
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        assert!(!waiting.is_finished(), "index 4 is not durable yet");
        durable.synced(durable.before_sync(|| 5));
        assert!(waiting.await.unwrap());
        drop(durable);
        assert!(!waiter.covers(9).await);
        assert!(RaftDurable::always().covers(u64::MAX - 1).await);
    }
}
