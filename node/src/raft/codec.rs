//! The binary encoding of Raft entries, used both in the Raft log on disk and on the wire between
//! nodes: a fixed 25-byte header (kind, term, leader node id, index) followed by the payload —
//! prost-encoded records for produce entries, JSON for the rare membership entries.

use bytes::Bytes;
use openraft::EntryPayload;
use openraft::impls::leader_id_adv::LeaderId;
use proglog_proto::limits;
use prost::Message;

use super::error::RaftStoreError;
use super::produce_batch::record_slices;
use super::types::{Entry, LogId, ProduceBatch};
use crate::backend::BackendError;

/// Largest encoded Raft entry a node proposes: one produce call's records, checked when they
/// are proposed ([`check_proposal_size`]) and never again. Room for one record of
/// [`limits::MAX_RECORD_BYTES`] plus a few MiB of smaller ones (a `ProduceStream` chunk, see
/// `server::service`). Applying, storing and replicating committed entries has no size limit
/// of its own, so a node's settings can never make a committed entry fail.
pub const MAX_ENTRY_BYTES: u64 = limits::MAX_RECORD_BYTES + (8 << 20);

/// Largest message of the node-to-node Raft transport, both directions: an entry of
/// [`MAX_ENTRY_BYTES`] with its request header, or a forwarded produce of the same records.
pub const MAX_RAFT_MESSAGE_BYTES: usize = (MAX_ENTRY_BYTES + (1 << 20)) as usize;

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;
/// Kind byte, term, leader node id, index: the header every encoding of an entry starts with,
/// on the wire and in the Raft log (see [`super::stored_entry`]).
pub const HEADER_LEN: usize = 1 + 8 + 8 + 8;

/// Refuses records that would make a Raft entry larger than [`MAX_ENTRY_BYTES`]: checked where a
/// produce is proposed (any node, and the leader for forwarded produces), because once an entry
/// is committed every node must store and apply it whatever its own limits are.
pub fn check_proposal_size(records: &[proglog_proto::log::v1::Record]) -> Result<(), BackendError> {
    let encoded: u64 = records
        .iter()
        .map(|record| prost::encoding::message::encoded_len(1, record) as u64)
        .sum::<u64>()
        + HEADER_LEN as u64;
    if encoded > MAX_ENTRY_BYTES {
        return Err(BackendError::InvalidArgument(format!(
            "a produce of {} records encoding to {encoded} bytes exceeds the largest Raft entry \
             of {MAX_ENTRY_BYTES} bytes; send fewer or smaller records per call",
            records.len()
        )));
    }
    Ok(())
}

/// Appends the encoding of `entry` to `buf`.
pub fn encode_entry_into(entry: &Entry, buf: &mut Vec<u8>) -> Result<(), RaftStoreError> {
    if let Some(encoded) = reusable_encoding(entry) {
        buf.extend_from_slice(encoded);
        return Ok(());
    }
    let kind = match &entry.payload {
        EntryPayload::Blank => KIND_BLANK,
        EntryPayload::Normal(_) => KIND_NORMAL,
        EntryPayload::Membership(_) => KIND_MEMBERSHIP,
    };
    write_header(kind, &entry.log_id, buf);
    match &entry.payload {
        EntryPayload::Blank => {}
        EntryPayload::Normal(batch) => batch.encode_into(buf),
        EntryPayload::Membership(membership) => serde_json::to_writer(&mut *buf, membership)?,
    }
    Ok(())
}

/// Appends the header of an entry of `kind` with `log_id` to `buf`.
pub(super) fn write_header(kind: u8, log_id: &LogId, buf: &mut Vec<u8>) {
    buf.reserve(HEADER_LEN);
    buf.push(kind);
    buf.extend_from_slice(&log_id.leader_id.term.to_le_bytes());
    buf.extend_from_slice(&log_id.leader_id.node_id.to_le_bytes());
    buf.extend_from_slice(&log_id.index.to_le_bytes());
}

/// The encoded `log.v1.Record` messages of a produce batch, in order: slices of the entry's
/// encoding when it carries one, fresh encodings otherwise.
pub fn batch_record_messages(
    log_id: &LogId,
    batch: &ProduceBatch,
) -> Result<Vec<Bytes>, RaftStoreError> {
    let carries_its_encoding = batch.entry_bytes().is_some_and(|encoded| {
        encoded.first() == Some(&KIND_NORMAL)
            && decode_log_id(encoded).is_ok_and(|id| id == *log_id)
    });
    if carries_its_encoding && let Some(messages) = batch.record_messages() {
        return Ok(messages);
    }
    let records = batch
        .records()
        .map_err(|e| RaftStoreError::Corrupt(format!("produce entry: {e}")))?;
    Ok(records
        .iter()
        .map(|r| Bytes::from(r.encode_to_vec()))
        .collect())
}

/// The encoding of `entry` as a fresh buffer.
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, RaftStoreError> {
    let payload_len = match &entry.payload {
        EntryPayload::Normal(batch) => batch.encoded_len(),
        _ => 64,
    };
    // Allocated at its final size: a produce entry can be several MiB.
    let mut buf = Vec::with_capacity(HEADER_LEN + payload_len);
    encode_entry_into(entry, &mut buf)?;
    Ok(buf)
}

/// The encoding of `entry`: the bytes it was decoded from when it carries them (no copy),
/// otherwise a fresh encoding.
pub fn entry_bytes(entry: &Entry) -> Result<Bytes, RaftStoreError> {
    if let Some(encoded) = reusable_encoding(entry) {
        return Ok(encoded.clone());
    }
    encode_entry(entry).map(Bytes::from)
}

/// `entry` holding `encoded`, its encoding (as [`entry_bytes`] made it), so that reading it back
/// later needs neither a decode nor a scan: a produce batch keeps its count and value bytes.
pub fn with_encoding(entry: &Entry, encoded: &Bytes) -> Entry {
    let payload = match &entry.payload {
        EntryPayload::Normal(batch) => EntryPayload::Normal(ProduceBatch::with_encoding(
            batch,
            encoded.clone(),
            HEADER_LEN,
        )),
        other => other.clone(),
    };
    Entry {
        log_id: entry.log_id,
        payload,
    }
}

/// The bytes a produce entry was decoded from, if it still has them and they are its encoding
/// (same log id; records are never modified in place).
fn reusable_encoding(entry: &Entry) -> Option<&Bytes> {
    let EntryPayload::Normal(batch) = &entry.payload else {
        return None;
    };
    let encoded = batch.entry_bytes()?;
    let same_id = decode_log_id(encoded).is_ok_and(|id| id == entry.log_id);
    (same_id && encoded.first() == Some(&KIND_NORMAL)).then_some(encoded)
}

/// The encoded `log.v1.Record` messages inside an encoded produce entry, in order, as slices of
/// `entry_bytes` (no copy).
pub fn record_messages(entry_bytes: &Bytes) -> Result<Vec<Bytes>, RaftStoreError> {
    if entry_bytes.len() < HEADER_LEN || entry_bytes[0] != KIND_NORMAL {
        return Err(RaftStoreError::Corrupt(
            "produce entry: not an encoded produce entry".into(),
        ));
    }
    record_slices(entry_bytes, HEADER_LEN)
        .map_err(|e| RaftStoreError::Corrupt(format!("produce entry: {e}")))
}

/// Decodes only the log id of an encoded entry (cheap: no payload parsing).
pub fn decode_log_id(bytes: &[u8]) -> Result<LogId, RaftStoreError> {
    if bytes.len() < HEADER_LEN {
        return Err(RaftStoreError::Corrupt(format!(
            "raft entry of {} bytes is shorter than its {HEADER_LEN}-byte header",
            bytes.len()
        )));
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    Ok(LogId::new(
        LeaderId {
            term: word(1),
            node_id: word(9),
        },
        word(17),
    ))
}

/// Decodes a whole entry. A produce entry keeps `bytes` as its encoding and is only checked and
/// counted, not parsed into records (see [`super::produce_batch`]): an entry received from the
/// leader is stored and applied from those bytes, and its records are parsed only if something
/// asks for them.
pub fn decode_entry(bytes: &Bytes) -> Result<Entry, RaftStoreError> {
    let log_id = decode_log_id(bytes)?;
    let body = bytes.slice(HEADER_LEN..);
    let payload = match bytes[0] {
        KIND_BLANK => EntryPayload::Blank,
        KIND_NORMAL => EntryPayload::Normal(
            ProduceBatch::from_encoded_entry(bytes.clone(), HEADER_LEN).map_err(|e| {
                RaftStoreError::Corrupt(format!("produce entry at index {}: {e}", log_id.index))
            })?,
        ),
        KIND_MEMBERSHIP => EntryPayload::Membership(serde_json::from_slice(&body)?),
        other => {
            return Err(RaftStoreError::Corrupt(format!(
                "unknown raft entry kind {other} at index {}",
                log_id.index
            )));
        }
    };
    Ok(Entry { log_id, payload })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use openraft::Membership;
    use proglog_proto::log::v1::Record;

    use super::*;

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        LogId::new(
            LeaderId {
                term,
                node_id: node,
            },
            index,
        )
    }

    #[test]
    fn every_payload_kind_round_trips() {
        let normal = Entry {
            log_id: log_id(3, 10001, 42),
            payload: EntryPayload::Normal(ProduceBatch::new(vec![
                Record {
                    value: Bytes::from_static(b"hello"),
                    r#type: 7,
                    ..Default::default()
                },
                Record {
                    value: Bytes::new(),
                    ..Default::default()
                },
            ])),
        };
        let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let membership = Entry {
            log_id: log_id(1, 1, 0),
            payload: EntryPayload::Membership(Membership::new_with_defaults(vec![members], [])),
        };
        let blank = Entry {
            log_id: log_id(u64::MAX, 0, u64::MAX),
            payload: EntryPayload::Blank,
        };
        for entry in [normal, membership, blank] {
            let bytes = Bytes::from(encode_entry(&entry).unwrap());
            assert_eq!(decode_log_id(&bytes).unwrap(), entry.log_id);
            assert_eq!(decode_entry(&bytes).unwrap(), entry);
        }
    }

    #[test]
    fn decoded_values_share_the_encoded_bytes() {
        let entry = Entry {
            log_id: log_id(2, 1, 7),
            payload: EntryPayload::Normal(ProduceBatch::new(vec![Record {
                value: Bytes::from(vec![42u8; 1024]),
                ..Default::default()
            }])),
        };
        let bytes = Bytes::from(encode_entry(&entry).unwrap());
        let EntryPayload::Normal(batch) = decode_entry(&bytes).unwrap().payload else {
            panic!("a normal entry decoded as another kind");
        };
        let value = &batch.records().unwrap()[0].value;
        assert_eq!(value.as_ref(), &[42u8; 1024][..]);
        let encoded = bytes.as_ptr_range();
        assert!(
            encoded.contains(&value.as_ptr()),
            "the record value was copied instead of sliced from the entry bytes"
        );
    }

    fn produce_entry(index: u64, values: &[&'static [u8]]) -> Entry {
        let records = values
            .iter()
            .map(|v| Record {
                value: Bytes::from_static(v),
                offset: 99,
                ..Default::default()
            })
            .collect();
        Entry {
            log_id: log_id(2, 1, index),
            payload: EntryPayload::Normal(ProduceBatch::new(records)),
        }
    }

    #[test]
    fn decoded_entries_reuse_their_bytes_only_under_the_same_log_id() {
        let bytes = Bytes::from(encode_entry(&produce_entry(7, &[b"a", b"bc"])).unwrap());
        let mut decoded = decode_entry(&bytes).unwrap();
        let reused = entry_bytes(&decoded).unwrap();
        assert_eq!(
            reused.as_ptr(),
            bytes.as_ptr(),
            "the encoding was not reused"
        );
        // Under another log id the stored bytes would be wrong: encode afresh.
        decoded.log_id = log_id(3, 1, 8);
        let fresh = entry_bytes(&decoded).unwrap();
        assert_ne!(fresh.as_ptr(), bytes.as_ptr());
        assert_eq!(decode_entry(&fresh).unwrap(), decoded);
        assert_eq!(decode_log_id(&fresh).unwrap(), log_id(3, 1, 8));
    }

    #[test]
    fn record_messages_are_the_encoded_records_in_order() {
        let entry = produce_entry(1, &[b"first", b"", b"third"]);
        let bytes = Bytes::from(encode_entry(&entry).unwrap());
        let messages = record_messages(&bytes).unwrap();
        let EntryPayload::Normal(batch) = &entry.payload else {
            unreachable!()
        };
        let decoded: Vec<Record> = messages
            .iter()
            .map(|m| Record::decode(m.clone()).unwrap())
            .collect();
        assert_eq!(decoded, *batch.records().unwrap());
        // Cut inside the last record, or not a produce entry at all: rejected, never sliced
        // past the end.
        let cut = bytes.slice(..bytes.len() - 2);
        assert!(matches!(
            record_messages(&cut),
            Err(RaftStoreError::Corrupt(_))
        ));
        let blank = Bytes::from(
            encode_entry(&Entry {
                log_id: log_id(1, 1, 1),
                payload: EntryPayload::Blank,
            })
            .unwrap(),
        );
        assert!(matches!(
            record_messages(&blank),
            Err(RaftStoreError::Corrupt(_))
        ));
    }

    #[test]
    fn truncated_or_unknown_entries_are_rejected() {
        assert!(matches!(
            decode_entry(&Bytes::from_static(&[1, 2, 3])),
            Err(RaftStoreError::Corrupt(_))
        ));
        let mut bytes = encode_entry(&Entry {
            log_id: log_id(1, 1, 1),
            payload: EntryPayload::Blank,
        })
        .unwrap();
        bytes[0] = 9;
        assert!(matches!(
            decode_entry(&Bytes::from(bytes)),
            Err(RaftStoreError::Corrupt(_))
        ));
    }
}
