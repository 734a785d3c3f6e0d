//! Property test of the storage engine: random sequences of appends, batch appends, prefix and
//! suffix truncations, resets and reopens must leave the log equal to a simple in-memory model.

use std::collections::VecDeque;
use std::path::Path;

use proglog_log::{Log, LogConfig, LogError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    AppendBatch(Vec<Vec<u8>>),
    /// Truncate the prefix before `lowest + fraction * len` (fraction in 0..=100 percent, and
    /// beyond the end when over 100).
    TruncatePrefix(u8),
    TruncateSuffix(u8),
    Reset(u16),
    Sync,
    Reopen,
}

fn record() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..40)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => record().prop_map(Op::Append),
        4 => prop::collection::vec(record(), 0..12).prop_map(Op::AppendBatch),
        1 => (0u8..=120).prop_map(Op::TruncatePrefix),
        2 => (0u8..=120).prop_map(Op::TruncateSuffix),
        1 => any::<u16>().prop_map(Op::Reset),
        1 => Just(Op::Sync),
        2 => Just(Op::Reopen),
    ]
}

/// The model: records from `lowest` on.
#[derive(Debug, Default)]
struct Model {
    lowest: u64,
    records: VecDeque<Vec<u8>>,
}

impl Model {
    fn next(&self) -> u64 {
        self.lowest + self.records.len() as u64
    }

    fn at_fraction(&self, fraction: u8) -> u64 {
        self.lowest + self.records.len() as u64 * u64::from(fraction) / 100
    }
}

fn config() -> LogConfig {
    LogConfig {
        max_store_bytes: 200,
        max_index_bytes: 5 * 12,
        initial_offset: 7,
        max_record_bytes: 64,
    }
}

fn check(log: &Log, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(log.lowest_offset(), model.lowest);
    prop_assert_eq!(log.next_offset(), model.next());
    prop_assert_eq!(log.is_empty(), model.records.is_empty());
    for (i, want) in model.records.iter().enumerate() {
        let offset = model.lowest + i as u64;
        prop_assert_eq!(&log.read(offset).unwrap()[..], &want[..]);
    }
    let read: Vec<Vec<u8>> = log
        .reader(model.lowest)
        .map(|r| r.map(|(_, bytes)| bytes.to_vec()))
        .collect::<Result<_, _>>()
        .unwrap();
    prop_assert_eq!(read, Vec::from(model.records.clone()));
    let next_is_past_end = matches!(log.read(model.next()), Err(LogError::OffsetPastEnd { .. }));
    prop_assert!(next_is_past_end);
    if model.lowest > 0 {
        let below = matches!(
            log.read(model.lowest - 1),
            Err(LogError::OffsetBelowStart { .. })
        );
        prop_assert!(below);
    }
    let segments = log.segments();
    for pair in segments.windows(2) {
        prop_assert_eq!(pair[0].next_offset, pair[1].base_offset);
    }
    for segment in &segments {
        prop_assert!(segment.store_bytes <= 200 && segment.index_bytes <= 60);
    }
    Ok(())
}

fn run(dir: &Path, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut log = Log::open(dir, config()).unwrap();
    let mut model = Model {
        lowest: 7,
        ..Model::default()
    };
    for op in ops {
        match op {
            Op::Append(record) => {
                prop_assert_eq!(log.append(&record).unwrap(), model.next());
                model.records.push_back(record);
            }
            Op::AppendBatch(records) => {
                let start = model.next();
                let range = log.append_batch(&records).unwrap();
                prop_assert_eq!(range, start..start + records.len() as u64);
                model.records.extend(records);
            }
            Op::TruncatePrefix(fraction) => {
                let before = model.at_fraction(fraction);
                let active_base = log.segments().last().unwrap().base_offset;
                log.truncate_prefix(before).unwrap();
                let lowest = log.lowest_offset();
                // Whole segments only, never the active one, never past `before`.
                prop_assert!(lowest == model.lowest || lowest <= before);
                prop_assert!(lowest <= active_base && lowest >= model.lowest);
                let dropped = (lowest - model.lowest) as usize;
                model.records.drain(..dropped);
                model.lowest = lowest;
            }
            Op::TruncateSuffix(fraction) => {
                let from = model.at_fraction(fraction);
                let result = log.truncate_suffix(from);
                if from > model.next() {
                    let past_end = matches!(result, Err(LogError::OffsetPastEnd { .. }));
                    prop_assert!(past_end);
                } else {
                    result.unwrap();
                    model.records.truncate((from - model.lowest) as usize);
                }
            }
            Op::Reset(next) => {
                log.reset(u64::from(next)).unwrap();
                model.lowest = u64::from(next);
                model.records.clear();
            }
            Op::Sync => log.sync().unwrap(),
            Op::Reopen => {
                drop(log);
                log = Log::open(dir, config()).unwrap();
            }
        }
        check(&log, &model)?;
    }
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir, config()).unwrap();
    check(&log, &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_operations_match_model(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), ops)?;
    }
}
