//! The memory budget at the edge of the `log.v1.Log` service: [`Budgeted`] wraps it and gives
//! every call a [`RequestCredit`] and a [`ResponseCredit`] (in the request's extensions).
//!
//! - **Requests** ([`ChargedBody`]): the body follows gRPC's framing (a 5-byte header with the
//!   message length, then the message). When a header is complete, the whole message is paid for
//!   before any byte of it goes on to tonic; the data before the header (the end of the previous
//!   message) goes on first, so a call waiting for budget holds no incomplete message. While it
//!   waits, tonic stops reading the call, hyper stops returning flow-control window, and the
//!   client stops once the stream's window is used. A header announcing more than the decoding
//!   limit is not paid for: tonic refuses that message. Payments queue per message in the
//!   call's [`RequestCredit`], in order, for the handler to take as it decodes them.
//! - **Stalled requests**: a paid message must then arrive. The time the body spends waiting
//!   for the client to send the rest of it (not the time the node itself does not read) may add
//!   up to `message_timeout`; past it the call fails with `DEADLINE_EXCEEDED` and its payment is
//!   released. Otherwise a client that announces large messages and stops sending would hold
//!   the budget for good, and every other call of the node would wait behind it.
//! - **Responses** ([`PaidBody`]): each chunk tonic encoded takes its size from the call's
//!   response credit, where the handler put the responses' permits, and carries it
//!   ([`Bytes::from_owner`]): the bytes are released when HTTP/2 has written the chunk and
//!   dropped it, whether that is at once or when a slow client finally reads.
//!
//! Only the client API is wrapped: Raft and admin traffic has bounds of its own (entry and
//! snapshot chunk sizes) and must not wait behind clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;
use tokio::time::{Instant, Sleep};
use tonic::Status;
use tonic::server::NamedService;

use super::budget::{BudgetPermit, Credit, MemoryBudget, RequestCredit, ResponseCredit};

/// gRPC's frame header: a compression flag and the message length (big-endian `u32`).
const HEADER: usize = 5;

/// A gRPC service whose request and response bytes are paid for from a [`MemoryBudget`].
#[derive(Debug, Clone)]
pub struct Budgeted<S> {
    inner: S,
    budget: MemoryBudget,
    /// Messages announced larger than this are not paid for (tonic refuses them).
    max_message_bytes: usize,
    /// How long a paid message's client may keep the node waiting for the rest of it.
    message_timeout: Duration,
}

impl<S> Budgeted<S> {
    pub fn new(
        inner: S,
        budget: MemoryBudget,
        max_message_bytes: usize,
        message_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            budget,
            max_message_bytes,
            message_timeout,
        }
    }
}

impl<S: NamedService> NamedService for Budgeted<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> tower::Service<http::Request<tonic::body::Body>> for Budgeted<S>
where
    S: tower::Service<http::Request<ChargedBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let (requests, responses) = (RequestCredit::default(), Credit::default());
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(requests.clone());
        parts.extensions.insert(ResponseCredit(responses.clone()));
        let body = ChargedBody::new(
            body,
            self.budget.clone(),
            self.max_message_bytes,
            self.message_timeout,
            requests,
        );
        let response = self.inner.call(http::Request::from_parts(parts, body));
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|inner| {
                tonic::body::Body::new(PaidBody {
                    inner,
                    credit: responses,
                })
            }))
        })
    }
}

/// A request body whose messages are paid for before they are handed on (see the module doc).
pub struct ChargedBody {
    inner: tonic::body::Body,
    budget: MemoryBudget,
    max_message_bytes: usize,
    message_timeout: Duration,
    credit: RequestCredit,
    /// The bytes seen so far of a message header (fewer than [`HEADER`]).
    header: Vec<u8>,
    /// Bytes of the current message not seen yet.
    message_left: usize,
    /// Data of a frame not handed on yet: it starts inside a message being paid for.
    rest: Option<Bytes>,
    /// The payment for the message `rest` belongs to.
    waiting: Option<BoxFuture<'static, BudgetPermit>>,
    /// The paid message being received, whose client the body may wait for only so long.
    stall: Option<StallClock>,
    /// Set once the call failed: the body ends.
    failed: bool,
}

/// The time a body has spent waiting for the client to send the rest of a paid message.
///
/// A wait runs from the poll that found no data to the moment the inner body signalled data
/// (its wake-up, recorded by [`WakeTime`]), not to the next poll: when the handler does not read
/// for a while (a `ProduceStream` whose window is full), that time is the node's, not the
/// client's.
struct StallClock {
    /// The message's announced length.
    announced: usize,
    timeout: Duration,
    /// Waiting time of earlier waits for this message.
    waited: Duration,
    /// The current wait: since when, and when it runs out.
    wait: Option<(Instant, Pin<Box<Sleep>>)>,
    /// The waker the inner body was last polled with.
    woken: Option<Arc<WakeTime>>,
}

/// A waker that records when it was woken, then wakes the task.
struct WakeTime {
    task: Waker,
    at: Mutex<Option<Instant>>,
}

impl Wake for WakeTime {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.at.lock().get_or_insert_with(Instant::now);
        self.task.wake_by_ref();
    }
}

impl StallClock {
    /// Polls the inner body, timing how long the client keeps it waiting.
    fn poll_client(
        &mut self,
        inner: &mut tonic::body::Body,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let woken = Arc::new(WakeTime {
            task: cx.waker().clone(),
            at: Mutex::new(None),
        });
        let waker = Waker::from(Arc::clone(&woken));
        let polled = Pin::new(inner).poll_frame(&mut Context::from_waker(&waker));
        let previous = self.woken.replace(woken);
        if polled.is_ready()
            && let Some((since, _)) = self.wait.take()
        {
            // The wait ended when the data was signalled, or now if that was not seen.
            let signalled = previous
                .and_then(|w| *w.at.lock())
                .unwrap_or_else(Instant::now);
            self.waited += signalled.saturating_duration_since(since);
        }
        polled
    }

    /// The body waits for the client: whether its time for this message is up (registers for
    /// the wake-up otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let left = self.timeout.saturating_sub(self.waited);
        if left.is_zero() {
            return true;
        }
        let (_, sleep) = self
            .wait
            .get_or_insert_with(|| (Instant::now(), Box::pin(tokio::time::sleep(left))));
        sleep.as_mut().poll(cx).is_ready()
    }
}

impl std::fmt::Debug for ChargedBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChargedBody")
            .field("credit", &self.credit.bytes())
            .field("waiting", &self.waiting.is_some())
            .finish()
    }
}

impl ChargedBody {
    fn new(
        inner: tonic::body::Body,
        budget: MemoryBudget,
        max_message_bytes: usize,
        message_timeout: Duration,
        credit: RequestCredit,
    ) -> Self {
        Self {
            inner,
            budget,
            max_message_bytes,
            message_timeout,
            credit,
            header: Vec::with_capacity(HEADER),
            message_left: 0,
            rest: None,
            waiting: None,
            stall: None,
            failed: false,
        }
    }

    /// Polls the client's body, on the stall clock while a paid message is incomplete.
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        match &mut self.stall {
            Some(stall) => stall.poll_client(&mut self.inner, cx),
            None => Pin::new(&mut self.inner).poll_frame(cx),
        }
    }

    /// The status of a call whose client stalled in the middle of a paid message.
    fn stalled_status(&self, stall: &StallClock) -> Status {
        Status::deadline_exceeded(format!(
            "a request message announced {} bytes and {} of them are still missing after \
             {:?} of waiting for the client (--message-timeout); the call is closed to release \
             the memory reserved for it",
            stall.announced, self.message_left, stall.timeout
        ))
    }

    /// Walks `data` through gRPC's framing. Returns the part to hand on now; when a message
    /// header completes inside it, the data after the header is kept in `rest` and the
    /// message's payment started.
    fn split_at_message(&mut self, mut data: Bytes) -> Bytes {
        let mut at = 0;
        while at < data.len() {
            if self.message_left > 0 {
                let n = self.message_left.min(data.len() - at);
                self.message_left -= n;
                at += n;
                if self.message_left == 0 {
                    self.stall = None;
                }
                continue;
            }
            let n = (HEADER - self.header.len()).min(data.len() - at);
            self.header.extend_from_slice(&data[at..at + n]);
            at += n;
            if self.header.len() == HEADER {
                let len = u32::from_be_bytes(self.header[1..].try_into().expect("4 bytes"));
                self.header.clear();
                self.message_left = len as usize;
                let cost = if self.message_left > self.max_message_bytes {
                    0
                } else {
                    HEADER + self.message_left
                };
                // Only a paid message holds budget that a stalled client could keep.
                self.stall = (cost > 0 && self.message_left > 0).then(|| StallClock {
                    announced: self.message_left,
                    timeout: self.message_timeout,
                    waited: Duration::ZERO,
                    wait: None,
                    woken: None,
                });
                if let Some(permit) = self.budget.try_acquire(cost) {
                    self.credit.push(permit);
                    continue;
                }
                let budget = self.budget.clone();
                self.waiting = Some(Box::pin(async move { budget.acquire(cost).await }));
                if at < data.len() {
                    self.rest = Some(data.split_off(at));
                }
                return data;
            }
        }
        data
    }
}

impl HttpBody for ChargedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        if this.failed {
            return Poll::Ready(None);
        }
        loop {
            if let Some(wait) = &mut this.waiting {
                let permit = ready!(wait.as_mut().poll(cx));
                this.credit.push(permit);
                this.waiting = None;
            }
            let data = match this.rest.take() {
                Some(rest) => rest,
                None => match this.poll_inner(cx) {
                    Poll::Pending => {
                        if let Some(mut stall) = this.stall.take() {
                            if stall.expired(cx) {
                                this.failed = true;
                                return Poll::Ready(Some(Err(this.stalled_status(&stall))));
                            }
                            this.stall = Some(stall);
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                        Ok(data) => data,
                        Err(other) => return Poll::Ready(Some(Ok(other))),
                    },
                    Poll::Ready(other) => return Poll::Ready(other),
                },
            };
            let now = this.split_at_message(data);
            if !now.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(now))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.rest.is_none() && self.waiting.is_none() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.rest, &self.waiting) {
            (None, None) => self.inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}

/// Encoded response bytes and the budget they hold until HTTP/2 drops them.
struct Paid {
    bytes: Bytes,
    _permit: BudgetPermit,
}

impl AsRef<[u8]> for Paid {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}

/// A response body whose chunks carry the budget paid for them (see the module doc).
struct PaidBody {
    inner: tonic::body::Body,
    credit: Credit,
}

impl HttpBody for PaidBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            other => return Poll::Ready(other),
        };
        let frame = frame.map_data(|bytes| {
            let permit = this.credit.take(bytes.len());
            if permit.bytes() == 0 {
                bytes
            } else {
                Bytes::from_owner(Paid {
                    bytes,
                    _permit: permit,
                })
            }
        });
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
#[path = "charged_body_tests.rs"]
mod tests;
