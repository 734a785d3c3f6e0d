//! The Raft entry codec on arbitrary bytes (what a damaged Raft log segment or a peer hands it):
//! decoding fails cleanly or yields an entry that encodes again.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use proglog_node::raft::codec;

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let _ = codec::decode_log_id(data);
    let _ = codec::record_messages(&bytes);
    if let Ok(entry) = codec::decode_entry(&bytes) {
        let again = codec::encode_entry(&entry).expect("a decoded entry encodes");
        let back = codec::decode_entry(&Bytes::from(again)).expect("and decodes again");
        assert_eq!(format!("{back:?}"), format!("{entry:?}"));
    }
});
