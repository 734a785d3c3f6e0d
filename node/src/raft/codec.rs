//! The binary encoding of Raft entries, used both in the Raft log on disk and on the wire between
//! nodes: a fixed 25-byte header (kind, term, leader node id, index) followed by the payload —
//! prost-encoded records for produce entries, JSON for the rare membership entries.

use bytes::Bytes;
use openraft::EntryPayload;
use openraft::impls::leader_id_adv::LeaderId;
use proglog_proto::proglog::raft::v1::ForwardProduceRequest;
use prost::Message;

use super::error::RaftStoreError;
use super::types::{Entry, LogId, ProduceBatch};

const KIND_BLANK: u8 = 0;
const KIND_NORMAL: u8 = 1;
const KIND_MEMBERSHIP: u8 = 2;
const HEADER_LEN: usize = 1 + 8 + 8 + 8;

/// Appends the encoding of `entry` to `buf`.
pub fn encode_entry_into(entry: &Entry, buf: &mut Vec<u8>) -> Result<(), RaftStoreError> {
    let kind = match &entry.payload {
        EntryPayload::Blank => KIND_BLANK,
        EntryPayload::Normal(_) => KIND_NORMAL,
        EntryPayload::Membership(_) => KIND_MEMBERSHIP,
    };
    buf.reserve(HEADER_LEN);
    buf.push(kind);
    buf.extend_from_slice(&entry.log_id.leader_id.term.to_le_bytes());
    buf.extend_from_slice(&entry.log_id.leader_id.node_id.to_le_bytes());
    buf.extend_from_slice(&entry.log_id.index.to_le_bytes());
    match &entry.payload {
        EntryPayload::Blank => {}
        EntryPayload::Normal(batch) => batch.encode_into(buf),
        EntryPayload::Membership(membership) => serde_json::to_writer(&mut *buf, membership)?,
    }
    Ok(())
}

/// The encoding of `entry` as a fresh buffer.
pub fn encode_entry(entry: &Entry) -> Result<Vec<u8>, RaftStoreError> {
    let mut buf = Vec::with_capacity(HEADER_LEN + 64);
    encode_entry_into(entry, &mut buf)?;
    Ok(buf)
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

/// Decodes a whole entry. Record values are slices of `bytes` (no copy): on the hot path
/// (entries read back for replication, entries received from the leader) this saves a copy and
/// an allocation per record.
pub fn decode_entry(bytes: &Bytes) -> Result<Entry, RaftStoreError> {
    let log_id = decode_log_id(bytes)?;
    let body = bytes.slice(HEADER_LEN..);
    let payload = match bytes[0] {
        KIND_BLANK => EntryPayload::Blank,
        KIND_NORMAL => {
            // Same wire format as `ProduceBatch::encode_into`; decoding from `Bytes` lets prost
            // slice the values instead of copying them.
            let wire = ForwardProduceRequest::decode(body)
                .map_err(|e| RaftStoreError::Corrupt(e.to_string()))?;
            EntryPayload::Normal(ProduceBatch {
                records: wire.records,
            })
        }
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
            payload: EntryPayload::Normal(ProduceBatch {
                records: vec![
                    Record {
                        value: Bytes::from_static(b"hello"),
                        r#type: 7,
                        ..Default::default()
                    },
                    Record {
                        value: Bytes::new(),
                        ..Default::default()
                    },
                ],
            }),
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
            payload: EntryPayload::Normal(ProduceBatch {
                records: vec![Record {
                    value: Bytes::from(vec![42u8; 1024]),
                    ..Default::default()
                }],
            }),
        };
        let bytes = Bytes::from(encode_entry(&entry).unwrap());
        let EntryPayload::Normal(batch) = decode_entry(&bytes).unwrap().payload else {
            panic!("a normal entry decoded as another kind");
        };
        let value = &batch.records[0].value;
        assert_eq!(value.as_ref(), &[42u8; 1024][..]);
        let encoded = bytes.as_ptr_range();
        assert!(
            encoded.contains(&value.as_ptr()),
            "the record value was copied instead of sliced from the entry bytes"
        );
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
