//! Linearizable record reads of the workload ([`linearizable_reader`]): at a steady rate, read
//! the tail of the log through a random node (leader or follower) and record it as a `read` op
//! with `consistency: linearizable`, which the checker holds to property 5 (every append
//! acknowledged before the read was invoked is returned, with its value).
//!
//! `ConsumeRequest` has no consistency field: `Consume` and `ConsumeStream` serve the answering
//! node's committed log, which on a follower may trail the leader. A linearizable read is
//! therefore made the way a client of the node's API makes one: first
//! `GetLogBounds(LINEARIZABLE)` on the chosen node (a read-index confirmed by a quorum; a
//! follower forwards it to the leader), whose `next` is past every append acknowledged before
//! it; then `ConsumeStream` on the same node from a recent offset up to that `next` (the stream
//! waits for a trailing follower to commit them). Committed offsets never change value, so the
//! records are the log's at the read-index. The read is recorded with no upper bound (`to`
//! absent: "to the end"), so the checker also catches a stale `next`: an acknowledged offset at
//! or above it is missing from the records.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{Consistency as WireConsistency, ConsumeRequest, GetLogBoundsRequest};

use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

use crate::history::{Consistency, OpKind, OpResult, Operation, Record};
use crate::workload::{ClientSettings, Prober, Recorder};

/// How far below the log's end a read starts (the tail: what is being appended and replicated
/// right now, where a stale read would show).
pub const TAIL: u64 = 32;

/// What one read returned: `(result, from, records)`.
type Outcome = (OpResult, u64, Option<Vec<Record>>);

/// Reads the last [`TAIL`] records linearizably through a random node every `period` until
/// `stop`.
pub async fn linearizable_reader(
    period: Duration,
    settings: ClientSettings,
    rec: Arc<Recorder>,
    stop: CancellationToken,
) -> Result<()> {
    let mut prober = Prober::new(period, &settings, &rec)?;
    while let Some(node) = prober.next(&stop).await {
        let invoke_ns = rec.clock.now_ns();
        let deadline = Instant::now() + settings.op_timeout;
        let (result, from, records) = read_tail(&mut prober.clients[node], deadline).await;
        rec.op(&Operation {
            id: rec.op_id(),
            process: prober.process,
            invoke_ns,
            complete_ns: rec.clock.now_ns(),
            result,
            op: OpKind::Read {
                node: Some(settings.endpoints.names[node].clone()),
                consistency: Consistency::Linearizable,
                from,
                to: None,
                records,
            },
        })?;
        prober.after(result, node, &settings, &rec)?;
    }
    Ok(())
}

/// One linearizable tail read on `log`, all of it before `deadline`. A read changes nothing, so
/// an error is `fail`; running out of time is `info` (Jepsen's convention for reads too).
async fn read_tail(log: &mut LogClient<Channel>, deadline: Instant) -> Outcome {
    let request = GetLogBoundsRequest {
        consistency: WireConsistency::Linearizable as i32,
    };
    let bounds = match timeout_at(deadline, log.get_log_bounds(request)).await {
        Ok(Ok(bounds)) => bounds.into_inner(),
        Ok(Err(_)) => return (OpResult::Fail, 0, None),
        Err(_) => return (OpResult::Info, 0, None),
    };
    let next = bounds.next_offset;
    let from = next.saturating_sub(TAIL).max(bounds.lowest_offset);
    if from >= next {
        return (OpResult::Ok, from, Some(Vec::new()));
    }
    let read = async {
        let mut stream = log
            .consume_stream(ConsumeRequest { offset: from })
            .await?
            .into_inner();
        let mut records = Vec::new();
        while let Some(response) = stream.message().await? {
            let Some(record) = response.record else {
                return Err(tonic::Status::internal("a response without a record"));
            };
            let last = record.offset + 1 >= next;
            records.push(Record::new(
                record.offset,
                String::from_utf8_lossy(&record.value).into_owned(),
            ));
            if last {
                return Ok(records);
            }
        }
        Err(tonic::Status::unavailable(
            "the stream ended before the read's end",
        ))
    };
    match timeout_at(deadline, read).await {
        Ok(Ok(records)) => (OpResult::Ok, from, Some(records)),
        Ok(Err(_)) => (OpResult::Fail, from, None),
        Err(_) => (OpResult::Info, from, None),
    }
}
