//! The node-wide memory budget for in-flight `log.v1` request and response bytes
//! (`--memory-budget-bytes`).
//!
//! A [`MemoryBudget`] is a byte-counting semaphore (one tokio permit per byte, FIFO). Whatever
//! holds record bytes on their way through the node holds a [`BudgetPermit`] for them:
//!
//! - **Requests**: each gRPC message of a `log.v1.Log` request is paid for, whole, as soon as its
//!   5-byte header shows its length and before tonic buffers any of it (`charged_body`);
//!   the payments queue in the call's [`RequestCredit`]. A `ProduceStream` moves each decoded
//!   message's payment onto its records and releases it when the backend has appended them; a
//!   unary call holds its credit until it returns.
//! - **Responses**: `Consume` and `ConsumeStream` reserve a record's bytes *before* reading it
//!   from the log and put the response's permit into the call's [`ResponseCredit`]; the encoded
//!   chunk tonic makes of it carries the permit ([`bytes::Bytes::from_owner`]), so the bytes
//!   are released exactly when HTTP/2 has written the chunk to the connection and dropped it.
//!
//! When the budget is spent, whoever needs more waits (a stream stops reading its client, which
//! HTTP/2 flow control then stops; a consumer stops reading the log). Nothing waits for budget
//! while holding bytes it would release only after the wait (a request is split at message
//! boundaries, so a waiting call's earlier messages are complete and move on; a response's
//! permit belongs to its chunk, not to the waiting stream), so waits never deadlock: budget is
//! released by progress that needs none (appends, HTTP/2 writing what clients read). A request
//! for more bytes than the whole budget is granted the whole budget (it waits until everything
//! else is released, then runs alone), so an old record committed under a larger
//! `--max-record-size` stays readable. Waiters are served in arrival order, so a large request
//! is not starved by small ones. What the budget cannot free is what clients that stopped
//! reading hold: at most a few responses per stream (see ARCHITECTURE "Bounded resources").

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The default budget: 256 MiB.
pub const DEFAULT_MEMORY_BUDGET_BYTES: usize = 256 << 20;

/// A node-wide budget of bytes. Cloning shares it.
#[derive(Debug, Clone)]
pub struct MemoryBudget {
    semaphore: Arc<Semaphore>,
    total: usize,
}

impl MemoryBudget {
    /// A budget of `total` bytes (at least 1, at most [`Semaphore::MAX_PERMITS`]).
    pub fn new(total: usize) -> Self {
        let total = total.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            semaphore: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The whole budget, in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes not held by anyone right now.
    pub fn available(&self) -> usize {
        self.semaphore.available_permits()
    }

    /// What a request for `bytes` is granted: the whole budget at most (and at most what one
    /// semaphore acquisition can take).
    fn grant(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.min(self.total)).unwrap_or(u32::MAX)
    }

    /// Waits until `bytes` (at most the whole budget) are free and takes them.
    pub async fn acquire(&self, bytes: usize) -> BudgetPermit {
        let n = self.grant(bytes);
        if n == 0 {
            return BudgetPermit::empty();
        }
        let permit = Arc::clone(&self.semaphore)
            .acquire_many_owned(n)
            .await
            .expect("the budget's semaphore is never closed");
        BudgetPermit {
            permit: Some(permit),
        }
    }

    /// Takes `bytes` (at most the whole budget) if they are free now.
    pub fn try_acquire(&self, bytes: usize) -> Option<BudgetPermit> {
        let n = self.grant(bytes);
        if n == 0 {
            return Some(BudgetPermit::empty());
        }
        Arc::clone(&self.semaphore)
            .try_acquire_many_owned(n)
            .ok()
            .map(|permit| BudgetPermit {
                permit: Some(permit),
            })
    }
}

/// Bytes held from a [`MemoryBudget`], released when dropped.
#[derive(Debug, Default)]
pub struct BudgetPermit {
    permit: Option<OwnedSemaphorePermit>,
}

impl BudgetPermit {
    /// A permit holding nothing.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The bytes held.
    pub fn bytes(&self) -> usize {
        self.permit.as_ref().map_or(0, |p| p.num_permits())
    }

    /// Adds the bytes of `other` (of the same budget) to this permit.
    pub fn merge(&mut self, other: BudgetPermit) {
        match (&mut self.permit, other.permit) {
            (_, None) => {}
            (None, some) => self.permit = some,
            (Some(mine), Some(theirs)) => mine.merge(theirs),
        }
    }

    /// Moves up to `bytes` of this permit into a new one (fewer if this one holds fewer).
    pub fn split(&mut self, bytes: usize) -> BudgetPermit {
        let n = bytes.min(self.bytes());
        if n == 0 {
            return BudgetPermit::empty();
        }
        if n == self.bytes() {
            return std::mem::take(self);
        }
        BudgetPermit {
            permit: self.permit.as_mut().and_then(|p| p.split(n)),
        }
    }

    /// Keeps `bytes` (or what is held, if less) and releases the rest.
    pub fn shrink_to(&mut self, bytes: usize) {
        let excess = self.bytes().saturating_sub(bytes);
        drop(self.split(excess));
    }
}

/// Budget bytes paid for a call and not yet handed on, shared by the two sides of a hand-over;
/// what is left is released when both are gone.
#[derive(Debug, Clone, Default)]
pub struct Credit {
    held: Arc<Mutex<BudgetPermit>>,
}

/// A call's request messages, each paid for by the request body when its header arrived and
/// taken by the handler when it decoded the message (in the request's extensions). Kept per
/// message, in order, so the handler takes exactly what was paid whatever the message's encoding.
#[derive(Debug, Clone, Default)]
pub struct RequestCredit {
    messages: Arc<Mutex<VecDeque<BudgetPermit>>>,
}

impl RequestCredit {
    /// The payment for the next message of the call.
    pub fn push(&self, permit: BudgetPermit) {
        self.messages.lock().push_back(permit);
    }

    /// The payment for the oldest message not taken yet (the one just decoded).
    pub fn take_message(&self) -> BudgetPermit {
        self.messages.lock().pop_front().unwrap_or_default()
    }

    /// Bytes paid and not taken.
    pub fn bytes(&self) -> usize {
        self.messages.lock().iter().map(BudgetPermit::bytes).sum()
    }
}

/// A call's response bytes, paid for by the handler for each response and taken by the
/// response body for the chunk that carries it (in the request's extensions).
#[derive(Debug, Clone, Default)]
pub struct ResponseCredit(pub Credit);

impl Credit {
    /// Adds paid bytes.
    pub fn add(&self, permit: BudgetPermit) {
        self.held.lock().merge(permit);
    }

    /// Takes up to `bytes` of what was paid (a message's share).
    pub fn take(&self, bytes: usize) -> BudgetPermit {
        self.held.lock().split(bytes)
    }

    /// Bytes paid and not taken.
    pub fn bytes(&self) -> usize {
        self.held.lock().bytes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn permits_split_merge_and_release() {
        let budget = MemoryBudget::new(100);
        let mut a = budget.acquire(60).await;
        assert_eq!((a.bytes(), budget.available()), (60, 40));
        let b = a.split(25);
        assert_eq!((a.bytes(), b.bytes()), (35, 25));
        assert_eq!(a.split(0).bytes(), 0);
        a.merge(b);
        assert_eq!(a.bytes(), 60);
        a.shrink_to(10);
        assert_eq!((a.bytes(), budget.available()), (10, 90));
        let whole = a.split(1000);
        assert_eq!((a.bytes(), whole.bytes()), (0, 10));
        drop(whole);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn waits_when_spent_and_resumes_on_release() {
        let budget = MemoryBudget::new(100);
        let held = budget.acquire(80).await;
        assert!(budget.try_acquire(30).is_none());
        let waiter = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(30).await.bytes() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "waits while the budget is spent");
        drop(held);
        assert_eq!(waiter.await.unwrap(), 30);
    }

    #[tokio::test]
    async fn a_request_larger_than_the_budget_gets_the_whole_budget() {
        let budget = MemoryBudget::new(100);
        let small = budget.acquire(10).await;
        let large = tokio::spawn({
            let budget = budget.clone();
            async move { budget.acquire(1_000_000).await.bytes() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            !large.is_finished(),
            "waits for everything else to be released"
        );
        drop(small);
        assert_eq!(large.await.unwrap(), 100);
        assert_eq!(budget.available(), 100);
        assert_eq!(budget.try_acquire(0).unwrap().bytes(), 0);
    }

    #[tokio::test]
    async fn request_credit_hands_out_each_message_payment_in_order() {
        let budget = MemoryBudget::new(100);
        let credit = RequestCredit::default();
        credit.push(budget.acquire(30).await);
        credit.push(budget.acquire(20).await);
        assert_eq!(credit.bytes(), 50);
        assert_eq!(credit.take_message().bytes(), 30);
        let second = credit.take_message();
        assert_eq!((second.bytes(), credit.bytes()), (20, 0));
        assert_eq!(credit.take_message().bytes(), 0, "nothing more was paid");
        drop(second);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn credit_collects_charges_and_hands_out_shares() {
        let budget = MemoryBudget::new(100);
        let credit = Credit::default();
        credit.add(budget.acquire(30).await);
        credit.add(budget.acquire(20).await);
        let message = credit.take(45);
        assert_eq!((message.bytes(), credit.bytes()), (45, 5));
        assert_eq!(credit.take(10).bytes(), 5, "never more than was charged");
        drop(message);
        drop(credit);
        assert_eq!(budget.available(), 100);
    }
}
