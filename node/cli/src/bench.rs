//! The load generator behind `proglog produce --bench` and `proglog consume --bench`.
//!
//! Each concurrent client has its own connection. Throughput counts record values (not gRPC
//! framing); latency is per request (unary, batch) or per record from send to acknowledgement
//! (ProduceStream). A progress bar counts records on stderr when it is a terminal.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::ValueEnum;
use proglog_proto::log::v1::{ConsumeRequest, ProduceBatchRequest, ProduceRequest, Record};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use indicatif::ProgressBar;

use super::output::{OutputFormat, print_json, progress_bar};
use super::{CliError, ConnectionArgs, log_client};

/// Which produce RPC to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProduceMode {
    /// One `Produce` call per record.
    Unary,
    /// One pipelined `ProduceStream` per client.
    Stream,
    /// `ProduceBatch` calls of `--batch-size` records.
    Batch,
}

/// Which consume RPC to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsumeMode {
    /// One `ConsumeStream` per client over its share of the range.
    Stream,
    /// One `Consume` call per record.
    Unary,
}

/// Results of one benchmark run.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// What was measured (the RPC mode and its parameters), the first word of the report.
    pub label: String,
    /// Records produced or consumed.
    pub records: u64,
    /// Size of each record's value, for the bandwidth figure.
    pub value_bytes: u64,
    /// Wall time of the whole run, from the first request to the last reply.
    pub elapsed: Duration,
    /// Sorted latency samples.
    pub latencies: Vec<Duration>,
}

impl BenchReport {
    /// Records per second.
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64()
    }

    /// Megabytes (10^6) of record values per second.
    pub fn mb_per_sec(&self) -> f64 {
        self.value_bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }

    /// The latency at quantile `q` (0..=1), if any samples were taken.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        self.latencies.get(rank).copied()
    }
}

impl BenchReport {
    /// Prints the report as text or as one JSON object (latencies in milliseconds).
    pub fn print(&self, output: OutputFormat) {
        if !output.is_json() {
            println!("{self}");
            return;
        }
        let ms = |q| self.quantile(q).map(|d| d.as_secs_f64() * 1e3);
        print_json(&serde_json::json!({
            "label": self.label,
            "records": self.records,
            "value_bytes": self.value_bytes,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "records_per_s": self.records_per_sec(),
            "mb_per_s": self.mb_per_sec(),
            "latency_p50_ms": ms(0.50),
            "latency_p99_ms": ms(0.99),
        }));
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        write!(
            f,
            "{}: {} records in {:.3}s: {:.0} records/s, {:.1} MB/s, latency p50 {:.3} ms p99 {:.3} ms",
            self.label,
            self.records,
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec(),
            ms(self.quantile(0.50)),
            ms(self.quantile(0.99)),
        )
    }
}

/// `produce --bench`.
#[derive(Debug, Clone)]
pub struct ProduceBench {
    /// Records to produce in all.
    pub records: u64,
    /// Requests (or streams) in flight at once.
    pub concurrency: usize,
    /// Bytes of each record's value.
    pub size: usize,
    /// Which produce RPC carries the records.
    pub mode: ProduceMode,
    /// Records per request in the batch mode.
    pub batch_size: usize,
}

/// Splits `total` into `parts` nearly equal shares.
fn shares(total: u64, parts: usize) -> Vec<u64> {
    let parts = parts as u64;
    (0..parts)
        .map(|i| total / parts + u64::from(i < total % parts))
        .collect()
}

fn payload(size: usize) -> Bytes {
    Bytes::from((0..size).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

fn join_error(error: tokio::task::JoinError) -> CliError {
    CliError::Usage(format!("a benchmark client failed: {error}"))
}

impl ProduceBench {
    /// Runs the benchmark against the node.
    pub async fn run(&self, connection: &ConnectionArgs) -> Result<BenchReport, CliError> {
        if self.concurrency == 0 || self.records == 0 || self.batch_size == 0 {
            return Err(CliError::Usage(
                "--bench, --concurrency and --batch-size must be at least 1".to_owned(),
            ));
        }
        let mut channels = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            channels.push(connection.channel().await?);
        }
        let value = payload(self.size);
        let progress = progress_bar(self.records, "produce");
        let started = Instant::now();
        let mut tasks = Vec::new();
        for (channel, share) in channels
            .into_iter()
            .zip(shares(self.records, self.concurrency))
        {
            let value = value.clone();
            let mode = self.mode;
            let batch = self.batch_size as u64;
            let progress = progress.clone();
            tasks.push(tokio::spawn(async move {
                match mode {
                    ProduceMode::Unary => produce_unary(channel, share, value, progress).await,
                    ProduceMode::Stream => produce_stream(channel, share, value, progress).await,
                    ProduceMode::Batch => {
                        produce_batch(channel, share, batch, value, progress).await
                    }
                }
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.map_err(join_error)??);
        }
        let elapsed = started.elapsed();
        progress.finish_and_clear();
        latencies.sort_unstable();
        Ok(BenchReport {
            label: format!(
                "produce {:?} x{} ({} B records)",
                self.mode, self.concurrency, self.size
            )
            .to_lowercase(),
            records: self.records,
            value_bytes: self.records * self.size as u64,
            elapsed,
            latencies,
        })
    }
}

fn record(value: &Bytes) -> Record {
    Record {
        value: value.clone(),
        ..Record::default()
    }
}

async fn produce_unary(
    channel: tonic::transport::Channel,
    count: u64,
    value: Bytes,
    progress: ProgressBar,
) -> Result<Vec<Duration>, CliError> {
    let mut client = log_client(channel);
    let mut latencies = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let sent = Instant::now();
        client
            .produce(ProduceRequest {
                record: Some(record(&value)),
            })
            .await?;
        latencies.push(sent.elapsed());
        progress.inc(1);
    }
    Ok(latencies)
}

async fn produce_batch(
    channel: tonic::transport::Channel,
    count: u64,
    batch: u64,
    value: Bytes,
    progress: ProgressBar,
) -> Result<Vec<Duration>, CliError> {
    let mut client = log_client(channel);
    let mut latencies = Vec::new();
    let mut left = count;
    while left > 0 {
        let n = left.min(batch);
        let records = (0..n).map(|_| record(&value)).collect();
        let sent = Instant::now();
        client
            .produce_batch(ProduceBatchRequest { records })
            .await?;
        latencies.push(sent.elapsed());
        progress.inc(n);
        left -= n;
    }
    Ok(latencies)
}

async fn produce_stream(
    channel: tonic::transport::Channel,
    count: u64,
    value: Bytes,
    progress: ProgressBar,
) -> Result<Vec<Duration>, CliError> {
    let mut client = log_client(channel);
    let (requests, outbound) = mpsc::channel(1024);
    let (sent_at, mut sent_times) = mpsc::unbounded_channel::<Instant>();
    let sender = tokio::spawn(async move {
        for _ in 0..count {
            let _ = sent_at.send(Instant::now());
            let request = ProduceRequest {
                record: Some(record(&value)),
            };
            if requests.send(request).await.is_err() {
                return;
            }
        }
    });
    let mut acks = client
        .produce_stream(ReceiverStream::new(outbound))
        .await?
        .into_inner();
    let mut latencies = Vec::with_capacity(count as usize);
    while latencies.len() < count as usize {
        let Some(_ack) = acks.message().await? else {
            return Err(CliError::Usage(format!(
                "ProduceStream ended after {} of {count} acknowledgements",
                latencies.len()
            )));
        };
        if let Some(sent) = sent_times.recv().await {
            latencies.push(sent.elapsed());
        }
        progress.inc(1);
    }
    sender.await.map_err(join_error)?;
    Ok(latencies)
}

/// `consume --bench`.
#[derive(Debug, Clone)]
pub struct ConsumeBench {
    /// Offset of the first record read.
    pub from: u64,
    /// Records to read in all (they must exist: the run does not wait for new ones).
    pub records: u64,
    /// Which consume RPC reads them.
    pub mode: ConsumeMode,
    /// Readers at once, each over its own share of the offsets.
    pub concurrency: usize,
}

impl ConsumeBench {
    /// Runs the benchmark against the node.
    pub async fn run(&self, connection: &ConnectionArgs) -> Result<BenchReport, CliError> {
        if self.concurrency == 0 || self.records == 0 {
            return Err(CliError::Usage(
                "--bench and --concurrency must be at least 1".to_owned(),
            ));
        }
        let mut channels = Vec::with_capacity(self.concurrency);
        for _ in 0..self.concurrency {
            channels.push(connection.channel().await?);
        }
        let progress = progress_bar(self.records, "consume");
        let started = Instant::now();
        let mut tasks = Vec::new();
        let mut start = self.from;
        for (channel, share) in channels
            .into_iter()
            .zip(shares(self.records, self.concurrency))
        {
            let mode = self.mode;
            let first = start;
            start += share;
            let progress = progress.clone();
            tasks.push(tokio::spawn(async move {
                match mode {
                    ConsumeMode::Stream => consume_stream(channel, first, share, progress).await,
                    ConsumeMode::Unary => consume_unary(channel, first, share, progress).await,
                }
            }));
        }
        let mut latencies = Vec::new();
        let mut value_bytes = 0;
        for task in tasks {
            let (bytes, samples) = task.await.map_err(join_error)??;
            value_bytes += bytes;
            latencies.extend(samples);
        }
        let elapsed = started.elapsed();
        progress.finish_and_clear();
        latencies.sort_unstable();
        Ok(BenchReport {
            label: format!("consume {:?} x{}", self.mode, self.concurrency).to_lowercase(),
            records: self.records,
            value_bytes,
            elapsed,
            latencies,
        })
    }
}

async fn consume_stream(
    channel: tonic::transport::Channel,
    from: u64,
    count: u64,
    progress: ProgressBar,
) -> Result<(u64, Vec<Duration>), CliError> {
    let mut client = log_client(channel);
    let mut stream = client
        .consume_stream(ConsumeRequest { offset: from })
        .await?
        .into_inner();
    let mut bytes = 0;
    for received in 0..count {
        let Some(response) = stream.message().await? else {
            return Err(CliError::Usage(format!(
                "ConsumeStream ended after {received} of {count} records"
            )));
        };
        bytes += response.record.map_or(0, |r| r.value.len() as u64);
        progress.inc(1);
    }
    Ok((bytes, Vec::new()))
}

async fn consume_unary(
    channel: tonic::transport::Channel,
    from: u64,
    count: u64,
    progress: ProgressBar,
) -> Result<(u64, Vec<Duration>), CliError> {
    let mut client = log_client(channel);
    let mut bytes = 0;
    let mut latencies = Vec::with_capacity(count as usize);
    for offset in from..from + count {
        let sent = Instant::now();
        let response = client
            .consume(ConsumeRequest { offset })
            .await?
            .into_inner();
        latencies.push(sent.elapsed());
        bytes += response.record.map_or(0, |r| r.value.len() as u64);
        progress.inc(1);
    }
    Ok((bytes, latencies))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up() {
        assert_eq!(shares(10, 3), vec![4, 3, 3]);
        assert_eq!(shares(2, 4), vec![1, 1, 0, 0]);
        assert_eq!(shares(10, 3).iter().sum::<u64>(), 10);
    }

    #[test]
    fn quantiles_pick_ranked_samples() {
        let report = BenchReport {
            label: "t".into(),
            records: 100,
            value_bytes: 100,
            elapsed: Duration::from_secs(1),
            latencies: (1..=100).map(Duration::from_millis).collect(),
        };
        assert_eq!(report.quantile(0.5), Some(Duration::from_millis(51)));
        assert_eq!(report.quantile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(report.records_per_sec(), 100.0);
    }
}
