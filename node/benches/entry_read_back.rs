//! What reading a Raft entry back costs a node, per record: parsing every record (what each node
//! did for every entry it applied or replicated until entries kept their counts), the scan an
//! entry received from the leader gets (`codec::decode_entry`), and a read from the tail cache
//! (a clone of an entry that holds its encoding and counts). 64 entries of 1 024 × 1 KiB records
//! (64 MiB, the tail cache's size) are read in turn, so that, as on a node, the entry being read
//! is not in the CPU's caches. Figures in docs/BENCHMARKS.md ("Entries read back are counted").

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use openraft::EntryPayload;
use openraft::impls::leader_id_adv::LeaderId;
use proglog_node::raft::codec;
use proglog_node::raft::types::{Entry, LogId, ProduceBatch};
use proglog_proto::log::v1::Record;
use proglog_proto::proglog::raft::v1::ForwardProduceRequest;
use prost::Message;

const ENTRIES: usize = 64;
const RECORDS_PER_ENTRY: usize = 1024;
const VALUE_BYTES: usize = 1024;

/// The encoded entries, and the same entries as the tail cache holds them.
fn entries() -> (Vec<Bytes>, Vec<Entry>) {
    let mut encoded = Vec::with_capacity(ENTRIES);
    let mut cached = Vec::with_capacity(ENTRIES);
    for index in 0..ENTRIES {
        let records = (0..RECORDS_PER_ENTRY)
            .map(|i| Record {
                value: Bytes::from(vec![(index + i) as u8; VALUE_BYTES]),
                ..Default::default()
            })
            .collect();
        let entry = Entry {
            log_id: LogId::new(
                LeaderId {
                    term: 1,
                    node_id: 1,
                },
                index as u64 + 1,
            ),
            payload: EntryPayload::Normal(ProduceBatch::new(records)),
        };
        let bytes = Bytes::from(codec::encode_entry(&entry).expect("encode"));
        cached.push(codec::with_encoding(&entry, &bytes));
        encoded.push(bytes);
    }
    (encoded, cached)
}

fn read_back(c: &mut Criterion) {
    let (encoded, cached) = entries();
    let mut group = c.benchmark_group("entry_read_back");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(RECORDS_PER_ENTRY as u64));
    let mut next = 0;
    group.bench_function("parse_every_record", |b| {
        b.iter(|| {
            let bytes = &encoded[next % ENTRIES];
            next += 1;
            let body = bytes.slice(codec::HEADER_LEN..);
            black_box(
                ForwardProduceRequest::decode(body)
                    .expect("decode")
                    .records
                    .len(),
            )
        });
    });
    group.bench_function("scan_received_entry", |b| {
        b.iter(|| {
            let bytes = &encoded[next % ENTRIES];
            next += 1;
            black_box(codec::decode_entry(bytes).expect("decode"))
        });
    });
    group.bench_function("tail_cache_read", |b| {
        b.iter(|| {
            let entry = &cached[next % ENTRIES];
            next += 1;
            black_box(entry.clone())
        });
    });
    group.finish();
}

criterion_group!(benches, read_back);
criterion_main!(benches);
