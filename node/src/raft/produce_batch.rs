//! The application payload of a normal Raft entry, [`ProduceBatch`]: records produced together,
//! held either as the records a producer sent or as the encoded entry they were read from.
//!
//! Every node reads each entry back at least once (openraft reads committed entries to apply
//! them, the leader reads them to replicate, followers decode what the leader sent), and none of
//! those readers needs the records themselves: applying needs their count and value bytes, storing
//! and replicating need their encoded messages, which are slices of the entry. So an entry read
//! back keeps its encoding and is only checked and counted ([`scan_records`]); the records are
//! parsed where something asks for them (tests, failpoints, re-encoding under another log id).

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use proglog_proto::log::v1::Record;
use proglog_proto::proglog::raft::v1::ForwardProduceRequest;
use prost::Message;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Records produced together. Applying the entry appends them to the user log with contiguous
/// offsets.
#[derive(Clone)]
pub struct ProduceBatch(Form);

#[derive(Clone)]
enum Form {
    /// Records as producers sent them (the leader, before the entry is encoded).
    Records(Vec<Record>),
    /// An entry's encoding, read back from the Raft log or received from the leader.
    Encoded(EncodedBatch),
}

#[derive(Clone)]
struct EncodedBatch {
    /// The whole encoded entry, header included (see [`super::codec`]).
    entry: Bytes,
    /// Where the record messages start in `entry` (after the header).
    body_start: usize,
    /// Record messages in the body ([`scan_records`]).
    count: u64,
    /// Sum of the records' value lengths.
    value_bytes: u64,
}

impl Default for ProduceBatch {
    fn default() -> Self {
        Self::new(Vec::new())
    }
}

// Equality is about the records, whichever form holds them (tests compare entries).
impl PartialEq for ProduceBatch {
    fn eq(&self, other: &Self) -> bool {
        match (self.records(), other.records()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        }
    }
}

impl ProduceBatch {
    /// A batch of freshly produced records (no encoding yet).
    pub fn new(records: Vec<Record>) -> Self {
        Self(Form::Records(records))
    }

    /// A batch held as its encoded entry `entry`, whose record messages start at `body_start`.
    /// Checks the body's framing and counts its records without parsing them into [`Record`]s.
    pub fn from_encoded_entry(entry: Bytes, body_start: usize) -> Result<Self, ScanError> {
        let body = entry
            .get(body_start..)
            .ok_or(ScanError("body past the entry's end"))?;
        let (count, value_bytes) = scan_records(body)?;
        Ok(Self(Form::Encoded(EncodedBatch {
            entry,
            body_start,
            count,
            value_bytes,
        })))
    }

    /// `batch` held as `entry`, its encoding (record messages from `body_start`), with the count
    /// and value bytes taken from `batch` instead of a scan of the bytes: for an entry just
    /// encoded from `batch`, or read back in it.
    pub(super) fn with_encoding(batch: &ProduceBatch, entry: Bytes, body_start: usize) -> Self {
        debug_assert_eq!(entry.len() - body_start, batch.encoded_len());
        Self(Form::Encoded(EncodedBatch {
            entry,
            body_start,
            count: batch.len(),
            value_bytes: batch.value_bytes(),
        }))
    }

    /// How many records the batch holds.
    pub fn len(&self) -> u64 {
        match &self.0 {
            Form::Records(records) => records.len() as u64,
            Form::Encoded(encoded) => encoded.count,
        }
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sum of the records' value lengths.
    pub fn value_bytes(&self) -> u64 {
        match &self.0 {
            Form::Records(records) => records.iter().map(|r| r.value.len() as u64).sum(),
            Form::Encoded(encoded) => encoded.value_bytes,
        }
    }

    /// The records, parsed from the encoding if the batch holds one (values are slices of it).
    pub fn records(&self) -> Result<Cow<'_, [Record]>, prost::DecodeError> {
        match &self.0 {
            Form::Records(records) => Ok(Cow::Borrowed(records)),
            Form::Encoded(encoded) => {
                let body = encoded.entry.slice(encoded.body_start..);
                Ok(Cow::Owned(ForwardProduceRequest::decode(body)?.records))
            }
        }
    }

    /// The whole encoded entry this batch was read from, if it was.
    pub fn entry_bytes(&self) -> Option<&Bytes> {
        match &self.0 {
            Form::Records(_) => None,
            Form::Encoded(encoded) => Some(&encoded.entry),
        }
    }

    /// The encoded record messages of an encoded batch, as slices of its entry (no copy).
    pub fn record_messages(&self) -> Option<Vec<Bytes>> {
        let Form::Encoded(encoded) = &self.0 else {
            return None;
        };
        // Scanned when the batch was made, so this cannot fail.
        record_slices(&encoded.entry, encoded.body_start).ok()
    }

    /// Bytes [`ProduceBatch::encode_into`] writes.
    pub fn encoded_len(&self) -> usize {
        match &self.0 {
            Form::Records(records) => records
                .iter()
                .map(|record| prost::encoding::message::encoded_len(1, record))
                .sum(),
            Form::Encoded(encoded) => encoded.entry.len() - encoded.body_start,
        }
    }

    /// Writes the record messages (the entry's body) into `buf`, without cloning the records.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        // Sized once: growing by doubling would copy a large batch several times.
        buf.reserve(self.encoded_len());
        match &self.0 {
            // Same wire format as `ForwardProduceRequest { records }`: field 1, length-delimited.
            Form::Records(records) => {
                for record in records {
                    prost::encoding::message::encode(1, record, buf);
                }
            }
            Form::Encoded(encoded) => buf.extend_from_slice(&encoded.entry[encoded.body_start..]),
        }
    }

    /// Decodes what [`ProduceBatch::encode_into`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, prost::DecodeError> {
        let wire = ForwardProduceRequest::decode(bytes)?;
        Ok(Self::new(wire.records))
    }
}

/// Why an entry's body is not a sequence of well-formed record messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanError(pub &'static str);

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Checks that `body` is a sequence of `log.v1.Record` messages, each framed as field 1 of
/// `ForwardProduceRequest` and made only of well-formed fields, and returns how many there are
/// and the sum of their value lengths. Nothing is allocated: this is what reading an entry back
/// costs instead of parsing every record.
pub fn scan_records(body: &[u8]) -> Result<(u64, u64), ScanError> {
    let (mut count, mut value_bytes) = (0u64, 0u64);
    let mut rest = body;
    while let Some(framed) = next_record(rest)? {
        value_bytes += scan_record_fields(&rest[framed.start..framed.start + framed.len])?;
        count += 1;
        rest = framed.rest;
    }
    Ok((count, value_bytes))
}

/// The record messages of the encoded entry `entry` whose body starts at `body_start`, in order,
/// as slices of it (no copy). Checks only the framing, not the records' fields.
pub fn record_slices(entry: &Bytes, body_start: usize) -> Result<Vec<Bytes>, ScanError> {
    let mut rest = entry
        .get(body_start..)
        .ok_or(ScanError("body past the entry's end"))?;
    let mut messages = Vec::new();
    while let Some(framed) = next_record(rest)? {
        let at = entry.len() - rest.len() + framed.start;
        messages.push(entry.slice(at..at + framed.len));
        rest = framed.rest;
    }
    Ok(messages)
}

/// A record message found in a body by [`next_record`].
struct Framed<'a> {
    /// Where the message starts, from the start of the slice searched.
    start: usize,
    /// The message's length.
    len: usize,
    /// What follows it.
    rest: &'a [u8],
}

/// The next record message of `rest`, `None` at the end.
fn next_record(rest: &[u8]) -> Result<Option<Framed<'_>>, ScanError> {
    let Some((&tag, mut after)) = rest.split_first() else {
        return Ok(None);
    };
    // Field 1 (`records`), length-delimited: tag byte 0x0A.
    if tag != 0x0A {
        return Err(ScanError("unexpected field between records"));
    }
    let len = varint(&mut after)?;
    let len = usize::try_from(len).map_err(|_| ScanError("record length"))?;
    if len > after.len() {
        return Err(ScanError("record runs past the entry"));
    }
    let start = rest.len() - after.len();
    Ok(Some(Framed {
        start,
        len,
        rest: &after[len..],
    }))
}

/// Walks one record message's fields, checking their wire types and lengths, and returns the
/// length of its value (field 1).
fn scan_record_fields(mut message: &[u8]) -> Result<u64, ScanError> {
    let mut value_len = 0;
    while !message.is_empty() {
        let key = varint(&mut message)?;
        let (field, wire_type) = (key >> 3, key & 7);
        if field == 0 {
            return Err(ScanError("record field number 0"));
        }
        let skip = match wire_type {
            0 => {
                varint(&mut message)?;
                0
            }
            1 => 8,
            2 => {
                let len = varint(&mut message)?;
                if field == 1 {
                    value_len = len;
                }
                usize::try_from(len).map_err(|_| ScanError("record field length"))?
            }
            5 => 4,
            _ => return Err(ScanError("record field of an unsupported wire type")),
        };
        if skip > message.len() {
            return Err(ScanError("record field runs past the record"));
        }
        message = &message[skip..];
    }
    Ok(value_len)
}

fn varint(buf: &mut &[u8]) -> Result<u64, ScanError> {
    prost::encoding::decode_varint(buf).map_err(|_| ScanError("malformed varint"))
}

impl fmt::Debug for ProduceBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProduceBatch({} records)", self.len())
    }
}

impl fmt::Display for ProduceBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} records", self.len())
    }
}

// openraft requires serde for the payload; ProgLog only uses it for debugging output, the log and
// the network use the prost encoding, so serde just carries the same bytes.
impl Serialize for ProduceBatch {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf);
        serializer.serialize_bytes(&buf)
    }
}

impl<'de> Deserialize<'de> for ProduceBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: Vec<u8> = Deserialize::deserialize(deserializer)?;
        ProduceBatch::decode(&bytes).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
#[path = "produce_batch_tests.rs"]
mod tests;
