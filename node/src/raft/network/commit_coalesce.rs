//! Entry-less AppendEntries requests of a replication stream, held back briefly so that the
//! request right behind them carries their news.
//!
//! Why: once the leader commits, openraft sends every follower at once a request with no
//! entries that only moves the follower's commit index, unless a request with entries already
//! carried it. With one client waiting for each acknowledgement that is every record: each
//! follower gets two requests and sends two answers per record, and each costs an encryption, an
//! HTTP/2 frame, a pass through both Raft cores and a few thread wake-ups, on machines whose CPUs
//! are also running the critical path of the next record. The next record's request usually
//! follows within a fraction of a millisecond, starts where the entry-less one does and reads
//! the commit index when it is built, so it would tell the follower the same thing.
//!
//! So an entry-less request waits up to [`COMMIT_HOLD`] for the next one. If that one starts at
//! the same place (same vote, same `prev_log_id`), only it is sent, with the newer of the two
//! commit indexes; otherwise, or when the wait ends, the held one goes out as it was.
//!
//! Why this is safe: openraft does not pair answers with requests. It drains its queue of
//! requests in flight up to the log id an answer says the follower matches, and an answer to the
//! request sent in place of the held one matches at least where the held one would have (both
//! start at the same `prev_log_id`). The send time openraft credits for the follower's lease is
//! the drained request's own, which for the request sent is when it was built; a held request
//! that goes out late is credited with the earlier time it was built, which under-claims. The
//! cost is that a follower learns a commit up to [`COMMIT_HOLD`] later when no record follows:
//! it serves records to readers that much later, and nothing waits on that for durability.
//! openraft's heartbeats are streams of one request: it goes out as soon as its stream ends.

use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::raft::AppendEntriesRequest;

use crate::raft::types::TypeConfig;

/// Longest an entry-less request waits for a request to carry its commit index instead.
pub const COMMIT_HOLD: Duration = Duration::from_millis(2);

type Request = AppendEntriesRequest<TypeConfig>;

/// The requests of `input`, with each entry-less request replaced by the next request when that
/// one follows within `hold` and starts at the same place (see the module doc).
pub fn coalesce_commits<S>(input: S, hold: Duration) -> impl Stream<Item = Request> + Send
where
    S: Stream<Item = Request> + Send + Unpin + 'static,
{
    let state = State {
        input,
        hold,
        held: None,
        next: None,
        ended: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        let request = state.next_to_send().await?;
        Some((request, state))
    })
}

struct State<S> {
    input: S,
    hold: Duration,
    /// An entry-less request waiting for a successor.
    held: Option<Held>,
    /// A request to send after the held one went out (it did not start at the same place).
    next: Option<Request>,
    ended: bool,
}

struct Held {
    request: Request,
    /// When the first of the requests merged into this one started waiting, plus the hold: a
    /// run of entry-less requests waits no longer than one would.
    until: tokio::time::Instant,
}

impl<S: Stream<Item = Request> + Unpin> State<S> {
    async fn next_to_send(&mut self) -> Option<Request> {
        if let Some(request) = self.next.take() {
            return Some(request);
        }
        loop {
            if self.ended {
                return self.release();
            }
            let arrived = match &self.held {
                None => self.input.next().await,
                Some(held) => match tokio::time::timeout_at(held.until, self.input.next()).await {
                    Ok(arrived) => arrived,
                    // Nothing followed in time: the held request goes out as it was.
                    Err(_) => return self.release(),
                },
            };
            let Some(mut request) = arrived else {
                self.ended = true;
                continue;
            };
            let mut until = None;
            if let Some(held) = self.held.take() {
                if !same_place(&held.request, &request) {
                    if request.entries.is_empty() {
                        self.hold(request, None);
                    } else {
                        self.next = Some(request);
                    }
                    return Some(held.request);
                }
                request.leader_commit = request.leader_commit.max(held.request.leader_commit);
                until = Some(held.until);
            }
            if request.entries.is_empty() {
                self.hold(request, until);
                continue;
            }
            return Some(request);
        }
    }

    /// Holds the entry-less `request` until `until`, or for the hold from now.
    fn hold(&mut self, request: Request, until: Option<tokio::time::Instant>) {
        let until = until.unwrap_or_else(|| tokio::time::Instant::now() + self.hold);
        self.held = Some(Held { request, until });
    }

    /// The held request, to be sent now.
    fn release(&mut self) -> Option<Request> {
        self.held.take().map(|held| held.request)
    }
}

/// Whether an answer to `later` says all an answer to `held` would: same leader, same start.
fn same_place(held: &Request, later: &Request) -> bool {
    held.vote == later.vote && held.prev_log_id == later.prev_log_id
}

#[cfg(test)]
#[path = "commit_coalesce_tests.rs"]
mod tests;
