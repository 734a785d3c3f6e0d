//! Steady consumers: each reads the log from its lowest offset onward, one `Consume` at a time through
//! the client Service, waiting at the end of the log, for as long as a scenario disturbs the
//! cluster (the reading half of "produce and consume continuously").
//!
//! A read is idempotent, so every failed read is retried; what matters is why it failed. A
//! failure before the request reached a node (`proglog_proto::retry::is_connect_failure`: a
//! refused connection, a failed handshake, the server's certificate alert) or a node's
//! not-executed refusal is what a client meets while the cluster moves and is recorded as a
//! retry; any other error — the request reached a node and failed there, or the connection broke
//! under it — is recorded as a failure. Consumers connect with the [`Credentials`] of the moment
//! and reconnect between two reads when they changed.

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use proglog_proto::{
    log::v1::{Consistency, ConsumeRequest, GetLogBoundsRequest, log_client::LogClient},
    retry::{is_connect_failure, produce_not_executed},
};
use tokio::{sync::watch, task::JoinHandle, time::Instant};
use tonic::{Code, transport::Channel};

use crate::{
    E2eError,
    credentials::Credentials,
    load::{Ack, error_chain},
    log_client,
    port_forward::SharedForward,
    wait::{Check, until},
};

/// A record read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    /// Its offset.
    pub offset: u64,
    /// Its value.
    pub value: Bytes,
}

/// A read that failed after it reached a node.
#[derive(Debug, Clone)]
pub struct ReadFailure {
    /// The offset asked for.
    pub offset: u64,
    /// The error.
    pub error: String,
    /// Since the consumers started.
    pub at: Duration,
}

/// Everything the consumers did.
#[derive(Debug, Default, Clone)]
pub struct ReadHistory {
    /// Records read, per consumer in offset order.
    pub reads: Vec<Read>,
    /// Reads retried because they failed before reaching a node (or were refused unexecuted),
    /// by error.
    pub retried: BTreeMap<String, u64>,
    /// Reads that failed after reaching a node (retried too, but a failed request).
    pub failures: Vec<ReadFailure>,
}

impl ReadHistory {
    /// One line for the test output.
    pub fn summary(&self) -> String {
        format!(
            "{} records read, {} retried before reaching a node {:?}, {} failed requests",
            self.reads.len(),
            self.retried.values().sum::<u64>(),
            self.retried,
            self.failures.len()
        )
    }

    /// Checks every read against the acknowledged records: a value that was acknowledged was
    /// read at the offset of its acknowledgement. Returns how many reads were checked so.
    pub fn check_against(&self, acks: &[Ack]) -> Result<usize, String> {
        let acked: BTreeMap<&Bytes, u64> = acks.iter().map(|a| (&a.value, a.offset)).collect();
        let mut checked = 0;
        for read in &self.reads {
            if let Some(&offset) = acked.get(&read.value) {
                if offset != read.offset {
                    return Err(format!(
                        "{:?} was read at offset {} but acknowledged at {offset}",
                        String::from_utf8_lossy(&read.value),
                        read.offset
                    ));
                }
                checked += 1;
            }
        }
        Ok(checked)
    }
}

/// Running consumers; [`ConsumeLoad::stop`] ends them.
#[derive(Debug)]
pub struct ConsumeLoad {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<ReadHistory>>,
    read: Arc<AtomicU64>,
}

impl ConsumeLoad {
    /// Starts `consumers` readers through `forward` with `credentials`, each pausing
    /// `idle` at the end of the log.
    pub fn start(
        forward: Arc<SharedForward>,
        credentials: &Credentials,
        consumers: usize,
        idle: Duration,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let read = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let tasks = (0..consumers)
            .map(|_| {
                tokio::spawn(consume(
                    forward.clone(),
                    credentials.clone(),
                    idle,
                    read.clone(),
                    started,
                    stopped.clone(),
                ))
            })
            .collect();
        Self { stop, tasks, read }
    }

    /// Records read so far (all consumers).
    pub fn read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// Waits until `more` records beyond the current count are read.
    pub async fn wait_for_progress(&self, more: u64, timeout: Duration) -> Result<(), E2eError> {
        let target = self.read() + more;
        until(&format!("{more} more records read"), timeout, || async {
            let now = self.read();
            Ok(if now >= target {
                Check::Done(())
            } else {
                Check::NotYet(format!("{now} read, want {target}"))
            })
        })
        .await
    }

    /// Stops every consumer and returns the merged history.
    pub async fn stop(self) -> ReadHistory {
        let _ = self.stop.send(true);
        let mut history = ReadHistory::default();
        for task in self.tasks {
            match task.await {
                Ok(part) => {
                    history.reads.extend(part.reads);
                    history.failures.extend(part.failures);
                    for (error, count) in part.retried {
                        *history.retried.entry(error).or_default() += count;
                    }
                }
                Err(err) => history.failures.push(ReadFailure {
                    offset: 0,
                    error: format!("consumer task failed: {err}"),
                    at: Duration::ZERO,
                }),
            }
        }
        history
    }
}

async fn consume(
    forward: Arc<SharedForward>,
    credentials: Credentials,
    idle: Duration,
    read: Arc<AtomicU64>,
    started: Instant,
    mut stopped: watch::Receiver<bool>,
) -> ReadHistory {
    let mut history = ReadHistory::default();
    let mut client: Option<(LogClient<Channel>, u64)> = None;
    // Where the log starts, asked of the first node reached.
    let mut next: Option<u64> = None;
    let mut pause = Duration::ZERO;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
        pause = Duration::ZERO;
        if client
            .as_ref()
            .is_some_and(|(_, version)| *version != credentials.version())
        {
            client = None;
        }
        let Some((log, _)) = client.as_mut() else {
            let Ok((port, generation)) = forward.port().await else {
                pause = Duration::from_millis(500);
                continue;
            };
            let current = credentials.current();
            match log_client::connect(port, &current.ca_pem, &current.identity).await {
                Ok(connected) => client = Some((connected, current.version)),
                Err(err) => {
                    let _ = forward.restart(generation).await;
                    *history
                        .retried
                        .entry(format!("connect: {}", error_chain(&err)))
                        .or_default() += 1;
                    pause = Duration::from_millis(500);
                }
            }
            continue;
        };
        let result = match next {
            None => log
                .get_log_bounds(GetLogBoundsRequest {
                    consistency: Consistency::Local as i32,
                })
                .await
                .map(|bounds| {
                    next = Some(bounds.into_inner().lowest_offset);
                    None
                }),
            Some(offset) => {
                let mut request = tonic::Request::new(ConsumeRequest { offset });
                request.set_timeout(Duration::from_secs(10));
                log.consume(request).await.map(Some)
            }
        };
        let offset = next.unwrap_or_default();
        match result {
            Ok(None) => {}
            Ok(Some(response)) => {
                let value = response.into_inner().record.unwrap_or_default().value;
                history.reads.push(Read { offset, value });
                read.fetch_add(1, Ordering::Relaxed);
                next = Some(offset + 1);
            }
            // The end of the log (of the node that answered): wait for more.
            Err(status) if status.code() == Code::OutOfRange => pause = idle,
            Err(status) => {
                let error = format!("{:?}: {}", status.code(), status.message());
                if is_connect_failure(&status) || produce_not_executed(&status) {
                    *history.retried.entry(error).or_default() += 1;
                } else {
                    history.failures.push(ReadFailure {
                        offset,
                        error,
                        at: started.elapsed(),
                    });
                }
                client = None;
                pause = Duration::from_millis(200);
            }
        }
    }
    history
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(value: &str, offset: u64) -> Ack {
        Ack {
            value: Bytes::from(value.to_owned()),
            offset,
            at: Duration::ZERO,
        }
    }

    fn read(value: &str, offset: u64) -> Read {
        Read {
            value: Bytes::from(value.to_owned()),
            offset,
        }
    }

    #[test]
    fn a_read_must_find_an_acknowledged_value_at_its_offset() {
        let acks = [ack("a", 0), ack("b", 1)];
        let good = ReadHistory {
            reads: vec![read("a", 0), read("b", 1), read("unacknowledged", 2)],
            ..ReadHistory::default()
        };
        assert_eq!(good.check_against(&acks), Ok(2));
        let moved = ReadHistory {
            reads: vec![read("b", 0)],
            ..ReadHistory::default()
        };
        assert!(moved.check_against(&acks).is_err());
    }
}
