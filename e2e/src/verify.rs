//! Reads the whole log from every pod (each through its own port-forward, so each pod answers
//! from its own replica) and checks it against what the cluster acknowledged: every
//! acknowledged `(offset, value)` is present on every pod, no value is stored twice, and all
//! pods hold the same record at every offset they share.

use std::{
    collections::{BTreeMap, HashMap},
    time::Duration,
};

use bytes::Bytes;
use proglog_proto::log::v1::{Consistency, ConsumeRequest, GetLogBoundsRequest};

use crate::{
    E2eError,
    load::Ack,
    log_client::{self, PemPair},
    port_forward::PortForward,
    scenario::GRPC_PORT,
    wait::{Check, until},
};

/// The records one pod holds.
#[derive(Debug, Clone)]
pub struct PodLog {
    /// The pod.
    pub pod: String,
    /// Its first offset (retention start).
    pub lowest: u64,
    /// Values by offset, `lowest..next_offset`.
    pub records: Vec<Bytes>,
}

impl PodLog {
    /// One past the last offset held.
    pub fn next_offset(&self) -> u64 {
        self.lowest + self.records.len() as u64
    }

    /// The value at `offset`, if held.
    pub fn get(&self, offset: u64) -> Option<&Bytes> {
        let index = usize::try_from(offset.checked_sub(self.lowest)?).ok()?;
        self.records.get(index)
    }
}

/// The next message of a stream, failing after `timeout`.
async fn next_message<T>(
    stream: &mut tonic::Streaming<T>,
    timeout: Duration,
) -> Result<Option<T>, E2eError> {
    match tokio::time::timeout(timeout, stream.message()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(E2eError::Unexpected(format!(
            "no record within {timeout:?} on the consume stream"
        ))),
    }
}

/// Reads pod `pod`'s whole log once it holds at least `min_next_offset` offsets (a follower may
/// trail the leader for a moment).
pub async fn read_pod(
    namespace: &str,
    pod: &str,
    ca_pem: &str,
    identity: &PemPair,
    min_next_offset: u64,
) -> Result<Check<PodLog>, E2eError> {
    let forward = PortForward::to_pod(namespace, pod, GRPC_PORT, crate::env::api_timeout()).await?;
    let mut log = log_client::connect(forward.local_port, ca_pem, identity).await?;
    let bounds = log
        .get_log_bounds(GetLogBoundsRequest {
            consistency: Consistency::Local as i32,
        })
        .await?
        .into_inner();
    if bounds.next_offset < min_next_offset {
        return Ok(Check::NotYet(format!(
            "pod {pod} holds offsets up to {} only, want {min_next_offset}",
            bounds.next_offset
        )));
    }
    let mut records = Vec::with_capacity(
        usize::try_from(bounds.next_offset - bounds.lowest_offset).unwrap_or_default(),
    );
    if bounds.next_offset > bounds.lowest_offset {
        let mut stream = log
            .consume_stream(ConsumeRequest {
                offset: bounds.lowest_offset,
            })
            .await?
            .into_inner();
        let mut expected = bounds.lowest_offset;
        while expected < bounds.next_offset {
            let record = next_message(&mut stream, Duration::from_secs(30))
                .await?
                .and_then(|response| response.record)
                .ok_or_else(|| {
                    E2eError::Unexpected(format!("pod {pod}: consume stream ended at {expected}"))
                })?;
            if record.offset != expected {
                return Err(E2eError::Unexpected(format!(
                    "pod {pod}: the consume stream returned offset {} where {expected} was due",
                    record.offset
                )));
            }
            records.push(record.value);
            expected += 1;
        }
    }
    Ok(Check::Done(PodLog {
        pod: pod.to_owned(),
        lowest: bounds.lowest_offset,
        records,
    }))
}

/// Reads every pod's log (retrying transient failures until `timeout`) once each holds every
/// acknowledged offset.
pub async fn read_all(
    namespace: &str,
    pods: &[String],
    ca_pem: &str,
    identity: &PemPair,
    acks: &[Ack],
    timeout: Duration,
) -> Result<Vec<PodLog>, E2eError> {
    let min_next = acks.iter().map(|a| a.offset + 1).max().unwrap_or(0);
    let mut logs = Vec::new();
    for pod in pods {
        let log = until(
            &format!("pod {pod} to serve its whole log (at least {min_next} offsets)"),
            timeout,
            || read_pod(namespace, pod, ca_pem, identity, min_next),
        )
        .await?;
        logs.push(log);
    }
    Ok(logs)
}

/// What the check found, for the test output.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Records per pod.
    pub per_pod: Vec<(String, u64, u64)>,
    /// Acknowledged records checked.
    pub acknowledged: usize,
}

impl std::fmt::Display for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged records present on every pod;",
            self.acknowledged
        )?;
        for (pod, lowest, next) in &self.per_pod {
            write!(f, " {pod} holds [{lowest}, {next})")?;
        }
        Ok(())
    }
}

/// Checks the pods' logs against the acknowledged records. Every problem is listed (up to a
/// limit), not just the first.
pub fn check(acks: &[Ack], logs: &[PodLog]) -> Result<Verified, E2eError> {
    const MAX_PROBLEMS: usize = 20;
    let mut problems = Vec::new();
    let mut offsets_of_acked: HashMap<&Bytes, u64> = HashMap::new();
    for ack in acks {
        if let Some(previous) = offsets_of_acked.insert(&ack.value, ack.offset) {
            problems.push(format!(
                "value {:?} was acknowledged twice (offsets {previous} and {})",
                ack.value, ack.offset
            ));
        }
    }
    let mut by_offset: BTreeMap<u64, &Ack> = BTreeMap::new();
    for ack in acks {
        if let Some(other) = by_offset.insert(ack.offset, ack) {
            problems.push(format!(
                "offset {} was acknowledged for two values: {:?} and {:?}",
                ack.offset, other.value, ack.value
            ));
        }
    }
    for log in logs {
        let mut seen: HashMap<&Bytes, u64> = HashMap::new();
        for (index, value) in log.records.iter().enumerate() {
            let offset = log.lowest + index as u64;
            if value.is_empty() {
                continue;
            }
            if let Some(first) = seen.insert(value, offset) {
                problems.push(format!(
                    "pod {}: value {value:?} is stored twice, at offsets {first} and {offset}",
                    log.pod
                ));
            }
        }
        for (offset, ack) in &by_offset {
            match log.get(*offset) {
                Some(value) if *value == ack.value => {}
                Some(value) => problems.push(format!(
                    "pod {}: offset {offset} holds {value:?}, but {:?} was acknowledged there",
                    log.pod, ack.value
                )),
                None => problems.push(format!(
                    "pod {}: acknowledged offset {offset} ({:?}) is missing (pod holds [{}, {}))",
                    log.pod,
                    ack.value,
                    log.lowest,
                    log.next_offset()
                )),
            }
        }
    }
    if let Some((first, rest)) = logs.split_first() {
        for other in rest {
            let start = first.lowest.max(other.lowest);
            let end = first.next_offset().min(other.next_offset());
            for offset in start..end {
                if first.get(offset) != other.get(offset) {
                    problems.push(format!(
                        "pods {} and {} disagree at offset {offset}: {:?} vs {:?}",
                        first.pod,
                        other.pod,
                        first.get(offset),
                        other.get(offset)
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(Verified {
            per_pod: logs
                .iter()
                .map(|log| (log.pod.clone(), log.lowest, log.next_offset()))
                .collect(),
            acknowledged: acks.len(),
        })
    } else {
        let total = problems.len();
        problems.truncate(MAX_PROBLEMS);
        Err(E2eError::Unexpected(format!(
            "the pods' logs do not match the acknowledged records ({total} problems):\n  {}",
            problems.join("\n  ")
        )))
    }
}

/// [`read_all`] then [`check`].
pub async fn verify_everywhere(
    namespace: &str,
    pods: &[String],
    ca_pem: &str,
    identity: &PemPair,
    acks: &[Ack],
    timeout: Duration,
) -> Result<Verified, E2eError> {
    let logs = read_all(namespace, pods, ca_pem, identity, acks, timeout).await?;
    check(acks, &logs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(offset: u64, value: &str) -> Ack {
        Ack {
            value: Bytes::from(value.to_owned()),
            offset,
            at: Duration::ZERO,
        }
    }

    fn log(pod: &str, values: &[&str]) -> PodLog {
        PodLog {
            pod: pod.to_owned(),
            lowest: 0,
            records: values
                .iter()
                .map(|v| Bytes::from((*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn matching_logs_pass() {
        let acks = [ack(0, "a"), ack(2, "c")];
        // "b" was never acknowledged (an unknown outcome that landed): allowed.
        let logs = [
            log("p-0", &["a", "b", "c"]),
            log("p-1", &["a", "b", "c", "d"]),
        ];
        let verified = check(&acks, &logs).unwrap();
        assert_eq!(verified.acknowledged, 2);
    }

    #[test]
    fn a_lost_acknowledged_record_fails() {
        let err = check(&[ack(1, "b")], &[log("p-0", &["a"])]).unwrap_err();
        assert!(err.to_string().contains("offset 1"), "{err}");
    }

    #[test]
    fn a_different_value_at_an_acknowledged_offset_fails() {
        let err = check(&[ack(0, "a")], &[log("p-0", &["x"])]).unwrap_err();
        assert!(err.to_string().contains("holds"), "{err}");
    }

    #[test]
    fn duplicates_and_disagreement_fail() {
        let err = check(&[], &[log("p-0", &["a", "a"])]).unwrap_err();
        assert!(err.to_string().contains("stored twice"), "{err}");
        let err = check(&[], &[log("p-0", &["a", "b"]), log("p-1", &["a", "c"])]).unwrap_err();
        assert!(err.to_string().contains("disagree at offset 1"), "{err}");
    }
}
