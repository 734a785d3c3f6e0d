//! AppendEntries requests as messages that fit the transport. openraft bounds a request by entry
//! count (`max_payload_entries`), not by bytes, so with multi-MiB entries one request of a
//! follower catching up can exceed the largest message the Raft service accepts
//! ([`codec::MAX_RAFT_MESSAGE_BYTES`]); every retry would then fail the same way and the follower
//! would never catch up. The network therefore sends a request as consecutive runs of its
//! entries of at most [`MAX_APPEND_MESSAGE_BYTES`] each (a run always holds at least one entry,
//! and one entry always fits), each run a complete AppendEntries of its own whose `prev_log_id`
//! is the last entry of the run before, and merges the follower's replies back into one.

use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use proglog_proto::proglog::raft::v1 as pb;

use super::codec;
use super::error::RaftStoreError;
use super::network::AppendHeader;
use super::types::TypeConfig;

/// Most encoded entry bytes per AppendEntries message (well under the 73 MiB message limit, and
/// small enough that a follower's reply and the next message overlap).
pub const MAX_APPEND_MESSAGE_BYTES: usize = 16 << 20;

/// The wire messages of `rpc`: one per run of entries (see the module doc); one message without
/// entries for a heartbeat.
pub(super) fn encode_append_parts(
    rpc: &AppendEntriesRequest<TypeConfig>,
    max_bytes: usize,
) -> Result<Vec<pb::AppendEntriesRequest>, RaftStoreError> {
    let header = |prev_log_id| -> Result<bytes::Bytes, RaftStoreError> {
        let header = AppendHeader {
            vote: rpc.vote,
            prev_log_id,
            leader_commit: rpc.leader_commit,
        };
        Ok(serde_json::to_vec(&header)?.into())
    };
    let mut parts = Vec::new();
    // `prev_log_id` of the run being built, and the id of the last entry taken so far.
    let mut run_prev = rpc.prev_log_id;
    let mut last = rpc.prev_log_id;
    let mut entries = Vec::new();
    let mut bytes = 0;
    for entry in &rpc.entries {
        // Entries read back from the log carry their stored encoding: sent without re-encoding.
        let encoded = codec::entry_bytes(entry)?;
        if !entries.is_empty() && bytes + encoded.len() > max_bytes {
            parts.push(pb::AppendEntriesRequest {
                header: header(run_prev)?,
                entries: std::mem::take(&mut entries),
            });
            run_prev = last;
            bytes = 0;
        }
        bytes += encoded.len();
        entries.push(encoded);
        last = Some(entry.log_id);
    }
    parts.push(pb::AppendEntriesRequest {
        header: header(run_prev)?,
        entries,
    });
    Ok(parts)
}

/// The reply to a request sent as several messages, from the replies to its messages in order:
/// the first one that is not a success (a conflict or a higher vote stops the request there),
/// else the last success (the follower matched up to the request's last entry).
pub(super) fn merge_replies(
    merged: StreamAppendResult<TypeConfig>,
    next: StreamAppendResult<TypeConfig>,
) -> StreamAppendResult<TypeConfig> {
    match merged {
        Ok(_) => next,
        failed @ Err(_) => failed,
    }
}

#[cfg(test)]
mod tests {
    use openraft::EntryPayload;
    use openraft::raft::StreamAppendError;
    use proglog_proto::log::v1::Record;

    use super::*;
    use crate::raft::network::AppendHeader;
    use crate::raft::types::{Entry, LogId, ProduceBatch, Vote};

    fn log_id(index: u64) -> LogId {
        crate::raft::types::test_log_id(2, 1, index)
    }

    fn request(first: u64, sizes: &[usize]) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: first.checked_sub(1).map(log_id),
            entries: sizes
                .iter()
                .enumerate()
                .map(|(i, &size)| Entry {
                    log_id: log_id(first + i as u64),
                    payload: EntryPayload::Normal(ProduceBatch::new(vec![Record {
                        value: vec![0; size].into(),
                        ..Record::default()
                    }])),
                })
                .collect(),
            leader_commit: Some(log_id(first)),
        }
    }

    fn header(part: &pb::AppendEntriesRequest) -> AppendHeader {
        serde_json::from_slice(&part.header).unwrap()
    }

    #[test]
    fn runs_fit_the_bound_and_chain_their_prev_log_ids() {
        let rpc = request(10, &[400, 400, 400, 1500, 100, 100]);
        let parts = encode_append_parts(&rpc, 1000).unwrap();
        let runs: Vec<usize> = parts.iter().map(|p| p.entries.len()).collect();
        // 3 × ~400 B exceed 1000 after two; the 1500 B entry is over the bound, alone.
        assert_eq!(runs, [2, 1, 1, 2]);
        let prevs: Vec<Option<LogId>> = parts.iter().map(|p| header(p).prev_log_id).collect();
        assert_eq!(
            prevs,
            [
                Some(log_id(9)),
                Some(log_id(11)),
                Some(log_id(12)),
                Some(log_id(13))
            ]
        );
        for part in &parts {
            assert_eq!(header(part).leader_commit, rpc.leader_commit);
            assert_eq!(header(part).vote, rpc.vote);
        }
        // Nothing lost or reordered.
        let sent: Vec<_> = parts.iter().flat_map(|p| p.entries.clone()).collect();
        let whole = encode_append_parts(&rpc, usize::MAX).unwrap();
        assert_eq!(whole.len(), 1);
        assert_eq!(sent, whole[0].entries);
    }

    #[test]
    fn a_heartbeat_is_one_message_without_entries() {
        let parts = encode_append_parts(&request(0, &[]), 1000).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(parts[0].entries.is_empty());
        assert_eq!(header(&parts[0]).prev_log_id, None);
    }

    #[test]
    fn the_first_failure_or_else_the_last_success_answers_the_request() {
        let ok = |i| Ok(Some(log_id(i)));
        assert_eq!(merge_replies(ok(3), ok(5)), ok(5));
        let conflict = Err(StreamAppendError::Conflict(log_id(4)));
        assert_eq!(merge_replies(ok(3), conflict.clone()), conflict);
        assert_eq!(merge_replies(conflict.clone(), ok(9)), conflict);
    }
}
