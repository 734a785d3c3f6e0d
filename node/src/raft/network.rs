//! The client half of the Raft transport: openraft's [`RaftNetworkV2`] over the internal
//! `proglog.raft.v1.Raft` gRPC service. One pooled, lazily connected channel per peer address
//! ([`ChannelPool`]), reused by every RPC (tonic multiplexes them over one HTTP/2 connection) and
//! replaced when the node's client certificates are reloaded; per-RPC timeouts from openraft;
//! errors classified so that openraft backs off from unreachable peers; snapshots
//! streamed chunk by chunk with a bounded buffer and a stall timeout. Every Raft RPC names the
//! node id it is addressed to ([`TARGET_NODE_HEADER`]), so a new incarnation at a reused address
//! refuses instead of answering for the member it replaced.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use openraft::base::{BoxFuture, BoxStream};
use openraft::error::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{Backoff, RPCOption};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, StreamAppendResult,
    TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, RPCTypes, RaftNetworkFactory, RaftNetworkV2};
use proglog_proto::proglog::raft::v1 as pb;
use proglog_proto::proglog::raft::v1::raft_client::RaftClient;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::append_split::{MAX_APPEND_MESSAGE_BYTES, encode_append_parts, merge_replies};
pub use super::channel_pool::ChannelPool;
use super::snapshot::UserLogSnapshot;
use super::types::{LogId, NodeId, SnapshotMeta, TypeConfig, UserSnapshot, Vote};

mod commit_coalesce;
mod snapshot_send;

/// gRPC metadata key carrying the node id a Raft RPC is addressed to. The receiver refuses the
/// RPC unless it is that node: a pod that lost its volume comes back at the same address under a
/// new id, and must never answer replication meant for the old member (the leader would see its
/// log go backwards).
pub const TARGET_NODE_HEADER: &str = "x-proglog-target-node-id";

/// Timeouts and limits of the node-to-node transport.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// A snapshot transfer that makes no progress for this long is abandoned (both ends).
    /// Counts only while chunks are being sent, not the receiver's install afterwards.
    pub snapshot_stall_timeout: Duration,
    /// Longest the sender waits for the receiver to install a snapshot once every chunk was
    /// sent (the receiver copies the records into its user log: minutes for many GiB).
    pub snapshot_install_timeout: Duration,
    /// Chunks of a snapshot buffered ahead of the network on the sending side.
    pub snapshot_buffer_chunks: usize,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            snapshot_stall_timeout: Duration::from_secs(30),
            snapshot_install_timeout: Duration::from_secs(600),
            snapshot_buffer_chunks: 2,
        }
    }
}

/// The fields of an AppendEntries request other than the entries.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AppendHeader {
    pub vote: Vote,
    pub prev_log_id: Option<LogId>,
    pub leader_commit: Option<LogId>,
}

/// The first chunk's header of a snapshot transfer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotHeader {
    pub vote: Vote,
    pub meta: SnapshotMeta,
    pub first_offset: u64,
    pub next_offset: u64,
}

/// openraft's network factory: one [`RaftPeer`] per target, sharing the channel pool.
#[derive(Debug, Clone)]
pub struct RaftNetwork {
    /// This node's id (the sender of every call).
    source: NodeId,
    pool: Arc<ChannelPool>,
}

impl RaftNetwork {
    /// Node `source`'s openraft network, reaching peers through the connections of `pool`.
    pub fn new(source: NodeId, pool: Arc<ChannelPool>) -> Self {
        Self { source, pool }
    }
}

impl RaftNetworkFactory<TypeConfig> for RaftNetwork {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        RaftPeer {
            source: self.source,
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
            refused_streams: 0,
        }
    }
}

/// The connection to one peer.
#[derive(Debug)]
pub struct RaftPeer {
    /// This node's id, the sender of every call (read by the test failpoints only).
    #[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
    source: NodeId,
    target: NodeId,
    addr: String,
    pool: Arc<ChannelPool>,
    /// Replication streams refused in a row when opened (see [`RaftPeer::stream_refused`]).
    refused_streams: u32,
}

impl RaftPeer {
    /// Waits before reporting that opening a replication stream failed. openraft applies its
    /// backoff while it pulls requests from the outbound stream; a peer that refuses the call
    /// before reading any (a node whose Raft core stopped, or a new incarnation at a replaced
    /// member's address) would otherwise be retried in a tight loop. Same schedule as
    /// [`RaftNetworkV2::backoff`]: 50 ms doubling to 2 s, reset by the next stream that opens.
    async fn stream_refused(&mut self) {
        let delay = Duration::from_millis(50)
            .saturating_mul(1 << self.refused_streams.min(6))
            .min(Duration::from_secs(2));
        self.refused_streams = self.refused_streams.saturating_add(1);
        tokio::time::sleep(delay).await;
    }
}

/// The RPCs whose request and response travel as JSON.
#[derive(Clone, Copy)]
enum JsonRpc {
    Vote,
    PreVote,
    TransferLeader,
}

/// Why a call failed, before it is shaped into openraft's error types.
enum CallError {
    Timeout(Duration),
    Unreachable(String),
    Network(String),
}

impl CallError {
    fn from_status(status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable | tonic::Code::Unknown => {
                CallError::Unreachable(format!("peer unreachable: {status}"))
            }
            tonic::Code::DeadlineExceeded => CallError::Network(status.to_string()),
            // The node at the peer's address is not the addressed node (a new incarnation, or
            // an older peer version): as good as unreachable until the membership changes.
            tonic::Code::FailedPrecondition => {
                CallError::Unreachable(format!("peer is not the addressed node: {status}"))
            }
            _ => CallError::Network(format!("peer refused: {status}")),
        }
    }
}

fn io_error(msg: String) -> std::io::Error {
    std::io::Error::other(msg)
}

impl RaftPeer {
    /// `message` as a request addressed to this peer's node id.
    fn addressed<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert(TARGET_NODE_HEADER, MetadataValue::from(self.target));
        request
    }

    /// The channel of every openraft call to this peer.
    fn client(&self) -> Result<RaftClient<Channel>, CallError> {
        #[cfg(feature = "failpoints")]
        if super::failpoint::raft_rpcs_dropped_from(self.source) {
            return Err(CallError::Unreachable(format!(
                "failpoint raft-rpcs-dropped-from:{}",
                self.source
            )));
        }
        self.pool
            .raft_client(&self.addr)
            .map_err(|e| CallError::Unreachable(format!("bad peer address {}: {e}", self.addr)))
    }

    async fn call<T, F>(&self, ttl: Duration, fut: F) -> Result<T, CallError>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        match tokio::time::timeout(ttl, fut).await {
            Err(_) => Err(CallError::Timeout(ttl)),
            Ok(Err(status)) => Err(CallError::from_status(status)),
            Ok(Ok(response)) => Ok(response.into_inner()),
        }
    }

    fn rpc_error(&self, action: RPCTypes, error: CallError) -> RPCError<TypeConfig> {
        match error {
            CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                action,
                id: 0,
                target: self.target,
                timeout,
            }),
            CallError::Unreachable(msg) => RPCError::Unreachable(Unreachable::new(&io_error(msg))),
            CallError::Network(msg) => RPCError::Network(NetworkError::new(&io_error(msg))),
        }
    }

    async fn json_call<Req: Serialize, Resp: serde::de::DeserializeOwned>(
        &self,
        kind: JsonRpc,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let json =
            serde_json::to_vec(request).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let message = pb::RaftMessage { json: json.into() };
        let action = match kind {
            JsonRpc::Vote | JsonRpc::PreVote => RPCTypes::Vote,
            JsonRpc::TransferLeader => RPCTypes::TransferLeader,
        };
        let mut client = self.client().map_err(|e| self.rpc_error(action, e))?;
        let ttl = option.hard_ttl();
        let reply = match kind {
            JsonRpc::Vote => self.call(ttl, client.vote(self.addressed(message))).await,
            JsonRpc::PreVote => {
                self.call(ttl, client.pre_vote(self.addressed(message)))
                    .await
            }
            JsonRpc::TransferLeader => {
                self.call(ttl, client.transfer_leader(self.addressed(message)))
                    .await
            }
        }
        .map_err(|e| self.rpc_error(action, e))?;
        serde_json::from_slice(&reply.json).map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

impl RaftNetworkV2<TypeConfig> for RaftPeer {
    type SnapshotData = UserLogSnapshot;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        let parts = encode_append_parts(&rpc, MAX_APPEND_MESSAGE_BYTES)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self
            .client()
            .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, e))?;
        // One message per run of entries; the first answer that is not a plain success is the
        // answer to the whole request (a partial success names the last entry that matched).
        let mut response = AppendEntriesResponse::Success;
        for part in parts {
            let reply = self
                .call(
                    option.hard_ttl(),
                    client.append_entries(self.addressed(part)),
                )
                .await
                .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, e))?;
            response = serde_json::from_slice(&reply.json)
                .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
            if !matches!(response, AppendEntriesResponse::Success) {
                break;
            }
        }
        Ok(response)
    }

    fn stream_append<'s, S>(
        &'s mut self,
        input: S,
        option: RPCOption,
    ) -> BoxFuture<
        's,
        Result<
            BoxStream<'s, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>,
            RPCError<TypeConfig>,
        >,
    >
    where
        S: Stream<Item = AppendEntriesRequest<TypeConfig>> + Send + Unpin + 'static,
    {
        Box::pin(async move {
            let target = self.target;
            // Each request goes out as one or more messages (see `append_split`); how many is
            // queued for the replies side, which merges their answers back into one. An entry
            // that cannot be encoded ends the outbound stream; the follower's answers then stop
            // short and openraft retries.
            let parts_per_request = Arc::new(parking_lot::Mutex::new(VecDeque::new()));
            let queued = parts_per_request.clone();
            // A commit-only request gives way to the next record's request (commit_coalesce.rs).
            let outbound = commit_coalesce::coalesce_commits(input, commit_coalesce::COMMIT_HOLD)
                .map(|rpc| encode_append_parts(&rpc, MAX_APPEND_MESSAGE_BYTES))
                .take_while(|encoded| {
                    if let Err(e) = encoded {
                        tracing::error!(error = %e, "encoding an AppendEntries request failed");
                    }
                    std::future::ready(encoded.is_ok())
                })
                .flat_map(move |encoded| {
                    let parts = encoded.unwrap_or_default();
                    queued.lock().push_back(parts.len());
                    futures::stream::iter(parts)
                });
            let mut client = self
                .client()
                .map_err(|e| self.rpc_error(RPCTypes::AppendEntries, e))?;
            // Opening the stream only waits for the follower's response headers, but they share
            // the connection with a previous attempt's data still in flight (tens of MiB when a
            // follower catches up): with openraft's per-RPC bound (about a heartbeat interval)
            // every attempt timed out behind the last one and the follower never caught up.
            let open_timeout = option.hard_ttl().max(self.pool.config().connect_timeout);
            let replies = self
                .call(open_timeout, client.stream_append(self.addressed(outbound)))
                .await;
            let replies = match replies {
                Ok(replies) => {
                    self.refused_streams = 0;
                    replies
                }
                Err(e) => {
                    self.stream_refused().await;
                    return Err(self.rpc_error(RPCTypes::AppendEntries, e));
                }
            };
            let results = replies.map(move |reply| match reply {
                Ok(reply) => serde_json::from_slice::<StreamAppendResult<TypeConfig>>(&reply.json)
                    .map_err(|e| RPCError::Network(NetworkError::new(&e))),
                Err(status) => Err(match CallError::from_status(status) {
                    CallError::Unreachable(msg) => {
                        RPCError::Unreachable(Unreachable::new(&io_error(msg)))
                    }
                    CallError::Network(msg) => RPCError::Network(NetworkError::new(&io_error(msg))),
                    CallError::Timeout(timeout) => RPCError::Timeout(Timeout {
                        action: RPCTypes::AppendEntries,
                        id: 0u64,
                        target,
                        timeout,
                    }),
                }),
            });
            // Replies to parts after a failed one (if the follower sends any: openraft's ends
            // its reply stream at a conflict) belong to no request and are skipped.
            let merged = futures::stream::unfold(
                (Box::pin(results), parts_per_request, 0usize),
                |(mut results, parts_per_request, mut skip)| async move {
                    let mut merged = loop {
                        let reply = results.next().await?;
                        if skip == 0 {
                            break reply;
                        }
                        skip -= 1;
                    };
                    // The reply came after its request's parts were queued, so its count is.
                    let parts = parts_per_request.lock().pop_front().unwrap_or(1);
                    for answered in 1..parts {
                        // A conflict or a higher vote answers the whole request.
                        if !matches!(merged, Ok(Ok(_))) {
                            skip = parts - answered;
                            break;
                        }
                        merged = match results.next().await {
                            Some(Ok(next)) => merged.map(|so_far| merge_replies(so_far, next)),
                            Some(Err(e)) => Err(e),
                            None => Err(RPCError::Network(NetworkError::new(&io_error(
                                "the follower's replies ended within a split request".into(),
                            )))),
                        };
                    }
                    Some((merged, (results, parts_per_request, skip)))
                },
            );
            Ok(Box::pin(merged) as BoxStream<'s, _>)
        })
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.json_call(JsonRpc::Vote, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.json_call(JsonRpc::PreVote, &rpc, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.json_call(JsonRpc::TransferLeader, &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: UserSnapshot,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        self.send_snapshot(vote, snapshot, cancel).await
    }

    fn backoff(&self) -> Option<Backoff> {
        // Exponential from 50 ms to 2 s: an unreachable peer is retried soon, then rarely.
        let mut delay = Duration::from_millis(50);
        Some(Backoff::new(std::iter::from_fn(move || {
            let current = delay;
            delay = (delay * 2).min(Duration::from_secs(2));
            Some(current)
        })))
    }
}
