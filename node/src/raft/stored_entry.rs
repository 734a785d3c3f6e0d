//! How a Raft entry is kept in this node's Raft log, now that a record is written once: the
//! records of a produce entry live in the user log only (see [`super::user_log`]), and the Raft
//! log keeps the entry's header, the user offset where its records start and their count. A
//! blank or membership entry keeps the user offset it was appended at too (where the next
//! produce entry's records start), so a truncation at any index knows where the user log must
//! be cut. The wire encoding between nodes stays [`super::codec`]'s, records included.
//!
//! Layout: the 25-byte entry header of [`codec`] with a stored kind (3 blank, 4 produce,
//! 5 membership), then `user_start` (u64 LE), then the record count (u64 LE) for a produce
//! entry or the membership's JSON.

use bytes::Bytes;
use openraft::EntryPayload;
use proglog_proto::log::v1::Record;
use prost::Message;

use super::codec::{self, HEADER_LEN};
use super::error::RaftStoreError;
use super::types::{Entry, LogId, ProduceBatch};

const STORED_BLANK: u8 = 3;
const STORED_NORMAL: u8 = 4;
const STORED_MEMBERSHIP: u8 = 5;
const STORED_HEADER_LEN: usize = HEADER_LEN + 8;

/// What a stored entry holds besides its position in the user log.
#[derive(Debug, Clone, PartialEq)]
pub enum StoredPayload {
    /// A blank entry (a new leader's first).
    Blank,
    /// A produce entry: its records are the user log's `user_start..user_start + count`.
    Normal {
        /// How many records the entry holds.
        count: u64,
    },
    /// A membership change.
    Membership(openraft::Membership<super::types::NodeId, openraft::BasicNode>),
}

/// A Raft entry as the Raft log stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    /// The entry's log id.
    pub log_id: LogId,
    /// The user offset of the entry's first record, or, for an entry without records, of the
    /// next record appended after it.
    pub user_start: u64,
    /// The kind of entry, and what it carries in the Raft log.
    pub payload: StoredPayload,
}

impl StoredEntry {
    /// The stored form of `entry` appended when the user log's next offset is `user_start`.
    pub fn of(entry: &Entry, user_start: u64) -> Self {
        let payload = match &entry.payload {
            EntryPayload::Blank => StoredPayload::Blank,
            EntryPayload::Normal(batch) => StoredPayload::Normal { count: batch.len() },
            EntryPayload::Membership(m) => StoredPayload::Membership(m.clone()),
        };
        Self {
            log_id: entry.log_id,
            user_start,
            payload,
        }
    }

    /// One past the user offset of the entry's last record (`user_start` for an entry without
    /// records).
    pub fn user_end(&self) -> u64 {
        match self.payload {
            StoredPayload::Normal { count } => self.user_start + count,
            _ => self.user_start,
        }
    }

    /// The bytes the Raft log stores.
    pub fn encode(&self) -> Result<Vec<u8>, RaftStoreError> {
        let kind = match self.payload {
            StoredPayload::Blank => STORED_BLANK,
            StoredPayload::Normal { .. } => STORED_NORMAL,
            StoredPayload::Membership(_) => STORED_MEMBERSHIP,
        };
        let mut buf = Vec::with_capacity(STORED_HEADER_LEN + 8);
        codec::write_header(kind, &self.log_id, &mut buf);
        buf.extend_from_slice(&self.user_start.to_le_bytes());
        match &self.payload {
            StoredPayload::Blank => {}
            StoredPayload::Normal { count } => buf.extend_from_slice(&count.to_le_bytes()),
            StoredPayload::Membership(m) => serde_json::to_writer(&mut buf, m)?,
        }
        Ok(buf)
    }

    /// Decodes what [`StoredEntry::encode`] wrote. An entry in the wire encoding (the two-log
    /// layout of earlier versions stored those) is refused as such.
    pub fn decode(bytes: &[u8]) -> Result<Self, RaftStoreError> {
        let log_id = codec::decode_log_id(bytes)?;
        let corrupt = |what: &str| {
            RaftStoreError::Corrupt(format!("raft log entry at index {}: {what}", log_id.index))
        };
        if bytes.len() < STORED_HEADER_LEN {
            return Err(match bytes[0] {
                0..=2 => corrupt(TWO_LOG_LAYOUT),
                _ => corrupt("shorter than its header"),
            });
        }
        let word = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let user_start = word(HEADER_LEN);
        let body = &bytes[STORED_HEADER_LEN..];
        let payload = match bytes[0] {
            STORED_BLANK if body.is_empty() => StoredPayload::Blank,
            STORED_NORMAL if body.len() == 8 => StoredPayload::Normal {
                count: word(STORED_HEADER_LEN),
            },
            STORED_MEMBERSHIP => StoredPayload::Membership(serde_json::from_slice(body)?),
            0..=2 => return Err(corrupt(TWO_LOG_LAYOUT)),
            other => return Err(corrupt(&format!("unknown stored kind {other}"))),
        };
        Ok(Self {
            log_id,
            user_start,
            payload,
        })
    }

    /// The whole entry, given the user log's records of a produce entry (`records`, as stored
    /// there: each with its assigned offset and term). Those two fields are cleared, as in the
    /// produced records, so the entry replicates the same bytes whichever way it was read.
    pub fn into_entry(self, stored_records: Vec<Bytes>) -> Result<Entry, RaftStoreError> {
        let payload = match self.payload {
            StoredPayload::Blank => EntryPayload::Blank,
            StoredPayload::Membership(m) => EntryPayload::Membership(m),
            StoredPayload::Normal { count } => {
                if stored_records.len() as u64 != count {
                    return Err(RaftStoreError::Corrupt(format!(
                        "raft entry {} holds {count} records but {} were read from the user log",
                        self.log_id.index,
                        stored_records.len()
                    )));
                }
                let records = stored_records
                    .into_iter()
                    .map(|bytes| {
                        let mut record = Record::decode(bytes).map_err(|e| {
                            RaftStoreError::Corrupt(format!("user log record: {e}"))
                        })?;
                        record.offset = 0;
                        record.term = 0;
                        Ok(record)
                    })
                    .collect::<Result<Vec<_>, RaftStoreError>>()?;
                EntryPayload::Normal(ProduceBatch::new(records))
            }
        };
        Ok(Entry {
            log_id: self.log_id,
            payload,
        })
    }
}

/// Why an entry in the wire encoding in the Raft log is refused.
pub const TWO_LOG_LAYOUT: &str = "it holds its records, as the two-log layout of ProgLog \
     before one-write-per-record did; this version cannot read that layout (see \
     docs/ARCHITECTURE.md \"One write per record\")";

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::raft::types::test_log_id;

    #[test]
    fn every_kind_round_trips_with_its_user_offsets() {
        let produce = Entry {
            log_id: test_log_id(3, 2, 40),
            payload: EntryPayload::Normal(ProduceBatch::new(vec![Record::default(); 3])),
        };
        let members: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
        let membership = Entry {
            log_id: test_log_id(3, 2, 41),
            payload: EntryPayload::Membership(openraft::Membership::new_with_defaults(
                vec![members],
                [],
            )),
        };
        let blank = Entry {
            log_id: test_log_id(4, 1, 42),
            payload: EntryPayload::Blank,
        };
        for (entry, end) in [(produce, 103), (membership, 100), (blank, 100)] {
            let stored = StoredEntry::of(&entry, 100);
            assert_eq!(stored.user_end(), end);
            let decoded = StoredEntry::decode(&stored.encode().unwrap()).unwrap();
            assert_eq!(decoded, stored);
            assert_eq!(
                codec::decode_log_id(&stored.encode().unwrap()).unwrap(),
                entry.log_id
            );
        }
    }

    #[test]
    fn a_produce_entry_is_rebuilt_from_its_user_log_records() {
        let produced = vec![
            Record {
                value: Bytes::from_static(b"one"),
                ..Default::default()
            },
            Record {
                value: Bytes::from_static(b"two"),
                r#type: 7,
                ..Default::default()
            },
        ];
        let entry = Entry {
            log_id: test_log_id(5, 1, 9),
            payload: EntryPayload::Normal(ProduceBatch::new(produced.clone())),
        };
        let stored = StoredEntry::of(&entry, 70);
        // As the user log holds them: offset and term assigned.
        let in_user_log: Vec<Bytes> = produced
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut r = r.clone();
                r.offset = 70 + i as u64;
                r.term = 5;
                Bytes::from(r.encode_to_vec())
            })
            .collect();
        assert_eq!(
            stored.clone().into_entry(in_user_log.clone()).unwrap(),
            entry
        );
        assert!(matches!(
            stored.into_entry(in_user_log[..1].to_vec()),
            Err(RaftStoreError::Corrupt(_))
        ));
    }

    #[test]
    fn an_entry_of_the_two_log_layout_is_refused_by_name() {
        let wire = codec::encode_entry(&Entry {
            log_id: test_log_id(1, 1, 3),
            payload: EntryPayload::Normal(ProduceBatch::new(vec![Record::default()])),
        })
        .unwrap();
        let err = StoredEntry::decode(&wire).unwrap_err().to_string();
        assert!(err.contains("two-log layout"), "{err}");
    }
}
