//! Reads of the log from async code that never wait for the disk on a runtime worker thread.
//!
//! A read first runs where it is called, memory-only ([`Wait::MemoryOnly`]: the kernel answers
//! from the page cache or refuses at once); only when that is refused does it run again on a
//! blocking thread, where waiting for the disk stalls nobody. Recent records — what followers
//! of the log's end read — are in memory, so they cost no thread hand-off; an old record a
//! consumer catches up on costs one, and a whole run of them costs one too.

use proglog_log::{LogError, Wait};

use super::BackendError;

/// Runs `read` memory-only here, and again allowed to wait for the disk on a blocking thread
/// when that is refused.
pub async fn read_off_worker<T, F>(read: F) -> Result<T, BackendError>
where
    T: Send + 'static,
    F: Fn(Wait) -> Result<T, LogError> + Send + 'static,
{
    match read(Wait::MemoryOnly) {
        Err(LogError::NotInMemory) => tokio::task::spawn_blocking(move || read(Wait::Disk))
            .await
            .map_err(|e| BackendError::Storage(format!("the blocking read task failed: {e}")))?
            .map_err(BackendError::from),
        other => other.map_err(BackendError::from),
    }
}

#[cfg(test)]
mod tests {
    use proglog_log::durable_fs::hook::{disk_reads_on, disk_reads_under, drop_from_memory};
    use proglog_proto::log::v1::Record;

    use crate::backend::{LocalBackend, LogBackend};

    /// A consumer catching up on records the page cache dropped: the reads go to the disk on a
    /// blocking thread, never on the runtime's own (on a current-thread runtime every task runs
    /// on the test's thread, so a disk read recorded there would have stalled a worker).
    #[tokio::test(flavor = "current_thread")]
    async fn reads_of_records_not_in_memory_run_off_the_runtime_thread() {
        let runtime_thread = std::thread::current().id();
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::open_default(dir.path());
        let records = (0..50u8)
            .map(|i| Record {
                value: vec![i; 100].into(),
                ..Default::default()
            })
            .collect();
        backend.append(records).await.unwrap();
        drop_from_memory(dir.path());
        let before = disk_reads_under(dir.path());

        let one = backend.read(7).await.unwrap();
        assert_eq!((one.offset, one.value[0]), (7, 7));
        let run = backend.read_run(10, 1 << 20).await.unwrap();
        assert_eq!(
            run.iter().map(|r| r.offset).collect::<Vec<_>>(),
            (10..50).collect::<Vec<_>>()
        );
        assert!(run.iter().all(|r| r.value[0] as u64 == r.offset));
        assert!(backend.read_run(50, 1 << 20).await.unwrap().is_empty());

        let on_runtime = disk_reads_on(dir.path(), runtime_thread);
        assert!(
            on_runtime.is_empty(),
            "disk reads on the runtime's thread: {on_runtime:?}"
        );
        assert_eq!(
            disk_reads_under(dir.path()),
            before + 2,
            "one disk read for the record, one for the run"
        );
        backend.shutdown().await.unwrap();
    }
}
