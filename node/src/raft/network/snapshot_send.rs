//! The sending half of a snapshot transfer ([`RaftPeer::send_snapshot`], openraft's
//! `full_snapshot`): the user-log records of the snapshot are read chunk by chunk on a blocking
//! thread into a bounded channel (at most `snapshot_buffer_chunks` chunks in memory) and streamed
//! to the follower's `InstallSnapshot`; a watchdog abandons a transfer that makes no progress
//! for the stall timeout while chunks are sent, or for the install timeout once all were sent
//! (the receiver is then installing).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use openraft::RPCTypes;
use openraft::error::{NetworkError, ReplicationClosed, StreamingError, Timeout, Unreachable};
use openraft::raft::SnapshotResponse;
use proglog_proto::proglog::raft::v1 as pb;

use super::{CallError, RaftPeer, SnapshotHeader, io_error};
use crate::raft::error::RaftStoreError;
use crate::raft::types::{TypeConfig, UserSnapshot, Vote};

impl RaftPeer {
    /// Streams `snapshot` to this peer until it answers, `cancel` fires or the transfer stalls.
    pub(super) async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: UserSnapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        let stall_timeout = self.pool.config().snapshot_stall_timeout;
        let install_timeout = self.pool.config().snapshot_install_timeout;
        let network_err = |msg: String| StreamingError::Network(NetworkError::new(&io_error(msg)));
        let header = SnapshotHeader {
            vote,
            meta: snapshot.meta.clone(),
            first_offset: snapshot.snapshot.first_offset,
            next_offset: snapshot.snapshot.next_offset,
        };
        let header = serde_json::to_vec(&header).map_err(|e| network_err(e.to_string()))?;
        let (tx, rx) = tokio::sync::mpsc::channel(self.pool.config().snapshot_buffer_chunks.max(1));
        let data = snapshot.snapshot;
        // Reads the user log chunk by chunk; blocks when the network is slower than the disk, so
        // at most `snapshot_buffer_chunks` chunks are ever held in memory.
        let producer = tokio::task::spawn_blocking(move || {
            let mut header = Some(header);
            data.for_each_chunk(data.first_offset, |records| {
                let chunk = pb::SnapshotChunk {
                    header: header.take().unwrap_or_default().into(),
                    records,
                };
                tx.blocking_send(chunk)
                    .map_err(|_| RaftStoreError::Task("snapshot transfer aborted".into()))
            })?;
            if let Some(header) = header {
                // An empty snapshot still sends its metadata.
                tx.blocking_send(pb::SnapshotChunk {
                    header: header.into(),
                    records: Vec::new(),
                })
                .map_err(|_| RaftStoreError::Task("snapshot transfer aborted".into()))?;
            }
            Ok::<(), RaftStoreError>(())
        });
        // When the last chunk was taken by the transport (milliseconds since `started`), and
        // whether the stream has ended: from then on the receiver is installing, which is not
        // a stall, and gets its own, longer deadline.
        let progress = Arc::new(AtomicU64::new(0));
        let sent_all = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let started = Instant::now();
        let progress_in_stream = progress.clone();
        let end_in_stream = (progress.clone(), sent_all.clone());
        let end_of_chunks = futures::stream::once(async move {
            let (progress, sent_all) = end_in_stream;
            progress.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
            sent_all.store(true, Ordering::Release);
        })
        .filter_map(|()| std::future::ready(None::<pb::SnapshotChunk>));
        let outbound = tokio_stream::wrappers::ReceiverStream::new(rx)
            .map(move |chunk| {
                progress_in_stream.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                chunk
            })
            .chain(end_of_chunks);
        let mut client = self
            .client()
            .map_err(|_| network_err(format!("bad peer address {}", self.addr)))?;
        let call = client.install_snapshot(self.addressed(outbound));
        tokio::pin!(call);
        tokio::pin!(cancel);
        let mut watchdog = tokio::time::interval(Duration::from_millis(500));
        let reply = loop {
            tokio::select! {
                reply = &mut call => break reply,
                closed = &mut cancel => {
                    producer.abort();
                    return Err(StreamingError::Closed(closed));
                }
                _ = watchdog.tick() => {
                    let last = Duration::from_millis(progress.load(Ordering::Relaxed));
                    let timeout = if sent_all.load(Ordering::Acquire) {
                        install_timeout
                    } else {
                        stall_timeout
                    };
                    if started.elapsed().saturating_sub(last) > timeout {
                        producer.abort();
                        return Err(StreamingError::Timeout(Timeout {
                            action: RPCTypes::InstallSnapshot,
                            id: 0,
                            target: self.target,
                            timeout,
                        }));
                    }
                }
            }
        };
        let reply = reply.map_err(|status| match CallError::from_status(status) {
            CallError::Unreachable(msg) => {
                StreamingError::Unreachable(Unreachable::new(&io_error(msg)))
            }
            CallError::Network(msg) => network_err(msg),
            CallError::Timeout(t) => network_err(format!("timed out after {t:?}")),
        })?;
        match producer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(network_err(format!("reading the snapshot: {e}"))),
            Err(e) => return Err(network_err(format!("snapshot reader failed: {e}"))),
        }
        serde_json::from_slice(&reply.into_inner().json).map_err(|e| network_err(e.to_string()))
    }
}
