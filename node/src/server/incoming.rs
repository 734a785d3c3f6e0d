//! The TLS accept loop. We accept TCP connections ourselves and run the handshake with the TLS
//! configuration current at that moment (so certificates can rotate at runtime), then hand the
//! TLS streams to tonic. Handshakes run concurrently and time out, so a slow or silent client
//! cannot hold up others.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::tls::ReloadingServerTls;

/// A TLS connection ready for HTTP/2.
pub type TlsConnection = TlsStream<TcpStream>;

/// Accepts connections on `listener` until `shutdown` fires, sending handshaken streams to the
/// returned channel. Dropping the receiver also stops the loop.
pub fn spawn_accept_loop(
    listener: TcpListener,
    tls: Arc<ReloadingServerTls>,
    handshake_timeout: Duration,
    shutdown: CancellationToken,
) -> mpsc::Receiver<Result<TlsConnection, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = shutdown.cancelled() => return,
                _ = tx.closed() => return,
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
            let _ = tcp.set_nodelay(true);
            let acceptor = tls.acceptor();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                    }
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    rx
}
