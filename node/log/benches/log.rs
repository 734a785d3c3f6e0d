//! Storage engine benchmarks: durable append throughput by record and batch size (one fsync per
//! batch), 1 MiB durable batches, sequential and random reads from the page cache, and the open
//! time of a log with 1,000 segments. Figures and the machine's disk limits are recorded in
//! docs/BENCHMARKS.md. Sample sizes and times are small so the whole run stays near 2 minutes.

// The raw-file baselines fsync directly: they measure the disk, not the node's fsync seam.
#![allow(clippy::disallowed_methods)]

use std::hint::black_box;
use std::io::Write;
use std::time::Duration;

use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use proglog_log::{Log, LogConfig};
use rand::Rng;

/// A log in a fresh temporary directory (removed when the returned guard drops).
fn fresh_log(config: LogConfig) -> (tempfile::TempDir, Log) {
    let dir = tempfile::tempdir_in(bench_dir()).expect("temporary directory");
    let log = Log::open(dir.path(), config).expect("open log");
    (dir, log)
}

/// Benchmarks write under `PROGLOG_BENCH_DIR` if set (to measure a particular disk), else the
/// system's temporary directory.
fn bench_dir() -> std::path::PathBuf {
    std::env::var_os("PROGLOG_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into)
}

fn records(size: usize, count: usize) -> Vec<Vec<u8>> {
    let mut rng = rand::rng();
    (0..count)
        .map(|_| (0..size).map(|_| rng.random()).collect())
        .collect()
}

/// Durable append: `append_batch` of `batch` records then one `sync`, per iteration.
fn append_durable(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_durable");
    group
        // Slow iterations (fsync, large reads): equal-sized samples keep the run short.
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500));
    // The same run's yardstick for batches of one: a 1 KiB `write` + `fdatasync` on a plain
    // file (the machine's fsync rate for appends).
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: 1024,
    });
    let dir = tempfile::tempdir_in(bench_dir()).expect("temporary directory");
    let mut file = std::fs::File::create(dir.path().join("raw")).expect("create");
    group.bench_function("raw_file_write_fdatasync/1024B", |b| {
        b.iter(|| {
            file.write_all(&[7u8; 1024]).expect("write");
            file.sync_data().expect("fdatasync");
        });
    });
    for size in [100usize, 1024, 64 * 1024] {
        for batch in [1usize, 10, 100, 1000] {
            let bytes = (size * batch) as u64;
            group.throughput(Throughput::ElementsAndBytes {
                elements: batch as u64,
                bytes,
            });
            let input = records(size, batch);
            let (_dir, log) = fresh_log(LogConfig::default());
            group.bench_with_input(
                BenchmarkId::new(format!("{size}B"), format!("batch{batch}")),
                &input,
                |b, input| {
                    b.iter(|| {
                        log.append_batch(input).expect("append");
                        log.sync().expect("sync");
                    });
                },
            );
        }
    }
    group.finish();
}

/// One 1 MiB durable batch per iteration, as 1 KiB and as 64 KiB records (the figure compared
/// with the disk's fsync'd 1 MiB write bandwidth).
fn append_1mib_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_1MiB_batch");
    group
        // Slow iterations (fsync, large reads): equal-sized samples keep the run short.
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    for size in [1024usize, 64 * 1024] {
        let count = (1 << 20) / size;
        group.throughput(Throughput::ElementsAndBytes {
            elements: count as u64,
            bytes: 1 << 20,
        });
        let input = records(size, count);
        let (_dir, log) = fresh_log(LogConfig::default());
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{size}B")),
            &input,
            |b, input| {
                b.iter(|| {
                    log.append_batch(input).expect("append");
                    log.sync().expect("sync");
                });
            },
        );
    }
    // The same run's yardstick: 1 MiB appended to a plain file with `write` + `fdatasync`, what
    // `fio --rw=write --bs=1M --fdatasync=1` measures, without any log format.
    group.throughput(Throughput::Bytes(1 << 20));
    let dir = tempfile::tempdir_in(bench_dir()).expect("temporary directory");
    let mut file = std::fs::File::create(dir.path().join("raw")).expect("create");
    let block = records(1 << 20, 1).remove(0);
    group.bench_function("raw_file_write_fdatasync", |b| {
        b.iter(|| {
            file.write_all(&block).expect("write");
            file.sync_data().expect("fdatasync");
        });
    });
    group.finish();
}

/// Reads of a 64 MiB log that sits in the page cache: the streaming reader end to end, one
/// `read` per offset in order, and `read` at random offsets.
fn reads(c: &mut Criterion) {
    const TOTAL: usize = 64 << 20;
    let mut group = c.benchmark_group("read_page_cache");
    group
        // Slow iterations (fsync, large reads): equal-sized samples keep the run short.
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for size in [1024usize, 64 * 1024] {
        let count = TOTAL / size;
        let (_dir, log) = fresh_log(LogConfig::default());
        for chunk in records(size, 256)
            .iter()
            .cycle()
            .take(count)
            .collect::<Vec<_>>()
            .chunks(1024)
        {
            log.append_batch(chunk).expect("fill");
        }
        group.throughput(Throughput::ElementsAndBytes {
            elements: count as u64,
            bytes: TOTAL as u64,
        });
        group.bench_function(
            BenchmarkId::new("reader_sequential", format!("{size}B")),
            |b| {
                b.iter(|| {
                    let mut bytes = 0;
                    for item in log.reader(0) {
                        bytes += item.expect("read").1.len();
                    }
                    assert_eq!(bytes, TOTAL);
                });
            },
        );
        group.bench_function(
            BenchmarkId::new("read_sequential", format!("{size}B")),
            |b| {
                b.iter(|| {
                    for offset in 0..count as u64 {
                        black_box(log.read(offset).expect("read"));
                    }
                });
            },
        );
        let reads = 10_000.min(count);
        group.throughput(Throughput::ElementsAndBytes {
            elements: reads as u64,
            bytes: (reads * size) as u64,
        });
        group.bench_function(BenchmarkId::new("read_random", format!("{size}B")), |b| {
            b.iter_batched(
                || {
                    let mut rng = rand::rng();
                    (0..reads)
                        .map(|_| rng.random_range(0..count as u64))
                        .collect::<Vec<_>>()
                },
                |offsets| {
                    for offset in offsets {
                        black_box(log.read(offset).expect("read"));
                    }
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

/// `Log::open` of a log with 1,000 segments (10 records of 1 KiB each).
fn open_1000_segments(c: &mut Criterion) {
    let config = LogConfig {
        max_index_bytes: 10 * 12,
        ..LogConfig::default()
    };
    let (dir, log) = fresh_log(config.clone());
    let input = records(1024, 10);
    for _ in 0..1000 {
        log.append_batch(&input).expect("fill");
    }
    assert_eq!(log.segments().len(), 1000);
    log.close().expect("close");
    drop(log);
    let mut group = c.benchmark_group("open");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    group.bench_function("1000_segments", |b| {
        b.iter(|| {
            let log = Log::open(dir.path(), config.clone()).expect("open");
            assert_eq!(log.next_offset(), 10_000);
            // Dropped, not closed: `close` would add an fsync to the measurement.
            drop(log);
        });
    });
    group.finish();
}

/// Durable 1 MiB batches against the same-run disk limit, interleaved round by round (in
/// alternating order) so that drift in this shared machine's disk speed affects both sides
/// equally: a 1 MiB
/// `append_batch` and `sync` versus a 1 MiB `write` and `fdatasync` on a plain file (what fio's
/// fsync'd sequential write measures). Prints the ratio; criterion's statistics are not used.
fn durable_1mib_vs_raw_file(_c: &mut Criterion) {
    const ROUNDS: u32 = 60;
    let block = records(1 << 20, 1).remove(0);
    for size in [1024usize, 64 * 1024] {
        let input = records(size, (1 << 20) / size);
        let (_log_dir, log) = fresh_log(LogConfig::default());
        let raw_dir = tempfile::tempdir_in(bench_dir()).expect("temporary directory");
        let mut raw = std::fs::File::create(raw_dir.path().join("raw")).expect("create");
        let (mut log_time, mut raw_time) = (Duration::ZERO, Duration::ZERO);
        for round in 0..ROUNDS {
            // Alternate which side goes first: a flush can slow down the write right after it.
            let log_round = |log_time: &mut Duration| {
                let start = std::time::Instant::now();
                log.append_batch(&input).expect("append");
                log.sync().expect("sync");
                *log_time += start.elapsed();
            };
            if round % 2 == 0 {
                log_round(&mut log_time);
            }
            let start = std::time::Instant::now();
            raw.write_all(&block).expect("write");
            raw.sync_data().expect("fdatasync");
            raw_time += start.elapsed();
            if round % 2 == 1 {
                log_round(&mut log_time);
            }
        }
        let mb_per_s = |time: Duration| f64::from(ROUNDS) * 1.048_576 / time.as_secs_f64();
        println!(
            "durable_1MiB_vs_raw_file/{size}B: log {:.0} MB/s, raw file {:.0} MB/s, log/raw {:.0}%",
            mb_per_s(log_time),
            mb_per_s(raw_time),
            100.0 * raw_time.as_secs_f64() / log_time.as_secs_f64()
        );
    }
}

criterion_group!(
    benches,
    durable_1mib_vs_raw_file,
    append_durable,
    append_1mib_batch,
    reads,
    open_1000_segments
);
criterion_main!(benches);
