//! The TLS accept loop. We accept TCP connections ourselves and run the handshake with the TLS
//! configuration current at that moment (so certificates can rotate at runtime), then hand the
//! TLS streams to tonic. Handshakes run concurrently and time out, so a slow or silent client
//! cannot hold up others.
//!
//! Connections are capped ([`ConnectionLimits`]):
//! - at most `max_connections` at once (TCP accepted, whatever their state). When all are taken,
//!   the loop stops accepting: new connections wait in the kernel's listen backlog (and their
//!   clients' connect timeouts apply) until one closes.
//! - at most `max_unauthenticated` of them without a verified client identity: handshakes in
//!   progress, and connections that completed the handshake without a client certificate (which
//!   may only call health and reflection). Such a connection holds its slot until it closes, and
//!   is closed `unauthenticated_timeout` after it was accepted, idle or not (keep-alive pings or
//!   an endless health `Watch` do not keep it open). A handshake must also finish within
//!   `handshake_timeout`. When all these slots are taken, a new connection evicts the oldest
//!   handshake still in progress (only when none is in progress does it wait): a client that
//!   opens connections and stays silent must open them faster than real clients complete their
//!   handshakes (milliseconds) to keep them out, instead of one per slot and timeout.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::{Connected, TcpConnectInfo, TlsConnectInfo};

use super::refuse::Refuser;
use crate::tls::ReloadingServerTls;

/// Caps on connections (see the module doc).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_unauthenticated: usize,
    pub handshake_timeout: Duration,
    pub unauthenticated_timeout: Duration,
}

/// A TLS connection ready for HTTP/2, holding its connection slot (and, without a client
/// certificate, its unauthenticated slot and deadline) until it is dropped.
pub struct Connection {
    tls: TlsStream<TcpStream>,
    _slot: OwnedSemaphorePermit,
    anonymous: Option<Anonymous>,
}

struct Anonymous {
    _slot: OwnedSemaphorePermit,
    closes: Pin<Box<Sleep>>,
}

impl Connection {
    /// Whether an anonymous connection's time is up (registers for the wake-up otherwise).
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        self.anonymous
            .as_mut()
            .is_some_and(|a| a.closes.as_mut().poll(cx).is_ready())
    }
}

fn expired_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "connection without a client certificate closed after --unauthenticated-timeout",
    )
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.tls).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.tls).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.tls).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tls.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tls).poll_shutdown(cx)
    }
}

impl Connected for Connection {
    // The same as a plain TLS stream's, so `Request::peer_certs` finds the client certificate.
    type ConnectInfo = TlsConnectInfo<TcpConnectInfo>;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.tls.connect_info()
    }
}

/// Handshakes in progress, oldest first, each with the token that evicts it.
#[derive(Default)]
struct Pending {
    handshakes: Mutex<VecDeque<(u64, CancellationToken)>>,
}

impl Pending {
    fn add(&self, id: u64) -> CancellationToken {
        let token = CancellationToken::new();
        self.handshakes.lock().push_back((id, token.clone()));
        token
    }

    fn remove(&self, id: u64) {
        self.handshakes.lock().retain(|(pending, _)| *pending != id);
    }

    /// Evicts the oldest handshake in progress; false if there is none.
    fn evict_oldest(&self) -> bool {
        match self.handshakes.lock().pop_front() {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// Takes a slot of `slots`, waiting (with a warning) when all are taken (after evicting the
/// oldest handshake in progress, if `pending` is given and has one); `None` once `stop` fires.
async fn take_slot(
    slots: &Arc<Semaphore>,
    what: &str,
    pending: Option<&Pending>,
    stop: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(slot) = Arc::clone(slots).try_acquire_owned() {
        return Some(slot);
    }
    if pending.is_some_and(Pending::evict_oldest) {
        tracing::debug!("{what} cap reached; evicted the oldest handshake in progress");
    } else {
        tracing::warn!("{what} cap reached; new connections wait until one closes");
    }
    tokio::select! {
        slot = Arc::clone(slots).acquire_owned() => Some(slot.expect("never closed")),
        _ = stop.cancelled() => None,
    }
}

/// The handshaken connections for tonic; what is left in it when tonic stops goes to the
/// [`Refuser`] ([`Handoff::close_into`]).
pub struct Handoff {
    rx: Arc<Mutex<mpsc::Receiver<Result<Connection, io::Error>>>>,
}

impl Handoff {
    /// The stream tonic serves.
    pub fn stream(&self) -> HandoffStream {
        HandoffStream {
            rx: Arc::clone(&self.rx),
        }
    }

    /// Closes the hand-off (a later connection goes to the refuser instead) and gives the
    /// connections tonic did not take to `refuser`.
    pub fn close_into(&self, refuser: &Refuser) {
        let mut rx = self.rx.lock();
        rx.close();
        while let Ok(connection) = rx.try_recv() {
            if let Ok(connection) = connection {
                refuser.serve(connection);
            }
        }
    }
}

/// [`Handoff::stream`].
pub struct HandoffStream {
    rx: Arc<Mutex<mpsc::Receiver<Result<Connection, io::Error>>>>,
}

impl futures::Stream for HandoffStream {
    type Item = Result<Connection, io::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.lock().poll_recv(cx)
    }
}

/// Accepts connections on `listener` and hands the handshaken ones to tonic through the
/// returned [`Handoff`] until `draining` fires, then to `refuser` (see
/// [`super::refuse`]) until it closes; the port closes with the loop. The loop also stops when
/// tonic stops taking connections before `draining` (it failed).
pub fn spawn_accept_loop(
    listener: TcpListener,
    tls: Arc<ReloadingServerTls>,
    limits: ConnectionLimits,
    draining: CancellationToken,
    refuser: Refuser,
) -> Handoff {
    let (tx, rx) = mpsc::channel(64);
    let rx = Arc::new(Mutex::new(rx));
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let unauthenticated = Arc::new(Semaphore::new(limits.max_unauthenticated.max(1)));
    let pending = Arc::new(Pending::default());
    tokio::spawn(async move {
        // Stops the loop when the refuser closes, or when tonic stops taking connections
        // before the node drains (it failed).
        let stop = refuser.closing().child_token();
        let stop_when_closed = {
            let (tx, stop, draining) = (tx.clone(), stop.clone(), draining.clone());
            tokio::spawn(async move {
                tokio::select! {
                    _ = tx.closed() => if !draining.is_cancelled() { stop.cancel() },
                    _ = stop.cancelled() => {}
                }
            })
        };
        for id in 0u64.. {
            let Some(slot) = take_slot(&connections, "--max-connections", None, &stop).await else {
                break;
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.cancelled() => break,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Usually EMFILE or a connection reset before accept: keep serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Unauthenticated until its handshake shows a client certificate.
            let unauthenticated_slot = take_slot(
                &unauthenticated,
                "--max-unauthenticated-connections",
                Some(&pending),
                &stop,
            );
            let Some(unauthenticated_slot) = unauthenticated_slot.await else {
                break;
            };
            let closes = Instant::now() + limits.unauthenticated_timeout;
            let _ = tcp.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            let (draining, refuser) = (draining.clone(), refuser.clone());
            let handshake_timeout = limits.handshake_timeout;
            let pending = Arc::clone(&pending);
            let evicted = pending.add(id);
            tokio::spawn(async move {
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp));
                let handshake = tokio::select! {
                    handshake = handshake => handshake,
                    _ = evicted.cancelled() => {
                        tracing::debug!(%peer, "TLS handshake evicted by a newer connection");
                        return;
                    }
                };
                pending.remove(id);
                let tls = match handshake {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                let has_identity = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|certs| !certs.is_empty());
                let anonymous = (!has_identity).then(|| Anonymous {
                    _slot: unauthenticated_slot,
                    closes: Box::pin(tokio::time::sleep_until(closes)),
                });
                let connection = Connection {
                    tls,
                    _slot: slot,
                    anonymous,
                };
                if draining.is_cancelled() {
                    refuser.serve(connection);
                } else if let Err(mpsc::error::SendError(Ok(connection))) =
                    tx.send(Ok(connection)).await
                {
                    // Tonic stopped taking connections (it drains): refuse instead of dropping.
                    refuser.serve(connection);
                }
            });
        }
        stop_when_closed.abort();
    });
    Handoff { rx }
}
