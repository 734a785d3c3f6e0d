//! Tests of [`ProduceBatch`]'s two forms and of [`scan_records`].

use bytes::Bytes;
use proglog_proto::log::v1::Record;
use prost::Message;

use super::*;

/// A fake header, as the codec puts before the body (its content does not matter here).
const HEADER: &[u8] = b"header:";

fn records() -> Vec<Record> {
    vec![
        Record {
            value: Bytes::from_static(b"first"),
            ..Default::default()
        },
        Record::default(),
        Record {
            value: Bytes::from(vec![7u8; 300]),
            offset: 1 << 40,
            term: 3,
            r#type: 2,
        },
    ]
}

/// `HEADER` followed by the body `records` encode to.
fn encoded(records: Vec<Record>) -> Bytes {
    let mut entry = HEADER.to_vec();
    ProduceBatch::new(records).encode_into(&mut entry);
    Bytes::from(entry)
}

#[test]
fn an_encoded_batch_counts_its_records_and_value_bytes_and_parses_them_on_demand() {
    let entry = encoded(records());
    let batch = ProduceBatch::from_encoded_entry(entry.clone(), HEADER.len()).unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(batch.value_bytes(), 5 + 300);
    assert_eq!(batch.entry_bytes(), Some(&entry));
    assert_eq!(*batch.records().unwrap(), records()[..]);
    assert_eq!(batch, ProduceBatch::new(records()), "equal across forms");
    // Values parsed on demand are slices of the entry, not copies.
    let parsed = batch.records().unwrap();
    assert!(entry.as_ptr_range().contains(&parsed[2].value.as_ptr()));

    let fresh = ProduceBatch::new(records());
    assert_eq!((fresh.len(), fresh.value_bytes()), (3, 305));
    assert_eq!(fresh.encoded_len(), batch.encoded_len());
    assert!(fresh.entry_bytes().is_none() && fresh.record_messages().is_none());
}

#[test]
fn record_messages_are_slices_of_the_entry_in_order() {
    let entry = encoded(records());
    let batch = ProduceBatch::from_encoded_entry(entry.clone(), HEADER.len()).unwrap();
    let messages = batch.record_messages().unwrap();
    let expected: Vec<Vec<u8>> = records().iter().map(Message::encode_to_vec).collect();
    assert_eq!(messages, expected);
    for message in &messages {
        assert!(entry.as_ptr_range().contains(&message.as_ptr()) || message.is_empty());
    }
    assert_eq!(record_slices(&entry, HEADER.len()).unwrap(), messages);
}

#[test]
fn an_encoded_batch_writes_its_body_as_it_is() {
    let entry = encoded(records());
    let batch = ProduceBatch::from_encoded_entry(entry.clone(), HEADER.len()).unwrap();
    let mut body = Vec::new();
    batch.encode_into(&mut body);
    assert_eq!(body, entry[HEADER.len()..]);
    assert_eq!(ProduceBatch::decode(&body).unwrap(), batch);
}

#[test]
fn an_empty_body_is_an_empty_batch() {
    let batch = ProduceBatch::from_encoded_entry(Bytes::from_static(HEADER), HEADER.len()).unwrap();
    assert!(batch.is_empty());
    assert_eq!(batch.value_bytes(), 0);
    assert_eq!(batch.record_messages().unwrap(), Vec::<Bytes>::new());
}

#[test]
fn malformed_bodies_are_refused_with_what_is_wrong() {
    let good = records()[0].encode_to_vec();
    let framed = |message: &[u8]| {
        let mut body = vec![0x0A, message.len() as u8];
        body.extend_from_slice(message);
        body
    };
    let mut cut = framed(&good);
    cut.pop();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Field 2 where only records (field 1) may be.
        (vec![0x12, 0x00], "unexpected field between records"),
        (cut, "record runs past the entry"),
        (vec![0x0A, 0x80], "malformed varint"),
        // Inside a record: a group (wire type 3), field number 0, a value longer than the record.
        (framed(&[0x0B]), "record field of an unsupported wire type"),
        (framed(&[0x00, 0x01]), "record field number 0"),
        (
            framed(&[0x0A, 0x05, b'a']),
            "record field runs past the record",
        ),
        (
            framed(&[0x21, 1, 2, 3]),
            "record field runs past the record",
        ),
    ];
    for (body, why) in cases {
        assert_eq!(scan_records(&body), Err(ScanError(why)), "body {body:02x?}");
        let mut entry = HEADER.to_vec();
        entry.extend_from_slice(&body);
        assert!(ProduceBatch::from_encoded_entry(Bytes::from(entry), HEADER.len()).is_err());
    }
    assert_eq!(
        ProduceBatch::from_encoded_entry(Bytes::from_static(b"hd"), 3).err(),
        Some(ScanError("body past the entry's end"))
    );
}

#[test]
fn the_scan_agrees_with_prost_on_counts_and_value_bytes() {
    // Records of many shapes, including every field at its largest and values around the
    // one-byte length boundary.
    let mut records = Vec::new();
    for len in [0usize, 1, 127, 128, 16_383, 16_384] {
        records.push(Record {
            value: Bytes::from(vec![1u8; len]),
            offset: u64::MAX,
            term: u64::MAX,
            r#type: u32::MAX,
        });
    }
    let entry = encoded(records.clone());
    let (count, value_bytes) = scan_records(&entry[HEADER.len()..]).unwrap();
    assert_eq!(count, records.len() as u64);
    let parsed = ProduceBatch::decode(&entry[HEADER.len()..]).unwrap();
    assert_eq!(value_bytes, parsed.value_bytes());
    assert_eq!(parsed, ProduceBatch::new(records));
}
