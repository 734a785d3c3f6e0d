//! Protobuf decoding of every request a node accepts (`log.v1`, admin, Raft), and the size
//! check a produce goes through before it is proposed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use proglog_proto::log::v1 as log;
use proglog_proto::proglog::admin::v1 as admin;
use proglog_proto::proglog::raft::v1 as raft;

fuzz_target!(|data: &[u8]| {
    if let Ok(produce) = log::ProduceRequest::decode(data) {
        let records: Vec<log::Record> = produce.record.into_iter().collect();
        let _ = proglog_node::raft::codec::check_proposal_size(&records);
    }
    if let Ok(batch) = log::ProduceBatchRequest::decode(data) {
        let _ = proglog_node::raft::codec::check_proposal_size(&batch.records);
    }
    let _ = log::ConsumeRequest::decode(data);
    let _ = log::GetLogBoundsRequest::decode(data);
    let _ = log::GetServersRequest::decode(data);
    let _ = admin::ClusterStatusRequest::decode(data);
    let _ = admin::InitializeRequest::decode(data);
    let _ = admin::AddLearnerRequest::decode(data);
    let _ = admin::PromoteVoterRequest::decode(data);
    let _ = admin::RemoveNodeRequest::decode(data);
    let _ = admin::TransferLeadershipRequest::decode(data);
    let _ = raft::AppendEntriesRequest::decode(data);
    let _ = raft::RaftMessage::decode(data);
    let _ = raft::SnapshotChunk::decode(data);
    let _ = raft::ForwardProduceRequest::decode(data);
    let _ = raft::ForwardAdminRequest::decode(data);
});
