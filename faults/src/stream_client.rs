//! [`stream_client`]: a `ProduceStream` client for the fault runs. Every `period` it sends a burst
//! of records (`sW-S`: worker, sequence) back to back on one open stream, so the node receiving
//! them has several appends of the stream in flight at once, and records each record as its own
//! append operation (its own process: the history's processes are sequential) from the moment it
//! was sent to its acknowledgement.
//!
//! What a stream promises, and how its outcomes are recorded:
//! - acknowledgements come in request order, with rising offsets — a stream whose offsets go
//!   backwards ends the run with an error (the checker's real-time rule cannot see a reorder
//!   between two records in flight together);
//! - when the stream fails, every record sent and not acknowledged is `fail` only if the status
//!   carries the not-executed mark (the node then promises that none of them was appended), and
//!   `info` otherwise; so is every record still unacknowledged after the operation timeout (the
//!   stream is then dropped), or when the run stops. After a failure the client opens a new
//!   stream on another node.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use proglog_proto::log::v1::{ProduceRequest, ProduceResponse, Record as WireRecord};
use proglog_proto::retry::says_not_executed;
use tokio::sync::mpsc;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::history::OpResult;
use crate::workload::{ClientSettings, Recorder, client, other_node};

/// A record sent and not yet acknowledged.
struct Sent {
    value: String,
    invoke_ns: u64,
}

/// How one stream ended.
enum Ended {
    /// The run is over (every record had its outcome recorded).
    Stopped,
    /// The stream failed or stalled; the client moves to another node.
    Failed,
}

/// Sends bursts of `burst` records every `period` on streams to `node` (then to other nodes
/// after each failure) until `stop`.
pub async fn stream_client(
    worker: usize,
    mut node: usize,
    period: Duration,
    burst: usize,
    settings: ClientSettings,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> Result<()> {
    let mut seq = 0u64;
    loop {
        if stop.is_cancelled() {
            return Ok(());
        }
        match one_stream(
            worker, node, period, burst, &mut seq, &settings, &rec, &stop,
        )
        .await?
        {
            Ended::Stopped => return Ok(()),
            Ended::Failed => node = other_node(node, settings.endpoints.addrs.len()),
        }
    }
}

#[allow(clippy::too_many_arguments)] // one stream's loop: the client's settings, spelled out
async fn one_stream(
    worker: usize,
    node: usize,
    period: Duration,
    burst: usize,
    seq: &mut u64,
    settings: &ClientSettings,
    rec: &Recorder,
    stop: &CancellationToken,
) -> Result<Ended> {
    let mut log = client(settings, node)?;
    let (tx, rx) = mpsc::channel::<ProduceRequest>(burst.max(1) * 4);
    let opened = timeout(
        settings.op_timeout,
        log.produce_stream(ReceiverStream::new(rx)),
    )
    .await;
    let mut acks = match opened {
        Ok(Ok(response)) => response.into_inner(),
        // Nothing was sent: nothing to record. Wait a tick before the next node.
        Ok(Err(_)) | Err(_) => {
            tokio::select! {
                _ = tokio::time::sleep(period) => {}
                _ = stop.cancelled() => {}
            }
            return Ok(Ended::Failed);
        }
    };
    let mut sent: VecDeque<Sent> = VecDeque::new();
    let mut last_offset: Option<u64> = None;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut tx = Some(tx);
    loop {
        // A record unacknowledged for the operation timeout means the stream stalled.
        let patience = if sent.is_empty() {
            Duration::MAX
        } else {
            settings.op_timeout
        };
        tokio::select! {
            _ = tick.tick(), if tx.is_some() => {
                let sender = tx.as_ref().expect("guarded");
                for _ in 0..burst {
                    let value = format!("s{worker}-{seq}");
                    *seq += 1;
                    let request = ProduceRequest {
                        record: Some(WireRecord {
                            value: value.clone().into_bytes().into(),
                            ..Default::default()
                        }),
                    };
                    let invoke_ns = rec.clock.now_ns();
                    // Never wait here (a node that stopped reading must not stall the loop):
                    // a record that does not fit is not sent, and the burst ends.
                    if sender.try_send(request).is_err() {
                        break;
                    }
                    sent.push_back(Sent { value, invoke_ns });
                }
            }
            _ = stop.cancelled(), if tx.is_some() => {
                // Send nothing more; collect the acknowledgements of what was sent.
                tx = None;
            }
            answer = timeout(patience, acks.message()) => {
                match answer {
                    Ok(Ok(Some(ack))) => {
                        acknowledged(rec, &mut sent, &mut last_offset, &ack, node)?;
                    }
                    Ok(Ok(None)) => {
                        // The node ended the stream: only after our side closed it.
                        unknown_outcomes(rec, &mut sent, OpResult::Info)?;
                        return Ok(if tx.is_none() { Ended::Stopped } else { Ended::Failed });
                    }
                    Ok(Err(status)) => {
                        unknown_outcomes(rec, &mut sent, failed_result(&status))?;
                        return Ok(if stop.is_cancelled() { Ended::Stopped } else { Ended::Failed });
                    }
                    Err(_) => {
                        unknown_outcomes(rec, &mut sent, OpResult::Info)?;
                        return Ok(if stop.is_cancelled() { Ended::Stopped } else { Ended::Failed });
                    }
                }
            }
        }
    }
}

/// Records the acknowledgement of the oldest record sent.
fn acknowledged(
    rec: &Recorder,
    sent: &mut VecDeque<Sent>,
    last_offset: &mut Option<u64>,
    ack: &ProduceResponse,
    node: usize,
) -> Result<()> {
    let Some(record) = sent.pop_front() else {
        bail!(
            "node {node} acknowledged offset {} on a stream with nothing unacknowledged",
            ack.offset
        );
    };
    if let Some(last) = *last_offset
        && ack.offset <= last
    {
        bail!(
            "a stream's acknowledgements went backwards on node {node}: {} got offset {} after \
             offset {last}",
            record.value,
            ack.offset
        );
    }
    *last_offset = Some(ack.offset);
    rec.append(
        rec.process(),
        record.invoke_ns,
        record.value,
        OpResult::Ok,
        Some(ack.offset),
    )
}

/// What a stream's failure says about its unacknowledged records.
fn failed_result(status: &Status) -> OpResult {
    if says_not_executed(status) {
        OpResult::Fail
    } else {
        OpResult::Info
    }
}

/// Records every unacknowledged record with `result`.
fn unknown_outcomes(rec: &Recorder, sent: &mut VecDeque<Sent>, result: OpResult) -> Result<()> {
    for record in sent.drain(..) {
        rec.append(rec.process(), record.invoke_ns, record.value, result, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use tonic::metadata::MetadataMap;

    use super::*;
    use crate::history::RunClock;
    use crate::jsonl::HistoryWriter;

    fn recorder(dir: &tempfile::TempDir) -> Arc<Recorder> {
        let writer = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
        Recorder::new(RunClock::start(), writer)
    }

    fn sent(values: &[&str]) -> VecDeque<Sent> {
        values
            .iter()
            .map(|v| Sent {
                value: (*v).to_owned(),
                invoke_ns: 0,
            })
            .collect()
    }

    #[test]
    fn acknowledgements_must_rise() {
        let dir = tempfile::tempdir().unwrap();
        let rec = recorder(&dir);
        let mut pending = sent(&["s0-0", "s0-1", "s0-2"]);
        let mut last = None;
        let ack = |offset| ProduceResponse { offset };
        acknowledged(&rec, &mut pending, &mut last, &ack(7), 0).unwrap();
        acknowledged(&rec, &mut pending, &mut last, &ack(9), 0).unwrap();
        let error = acknowledged(&rec, &mut pending, &mut last, &ack(8), 0).unwrap_err();
        assert!(error.to_string().contains("went backwards"), "{error}");
        let error = acknowledged(&rec, &mut pending, &mut last, &ack(10), 0).unwrap_err();
        assert!(
            error.to_string().contains("nothing unacknowledged"),
            "{error}"
        );
    }

    #[test]
    fn only_a_marked_failure_makes_the_unacknowledged_records_failed() {
        let mut metadata = MetadataMap::new();
        metadata.insert("proglog-outcome", "not-executed".parse().unwrap());
        let marked = Status::with_metadata(tonic::Code::Unavailable, "no leader", metadata);
        assert_eq!(failed_result(&marked), OpResult::Fail);
        assert_eq!(
            failed_result(&Status::unavailable("may or may not have been committed")),
            OpResult::Info
        );
    }
}
