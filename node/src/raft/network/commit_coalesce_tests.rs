//! Unit tests of [`super::coalesce_commits`], on Tokio's paused clock.

use futures::StreamExt;
use openraft::EntryPayload;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::*;
use crate::raft::types::{Entry, LogId, Vote};

fn log_id(index: u64) -> LogId {
    crate::raft::types::test_log_id(2, 1, index)
}

/// A request of `term`'s leader from after `prev` with entries `prev+1 ..= last` (none when
/// `last == prev`), telling the follower that `commit` is committed.
fn request(term: u64, prev: u64, last: u64, commit: u64) -> Request {
    AppendEntriesRequest {
        vote: Vote::new_committed(term, 1),
        prev_log_id: Some(log_id(prev)),
        entries: (prev + 1..=last)
            .map(|index| Entry {
                log_id: log_id(index),
                payload: EntryPayload::Blank,
            })
            .collect(),
        leader_commit: Some(log_id(commit)),
    }
}

/// (prev, last entry or prev, commit) of a request, to compare.
fn shape(request: &Request) -> (u64, u64, u64) {
    let prev = request.prev_log_id.map_or(0, |id| id.index);
    let last = request
        .entries
        .last()
        .map_or(prev, |entry| entry.log_id.index);
    (prev, last, request.leader_commit.map_or(0, |id| id.index))
}

type Sent = std::pin::Pin<Box<dyn Stream<Item = Request> + Send>>;

/// The hold of these tests: long next to Tokio's 1 ms timer granularity.
const HOLD: Duration = Duration::from_millis(30);

fn coalescer() -> (mpsc::UnboundedSender<Request>, Sent) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sent = coalesce_commits(UnboundedReceiverStream::new(rx), HOLD);
    (tx, Box::pin(sent))
}

/// What `sent` yields within `wait` (None: nothing).
async fn within(sent: &mut Sent, wait: Duration) -> Option<(u64, u64, u64)> {
    tokio::time::timeout(wait, sent.next())
        .await
        .ok()
        .flatten()
        .map(|r| shape(&r))
}

#[tokio::test(start_paused = true)]
async fn a_commit_rides_on_the_next_request_from_the_same_place() {
    let (tx, mut sent) = coalescer();
    tx.send(request(2, 0, 5, 0)).unwrap();
    assert_eq!(within(&mut sent, Duration::ZERO).await, Some((0, 5, 0)));
    // The commit-only request waits...
    tx.send(request(2, 5, 5, 5)).unwrap();
    assert_eq!(within(&mut sent, HOLD / 2).await, None);
    // ...and the next record's request carries its commit instead.
    tx.send(request(2, 5, 6, 4)).unwrap();
    assert_eq!(within(&mut sent, Duration::ZERO).await, Some((5, 6, 5)));
}

#[tokio::test(start_paused = true)]
async fn a_commit_goes_out_alone_when_nothing_follows_in_time() {
    let (tx, mut sent) = coalescer();
    tx.send(request(2, 5, 5, 5)).unwrap();
    let start = tokio::time::Instant::now();
    assert_eq!(within(&mut sent, HOLD * 2).await, Some((5, 5, 5)));
    assert_eq!(start.elapsed(), HOLD);
}

#[tokio::test(start_paused = true)]
async fn commits_in_a_row_wait_one_hold_in_all_and_keep_the_newest() {
    let (tx, mut sent) = coalescer();
    let start = tokio::time::Instant::now();
    tx.send(request(2, 5, 5, 3)).unwrap();
    // Each newer commit arrives before the hold ends; together they still wait only one hold.
    for commit in 4..=5 {
        assert_eq!(within(&mut sent, HOLD / 3).await, None);
        tx.send(request(2, 5, 5, commit)).unwrap();
    }
    assert_eq!(within(&mut sent, HOLD).await, Some((5, 5, 5)));
    assert_eq!(start.elapsed(), HOLD);
}

#[tokio::test(start_paused = true)]
async fn a_request_from_elsewhere_is_sent_after_the_held_one_unchanged() {
    let (tx, mut sent) = coalescer();
    tx.send(request(2, 5, 5, 5)).unwrap();
    // A probe further back (a conflict moved the follower's start): both go, in order.
    tx.send(request(2, 3, 4, 5)).unwrap();
    assert_eq!(within(&mut sent, Duration::ZERO).await, Some((5, 5, 5)));
    assert_eq!(within(&mut sent, Duration::ZERO).await, Some((3, 4, 5)));
    // A new leader's request never answers for the old leader's.
    tx.send(request(2, 6, 6, 6)).unwrap();
    tx.send(request(3, 6, 7, 6)).unwrap();
    assert_eq!(within(&mut sent, Duration::ZERO).await, Some((6, 6, 6)));
    let next = tokio::time::timeout(Duration::ZERO, sent.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.vote, Vote::new_committed(3, 1));
}

#[tokio::test(start_paused = true)]
async fn the_held_request_goes_out_when_the_input_ends() {
    let (tx, mut sent) = coalescer();
    tx.send(request(2, 5, 5, 5)).unwrap();
    drop(tx);
    assert_eq!(within(&mut sent, Duration::ZERO).await, Some((5, 5, 5)));
    assert_eq!(within(&mut sent, Duration::ZERO).await, None);
}
