//! The clients of a fault run, recording every operation into the history:
//!
//! - [`append_client`]: one sequential client, starting on one node, appending unique values
//!   (`wW-S`: worker, sequence) at a fixed rate, one attempt per value with a deadline. A failed
//!   append is `fail` only when [`produce_not_executed`] says so (the node's not-executed
//!   metadata, or the call never reached a node), otherwise `info`. After an `info` the client
//!   continues as a new process on a new connection (Jepsen's rule: the old one may still be in
//!   flight). After any append that did not succeed it fails over to another node, as a real
//!   client would (its node may be down, or cut off from the clients).
//! - [`crate::reads::linearizable_reader`] (its own module): linearizable reads of the log's tail.
//! - [`crate::stream_client::stream_client`] (its own module): bursts of records on an open
//!   `ProduceStream`, each record its own append operation.
//! - [`bounds_poller`]: periodic `GetLogBounds(LINEARIZABLE)` on a random node.
//! - [`consumer`]: follows the log with `ConsumeStream`, moving to the next node when a stream
//!   ends or stalls; each stream is recorded as one [`ConsumerRun`].
//! - [`final_append`], [`read_final_logs`]: after healing, one append must succeed, then every
//!   node's whole log is read up to its local bounds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{
    Consistency as WireConsistency, ConsumeRequest, GetLogBoundsRequest, ProduceRequest,
    Record as WireRecord,
};
use proglog_proto::retry::produce_not_executed;
use rand::Rng;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::history::{
    Consistency, ConsumerRun, FinalLog, OpKind, OpResult, Operation, Record, RunClock,
};
use crate::jsonl::HistoryWriter;
use crate::tls::Endpoints;

/// Connect timeout of every client connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Shared by all clients: the history file, the clock, and id counters.
#[derive(Debug)]
pub struct Recorder {
    pub clock: RunClock,
    writer: Mutex<HistoryWriter>,
    next_op: AtomicU64,
    next_process: AtomicU64,
}

impl Recorder {
    pub fn new(clock: RunClock, writer: HistoryWriter) -> Arc<Self> {
        Arc::new(Self {
            clock,
            writer: Mutex::new(writer),
            next_op: AtomicU64::new(1),
            next_process: AtomicU64::new(1),
        })
    }

    pub fn op_id(&self) -> u64 {
        self.next_op.fetch_add(1, Ordering::Relaxed)
    }

    /// A new process id (a client after an `info`, a consumer stream, ...).
    pub fn process(&self) -> u64 {
        self.next_process.fetch_add(1, Ordering::Relaxed)
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, HistoryWriter> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn op(&self, op: &Operation) -> Result<()> {
        Ok(self.writer().write_op(op)?)
    }

    /// Records one attempt at appending `value` (never a retry: each attempt has its own value),
    /// completed now.
    pub fn append(
        &self,
        process: u64,
        invoke_ns: u64,
        value: String,
        result: OpResult,
        offset: Option<u64>,
    ) -> Result<()> {
        self.op(&Operation {
            id: self.op_id(),
            process,
            invoke_ns,
            complete_ns: self.clock.now_ns(),
            result,
            op: OpKind::Append {
                value,
                offset,
                retry_of: None,
            },
        })
    }

    pub fn consumer(&self, run: &ConsumerRun) -> Result<()> {
        Ok(self.writer().write_consumer(run)?)
    }

    pub fn final_log(&self, log: &FinalLog) -> Result<()> {
        Ok(self.writer().write_final_log(log)?)
    }

    /// The history is complete: every final log there is was recorded.
    pub fn end(&self, nodes: usize) -> Result<()> {
        Ok(self
            .writer()
            .write_end(&crate::history::EndOfRun { nodes })?)
    }

    pub fn flush(&self) -> Result<()> {
        Ok(self.writer().flush()?)
    }
}

/// Settings shared by the clients.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    pub endpoints: Endpoints,
    /// Deadline of one operation.
    pub op_timeout: Duration,
}

pub(crate) fn client(settings: &ClientSettings, node: usize) -> Result<LogClient<Channel>> {
    Ok(LogClient::new(
        settings.endpoints.channel(node, CONNECT_TIMEOUT)?,
    ))
}

/// One append attempt of `value` on `log`: `(result, offset)`.
pub async fn append_once(
    log: &mut LogClient<Channel>,
    value: &str,
    deadline: Duration,
) -> (OpResult, Option<u64>) {
    let request = ProduceRequest {
        record: Some(WireRecord {
            value: value.as_bytes().to_vec().into(),
            ..Default::default()
        }),
    };
    match timeout(deadline, log.produce(request)).await {
        Ok(Ok(response)) => (OpResult::Ok, Some(response.into_inner().offset)),
        Ok(Err(status)) if produce_not_executed(&status) => (OpResult::Fail, None),
        Ok(Err(_)) | Err(_) => (OpResult::Info, None),
    }
}

/// Appends `wWORKER-SEQ` values every `period` until `stop`, first to node `node`, then, after
/// each append that did not succeed, to a random other node.
pub async fn append_client(
    worker: usize,
    mut node: usize,
    period: Duration,
    settings: ClientSettings,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> Result<()> {
    let mut process = rec.process();
    let mut log = client(&settings, node)?;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    for seq in 0.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let value = format!("w{worker}-{seq}");
        let invoke_ns = rec.clock.now_ns();
        let (result, offset) = append_once(&mut log, &value, settings.op_timeout).await;
        rec.append(process, invoke_ns, value, result, offset)?;
        if result == OpResult::Info {
            process = rec.process();
        }
        if result != OpResult::Ok {
            node = other_node(node, settings.endpoints.addrs.len());
            log = client(&settings, node)?;
        }
    }
    Ok(())
}

/// A random node other than `node` (`node` itself in a cluster of one).
pub(crate) fn other_node(node: usize, nodes: usize) -> usize {
    if nodes < 2 {
        return node;
    }
    (node + rand::rng().random_range(1..nodes)) % nodes
}

/// A periodic prober: one connection per node, a tick every `period`, a random node per tick,
/// and a new process (on a new connection) after an `info` outcome — shared by the bounds
/// poller and the linearizable reader.
#[derive(Debug)]
pub struct Prober {
    /// One client per node.
    pub clients: Vec<LogClient<Channel>>,
    /// The history process the next operation belongs to.
    pub process: u64,
    tick: tokio::time::Interval,
}

impl Prober {
    /// Connects to every node of `settings` and starts the ticks.
    pub fn new(period: Duration, settings: &ClientSettings, rec: &Recorder) -> Result<Self> {
        let clients = (0..settings.endpoints.addrs.len())
            .map(|i| client(settings, i))
            .collect::<Result<_>>()?;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Ok(Self {
            clients,
            process: rec.process(),
            tick,
        })
    }

    /// Waits for the next tick and picks a node, or `None` once `stop` is cancelled.
    pub async fn next(&mut self, stop: &CancellationToken) -> Option<usize> {
        tokio::select! {
            _ = self.tick.tick() => Some(rand::rng().random_range(0..self.clients.len())),
            _ = stop.cancelled() => None,
        }
    }

    /// After an operation on `node` with `result`: an `info` call may still be in flight, so
    /// later operations are another process, on a new connection.
    pub fn after(
        &mut self,
        result: OpResult,
        node: usize,
        settings: &ClientSettings,
        rec: &Recorder,
    ) -> Result<()> {
        if result == OpResult::Info {
            self.process = rec.process();
            self.clients[node] = client(settings, node)?;
        }
        Ok(())
    }
}

/// Asks a random node for the linearizable bounds every `period` until `stop`.
pub async fn bounds_poller(
    period: Duration,
    settings: ClientSettings,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> Result<()> {
    let mut prober = Prober::new(period, &settings, &rec)?;
    while let Some(node) = prober.next(&stop).await {
        let invoke_ns = rec.clock.now_ns();
        let request = GetLogBoundsRequest {
            consistency: WireConsistency::Linearizable as i32,
        };
        let answer = timeout(
            settings.op_timeout,
            prober.clients[node].get_log_bounds(request),
        )
        .await;
        let (result, lowest, next) = match answer {
            Ok(Ok(b)) => {
                let b = b.into_inner();
                (OpResult::Ok, Some(b.lowest_offset), Some(b.next_offset))
            }
            // A read changes nothing: an error is a failed read.
            Ok(Err(_)) => (OpResult::Fail, None, None),
            Err(_) => (OpResult::Info, None, None),
        };
        rec.op(&Operation {
            id: rec.op_id(),
            process: prober.process,
            invoke_ns,
            complete_ns: rec.clock.now_ns(),
            result,
            op: OpKind::Bounds {
                node: Some(settings.endpoints.names[node].clone()),
                consistency: Consistency::Linearizable,
                lowest,
                next,
            },
        })?;
        prober.after(result, node, &settings, &rec)?;
    }
    Ok(())
}

/// Follows the log from offset 0, starting on node `first`; a stream that ends, fails or
/// brings nothing for `stall` is recorded and the consumer moves on to the next node, resuming
/// after the last record it received. Returns how many records it received.
pub async fn consumer(
    first: usize,
    stall: Duration,
    settings: ClientSettings,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> Result<u64> {
    let nodes = settings.endpoints.addrs.len();
    let mut node = first;
    let mut next = 0u64;
    let mut total = 0;
    while !stop.is_cancelled() {
        let mut run = ConsumerRun {
            consumer: rec.process(),
            node: Some(settings.endpoints.names[node].clone()),
            start: Some(next),
            records: Vec::new(),
        };
        let mut log = client(&settings, node)?;
        let opened = tokio::select! {
            s = timeout(settings.op_timeout, log.consume_stream(ConsumeRequest { offset: next })) => s,
            _ = stop.cancelled() => break,
        };
        if let Ok(Ok(stream)) = opened {
            let mut stream = stream.into_inner();
            loop {
                let item = tokio::select! {
                    item = timeout(stall, stream.message()) => item,
                    _ = stop.cancelled() => break,
                };
                let Ok(Ok(Some(response))) = item else { break };
                let Some(record) = response.record else { break };
                next = record.offset + 1;
                run.records.push(Record::new(
                    record.offset,
                    String::from_utf8_lossy(&record.value).into_owned(),
                ));
            }
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        total += run.records.len() as u64;
        if !run.records.is_empty() {
            rec.consumer(&run)?;
        }
        node = (node + 1) % nodes;
    }
    Ok(total)
}

/// After healing: appends until one append succeeds within `within`, trying the nodes in turn.
/// Every attempt is recorded (each with its own value).
pub async fn final_append(
    settings: &ClientSettings,
    rec: &Recorder,
    within: Duration,
) -> Result<u64> {
    let deadline = tokio::time::Instant::now() + within;
    let nodes = settings.endpoints.addrs.len();
    for attempt in 0usize.. {
        let node = attempt % nodes;
        let value = format!("final-{attempt}");
        let mut log = client(settings, node)?;
        let invoke_ns = rec.clock.now_ns();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (result, offset) = append_once(&mut log, &value, left.min(settings.op_timeout)).await;
        rec.append(rec.process(), invoke_ns, value, result, offset)?;
        if let Some(offset) = offset {
            return Ok(offset);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("no append succeeded within {within:?} after healing ({attempt} attempts)");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    unreachable!()
}

/// Node `i`'s local bounds `(lowest, next)`.
/// Node `i`'s records `lowest..next`, read with `ConsumeStream`.
async fn read_records(
    settings: &ClientSettings,
    i: usize,
    lowest: u64,
    next: u64,
) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    if next > lowest {
        let mut stream = client(settings, i)?
            .consume_stream(ConsumeRequest { offset: lowest })
            .await
            .with_context(|| format!("reading n{i}'s log"))?
            .into_inner();
        while let Some(response) = timeout(Duration::from_secs(10), stream.message())
            .await
            .with_context(|| format!("reading n{i}'s log: stalled"))??
        {
            let record = response.record.context("empty response")?;
            records.push(Record::new(
                record.offset,
                String::from_utf8_lossy(&record.value).into_owned(),
            ));
            if record.offset + 1 >= next {
                break;
            }
        }
    }
    Ok(records)
}

/// Reads node `i`'s whole log and records it as a local `read`: what a node serves (after its
/// disk was damaged, say) is checked like every read — each value at its offset, no value nobody
/// appended. A read that fails is recorded as `info`. Returns what happened.
pub async fn probe_read(settings: &ClientSettings, rec: &Recorder, i: usize) -> Result<String> {
    let invoke_ns = rec.clock.now_ns();
    let read = async {
        let (lowest, next) = local_bounds(settings, i).await?;
        let records = read_records(settings, i, lowest, next).await?;
        anyhow::Ok((lowest, next, records))
    }
    .await;
    let node = Some(settings.endpoints.names[i].clone());
    let (result, from, to, records, outcome) = match read {
        Ok((lowest, next, records)) => {
            let outcome = format!("it served its whole log ({} records)", records.len());
            (OpResult::Ok, lowest, Some(next), Some(records), outcome)
        }
        Err(e) => (
            OpResult::Info,
            0,
            None,
            None,
            format!("reading its log failed: {e:#}"),
        ),
    };
    rec.op(&Operation {
        id: rec.op_id(),
        process: rec.process(),
        invoke_ns,
        complete_ns: rec.clock.now_ns(),
        result,
        op: OpKind::Read {
            node,
            consistency: Consistency::Local,
            from,
            to,
            records,
        },
    })?;
    Ok(outcome)
}

async fn local_bounds(settings: &ClientSettings, i: usize) -> Result<(u64, u64)> {
    let request = GetLogBoundsRequest {
        consistency: WireConsistency::Local as i32,
    };
    let b = timeout(
        settings.op_timeout,
        client(settings, i)?.get_log_bounds(request),
    )
    .await
    .context("local bounds: timeout")??
    .into_inner();
    Ok((b.lowest_offset, b.next_offset))
}

/// Waits until every node's local bounds agree (or `wait` passes), then reads each node's log
/// from its lowest offset up to its local `next` with `ConsumeStream`.
/// With `skip_silent`, nodes that do not answer are left out instead of failing the read (a
/// cluster that did not recover: the checker then sees what the others hold).
pub async fn read_final_logs(
    settings: &ClientSettings,
    wait: Duration,
    skip_silent: bool,
) -> Result<Vec<FinalLog>> {
    let nodes = settings.endpoints.addrs.len();
    let deadline = tokio::time::Instant::now() + wait;
    let mut bounds = Vec::new();
    loop {
        bounds.clear();
        for i in 0..nodes {
            bounds.push(local_bounds(settings, i).await.ok());
        }
        let all_equal = bounds.iter().all(|b| b.is_some() && *b == bounds[0]);
        if all_equal || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut logs = Vec::new();
    for (i, b) in bounds.iter().enumerate() {
        if b.is_none() && skip_silent {
            println!("n{i} does not answer: no final log from it");
            continue;
        }
        let (lowest, next) = b.with_context(|| format!("node n{i} does not answer its bounds"))?;
        let records = read_records(settings, i, lowest, next).await?;
        logs.push(FinalLog {
            node: settings.endpoints.names[i].clone(),
            lowest,
            committed_next: Some(next),
            records,
        });
    }
    Ok(logs)
}
