//! The server half of the Raft transport: the `proglog.raft.v1.Raft` gRPC service, callable only
//! by identities with the ACL action `replicate`. It hands openraft's RPCs to the local [`Raft`](super::types::Raft),
//! receives snapshots into a staging log on disk chunk by chunk (never whole in memory; a stalled
//! sender is dropped after a timeout) and executes produces, linearizable reads and admin
//! membership changes forwarded by followers, and answers a leader confirming its leadership for
//! a linearizable read (its current vote). Raft RPCs addressed (by [`TARGET_NODE_HEADER`]) to
//! another node id than this node's are refused.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use proglog_log::{Log, LogConfig};
use proglog_proto::proglog::raft::v1 as pb;
use proglog_proto::proglog::raft::v1::raft_server;
use serde::Serialize;
use tonic::{Request, Response, Status, Streaming};

use super::codec;
use super::membership;
use super::network::{AppendHeader, SnapshotHeader, TARGET_NODE_HEADER};
use super::node::RaftNode;
use super::snapshot::{StagingDir, UserLogSnapshot};
use super::types::{TypeConfig, UserSnapshot};
use super::user_log::committed_records_config;
use crate::acl::Action;
use crate::server::auth::Authorizer;
use crate::server::status::backend_status;

/// The `proglog.raft.v1.Raft` service of one node.
#[derive(Debug, Clone)]
pub struct RaftService {
    node: Arc<RaftNode>,
    authorizer: Authorizer,
    staging_root: PathBuf,
    stall_timeout: Duration,
    /// Ends open replication streams when the server stops: otherwise the leader keeps its
    /// stream open and the server's graceful shutdown waits for it for the whole grace period.
    stop_streams: tokio_util::sync::CancellationToken,
}

static STAGING_SEQ: AtomicU64 = AtomicU64::new(0);

impl RaftService {
    /// The service peers call on `node`; only node certificates pass `authorizer`.
    pub fn new(node: Arc<RaftNode>, authorizer: Authorizer) -> Self {
        let staging_root = node.snapshot_staging_dir();
        let stall_timeout = node.network_config().snapshot_stall_timeout;
        Self {
            node,
            authorizer,
            staging_root,
            stall_timeout,
            stop_streams: tokio_util::sync::CancellationToken::new(),
        }
    }

    /// Ends this service's replication streams when `token` fires (the server's shutdown).
    pub fn stop_streams_on(mut self, token: tokio_util::sync::CancellationToken) -> Self {
        self.stop_streams = token;
        self
    }

    /// The tonic server wrapper, with message limits large enough for batched entries.
    pub fn into_server(self) -> raft_server::RaftServer<Self> {
        raft_server::RaftServer::new(self)
            .max_decoding_message_size(codec::MAX_RAFT_MESSAGE_BYTES)
            .max_encoding_message_size(codec::MAX_RAFT_MESSAGE_BYTES)
    }

    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.authorizer
            .authorize(request, Action::Replicate)
            .map(|_| ())
    }

    /// [`check`](Self::check), then refuses an openraft RPC that is not addressed to this node's
    /// id: after a volume loss a new incarnation listens at the old member's address, and
    /// answering the leader on that member's behalf would show it a log that went backwards.
    fn check_raft<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.check(request)?;
        // Once the core stopped, every call into openraft fails and logs an error: with the
        // leader's heartbeats that was a line every 100 ms. The node is exiting; say so here.
        if let Some(failure) = self.node.core().failure() {
            return Err(fatal_status(failure.cause));
        }
        let this = self.node.node_id();
        let target = request.metadata().get(TARGET_NODE_HEADER).ok_or_else(|| {
            Status::failed_precondition(format!(
                "raft rpc carries no {TARGET_NODE_HEADER} header; this is node {this}"
            ))
        })?;
        let target: u64 = target
            .to_str()
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| {
                Status::invalid_argument(format!("{TARGET_NODE_HEADER} is not a node id"))
            })?;
        if target != this {
            self.node.count_misaddressed_rpc();
            tracing::warn!(
                target_node = target,
                node = this,
                "refused a raft rpc addressed to another node id (a replaced member?)"
            );
            return Err(Status::failed_precondition(format!(
                "raft rpc addressed to node {target} but this is node {this}"
            )));
        }
        Ok(())
    }
}

fn json_reply<T: Serialize>(value: &T) -> Result<Response<pb::RaftReply>, Status> {
    let json = serde_json::to_vec(value).map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(pb::RaftReply { json: json.into() }))
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(bytes)
        .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn fatal_status(e: impl std::fmt::Display) -> Status {
    Status::unavailable(format!("raft is not running on this node: {e}"))
}

/// An AppendEntries request from its wire form.
fn decode_append(
    request: &pb::AppendEntriesRequest,
) -> Result<AppendEntriesRequest<TypeConfig>, Status> {
    let header: AppendHeader = parse(&request.header)?;
    let mut entries = Vec::with_capacity(request.entries.len());
    for bytes in &request.entries {
        entries.push(
            codec::decode_entry(bytes)
                .map_err(|e| Status::invalid_argument(format!("bad raft entry: {e}")))?,
        );
    }
    Ok(AppendEntriesRequest {
        vote: header.vote,
        prev_log_id: header.prev_log_id,
        entries,
        leader_commit: header.leader_commit,
    })
}

/// The next chunk of a snapshot transfer, or an error if the sender stalls.
async fn next_chunk(
    stream: &mut Streaming<pb::SnapshotChunk>,
    timeout: Duration,
) -> Result<Option<pb::SnapshotChunk>, Status> {
    match tokio::time::timeout(timeout, stream.message()).await {
        Err(_) => Err(Status::deadline_exceeded(format!(
            "snapshot transfer stalled for {timeout:?}"
        ))),
        Ok(result) => result,
    }
}

#[tonic::async_trait]
impl raft_server::Raft for RaftService {
    async fn append_entries(
        &self,
        request: Request<pb::AppendEntriesRequest>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        self.check_raft(&request)?;
        let rpc = decode_append(&request.into_inner())?;
        let response = self
            .node
            .raft()
            .append_entries(rpc)
            .await
            .map_err(fatal_status)?;
        self.node.heard_from_leader();
        json_reply(&response)
    }

    type StreamAppendStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::RaftReply, Status>> + Send + 'static>,
    >;

    async fn stream_append(
        &self,
        request: Request<Streaming<pb::AppendEntriesRequest>>,
    ) -> Result<Response<Self::StreamAppendStream>, Status> {
        self.check_raft(&request)?;
        // A request that fails to arrive or decode ends the input; openraft then answers what it
        // received and the leader retries from there.
        let input = request
            .into_inner()
            .map(|item| {
                item.map_err(|e| e.to_string())
                    .and_then(|r| decode_append(&r).map_err(|e| e.to_string()))
            })
            .take_while(|decoded| {
                if let Err(e) = decoded {
                    tracing::warn!(error = %e, "replication stream ended");
                }
                std::future::ready(decoded.is_ok())
            })
            .filter_map(|decoded| std::future::ready(decoded.ok()))
            // The input must end too: openraft reads it in a task of its own that only notices
            // the reply stream is gone when the next request arrives, and an idle leader sends
            // none, so the request stream (and the server's graceful shutdown) stayed open.
            .take_until(self.stop_streams.clone().cancelled_owned());
        let node = self.node.clone();
        let replies = self
            .node
            .raft()
            .stream_append(input)
            .map(move |result| match result {
                Ok(result) => {
                    node.heard_from_leader();
                    serde_json::to_vec(&result)
                        .map(|json| pb::RaftReply { json: json.into() })
                        .map_err(|e| Status::internal(e.to_string()))
                }
                Err(fatal) => Err(fatal_status(fatal)),
            })
            // Ending the reply stream ends the call (the leader reopens it on another
            // connection, which this stopping server no longer accepts).
            .take_until(self.stop_streams.clone().cancelled_owned());
        Ok(Response::new(Box::pin(replies)))
    }

    async fn vote(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        self.check_raft(&request)?;
        let rpc: VoteRequest<TypeConfig> = parse(&request.into_inner().json)?;
        json_reply(&self.node.raft().vote(rpc).await.map_err(fatal_status)?)
    }

    async fn pre_vote(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        self.check_raft(&request)?;
        let rpc: VoteRequest<TypeConfig> = parse(&request.into_inner().json)?;
        json_reply(&self.node.raft().pre_vote(rpc).await.map_err(fatal_status)?)
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::RaftMessage>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        self.check_raft(&request)?;
        let rpc: TransferLeaderRequest<TypeConfig> = parse(&request.into_inner().json)?;
        json_reply(
            &self
                .node
                .raft()
                .handle_transfer_leader(rpc)
                .await
                .map_err(fatal_status)?,
        )
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftReply>, Status> {
        self.check_raft(&request)?;
        let mut stream = request.into_inner();
        let first = next_chunk(&mut stream, self.stall_timeout)
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let header: SnapshotHeader = parse(&first.header)?;
        if header.next_offset < header.first_offset {
            return Err(Status::invalid_argument("snapshot range is inverted"));
        }
        let dir = self.staging_root.join(format!(
            "incoming-{}-{}",
            std::process::id(),
            STAGING_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let staging = Arc::new(StagingDir(dir.clone()));
        let config = LogConfig {
            initial_offset: header.first_offset,
            ..committed_records_config(self.node.user_log_config())
        };
        // Opening creates files and fsyncs the directory: not on an async worker thread.
        let open_dir = dir.clone();
        let log = Arc::new(
            tokio::task::spawn_blocking(move || Log::open(&open_dir, config))
                .await
                .map_err(|e| Status::internal(format!("snapshot staging: {e}")))?
                .map_err(|e| Status::internal(format!("snapshot staging: {e}")))?,
        );
        let mut received = 0u64;
        let mut chunk = Some(first);
        while let Some(current) = chunk.take() {
            if !current.records.is_empty() {
                received += current.records.len() as u64;
                if received > header.next_offset - header.first_offset {
                    return Err(Status::invalid_argument(
                        "snapshot has more records than announced",
                    ));
                }
                let log = log.clone();
                let records: Vec<Bytes> = current.records;
                tokio::task::spawn_blocking(move || log.append_batch(&records))
                    .await
                    .map_err(|e| Status::internal(e.to_string()))?
                    .map_err(|e| Status::internal(format!("snapshot staging: {e}")))?;
            }
            chunk = next_chunk(&mut stream, self.stall_timeout).await?;
        }
        if received != header.next_offset - header.first_offset {
            return Err(Status::invalid_argument(format!(
                "snapshot announced {} records but carried {received}",
                header.next_offset - header.first_offset
            )));
        }
        let snapshot = UserSnapshot {
            meta: header.meta,
            snapshot: UserLogSnapshot {
                log,
                first_offset: header.first_offset,
                next_offset: header.next_offset,
                staging: Some(staging),
            },
        };
        let response = self
            .node
            .raft()
            .install_full_snapshot(header.vote, snapshot)
            .await
            .map_err(fatal_status)?;
        self.node.heard_from_leader();
        json_reply(&response)
    }

    async fn forward_produce(
        &self,
        request: Request<pb::ForwardProduceRequest>,
    ) -> Result<Response<pb::ForwardProduceResponse>, Status> {
        // Addressed to "the leader", not to a node id: a node that is not the leader refuses.
        self.check(&request)?;
        let records = request.into_inner().records;
        // The proposing node checks the entry size (a follower of another version may not have).
        codec::check_proposal_size(&records).map_err(|e| backend_status(&e))?;
        // Only the leader executes forwarded produces: a second hop could loop during elections.
        let appended = self
            .node
            .propose_local(records)
            .await
            .map_err(|e| backend_status(&e))?;
        Ok(Response::new(pb::ForwardProduceResponse {
            first_offset: appended.first_offset,
            count: appended.count,
        }))
    }
    async fn forward_linearizable_bounds(
        &self,
        request: Request<pb::ForwardLinearizableBoundsRequest>,
    ) -> Result<Response<pb::ForwardLinearizableBoundsResponse>, Status> {
        // Like forward_produce: addressed to "the leader"; only a leader answers (no second hop).
        self.check(&request)?;
        let bounds = self
            .node
            .linearizable_bounds_local()
            .await
            .map_err(|e| backend_status(&e))?;
        Ok(Response::new(pb::ForwardLinearizableBoundsResponse {
            lowest_offset: bounds.lowest,
            next_offset: bounds.next,
        }))
    }

    async fn confirm_leader(
        &self,
        request: Request<pb::ConfirmLeaderRequest>,
    ) -> Result<Response<pb::ConfirmLeaderResponse>, Status> {
        self.check_raft(&request)?;
        // Read inside the Raft core, not from the metrics: the metrics can trail a vote this
        // node has just granted, and a stale "still your vote" is the answer this RPC exists
        // to rule out.
        let vote = self
            .node
            .raft()
            .with_raft_state(|state| *state.vote_ref())
            .await
            .map_err(fatal_status)?;
        let vote = serde_json::to_vec(&vote).map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ConfirmLeaderResponse {
            vote: vote.into(),
        }))
    }

    async fn forward_admin(
        &self,
        request: Request<pb::ForwardAdminRequest>,
    ) -> Result<Response<pb::ForwardAdminResponse>, Status> {
        // The forwarding follower authorized its caller for `admin`; only nodes (`replicate`)
        // may hand changes on. Executed only here, never forwarded again.
        self.check(&request)?;
        let admin = request
            .into_inner()
            .request
            .ok_or_else(|| Status::invalid_argument("forwarded admin request is empty"))?;
        let response = membership::execute(&self.node, admin).await?;
        Ok(Response::new(pb::ForwardAdminResponse {
            response: Some(response),
        }))
    }
}
