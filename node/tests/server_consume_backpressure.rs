//! ConsumeStream back-pressure against a real `proglog-node` process: a consumer that opens a
//! stream over a ~50 MB log and reads nothing must not make the server buffer the log in memory
//! (its anonymous resident memory is measured through `/proc`); once it reads, every record
//! arrives, in order.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proglog_cli::dev_ca::write_dev_certs;
use proglog_node::tls::{ClientTlsFiles, client_tls_config};
use proglog_proto::log::v1::log_client::LogClient;
use proglog_proto::log::v1::{ConsumeRequest, GetLogBoundsRequest, ProduceBatchRequest, Record};
use tonic::transport::{Channel, Endpoint};

mod node_process;

use node_process::{NODE, free_port, node_args};

/// Generous bound for anything the test waits for.
const PATIENCE: Duration = Duration::from_secs(60);
const RECORD_BYTES: usize = 16 * 1024;
const RECORDS: u64 = 3200; // 50 MiB of values
const BATCH: u64 = 64;

/// The node process; killed if the test fails before stopping it.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl NodeProcess {
    fn start(dir: &Path, port: u16) -> Self {
        let child = Command::new(NODE)
            .args(node_args(dir, port, free_port()))
            .arg("--shutdown-grace")
            .arg("1s")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn proglog-node");
        Self(child)
    }

    /// Anonymous resident memory (heap, stacks; not the page cache of mapped log files), bytes.
    fn rss_anon(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id()))
            .expect("read /proc/PID/status");
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("RssAnon:"))
            .expect("RssAnon line")
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .expect("RssAnon value");
        kib * 1024
    }

    /// SIGTERM, then waits for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success());
        let exit = self.0.wait().expect("wait for the node");
        assert!(exit.success(), "node exits cleanly: {exit:?}");
    }
}

/// Connects as `root` once the node answers.
async fn client_when_up(dir: &Path, port: u16) -> LogClient<Channel> {
    let certs = dir.join("certs");
    let tls = client_tls_config(&ClientTlsFiles {
        ca: certs.join("ca.pem"),
        cert: Some(certs.join("root.pem")),
        key: Some(certs.join("root-key.pem")),
        server_name: Some("localhost".to_owned()),
    })
    .expect("client tls");
    let endpoint = Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls config");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut client = LogClient::new(channel)
                .max_decoding_message_size(8 * 1024 * 1024)
                .max_encoding_message_size(8 * 1024 * 1024);
            if client
                .get_log_bounds(GetLogBoundsRequest::default())
                .await
                .is_ok()
            {
                return client;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "node never came up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of the record at `offset`: recognisable, so order and content can be checked.
fn value_at(offset: u64) -> Vec<u8> {
    let mut value = vec![(offset % 251) as u8; RECORD_BYTES];
    value[..8].copy_from_slice(&offset.to_be_bytes());
    value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_does_not_read_does_not_make_the_server_buffer_the_log() {
    let dir = tempfile::tempdir().expect("temporary directory");
    write_dev_certs(&dir.path().join("certs")).expect("dev certificates");
    let port = free_port();

    let node = NodeProcess::start(dir.path(), port);
    let mut client = client_when_up(dir.path(), port).await;
    for first in (0..RECORDS).step_by(BATCH as usize) {
        let records = (first..first + BATCH)
            .map(|offset| Record {
                value: value_at(offset).into(),
                ..Default::default()
            })
            .collect();
        let reply = client
            .produce_batch(ProduceBatchRequest { records })
            .await
            .expect("produce a batch")
            .into_inner();
        assert_eq!(reply.first_offset, first);
    }
    drop(client);
    // A fresh process, so the baseline is not inflated (or padded with reusable free heap) by
    // the produce path.
    node.stop();
    let node = NodeProcess::start(dir.path(), port);
    let mut client = client_when_up(dir.path(), port).await;
    let baseline = node.rss_anon();

    let mut stream = client
        .consume_stream(ConsumeRequest { offset: 0 })
        .await
        .expect("open ConsumeStream")
        .into_inner();
    let first = tokio::time::timeout(PATIENCE, stream.message())
        .await
        .expect("first record arrives")
        .expect("stream ok")
        .expect("stream open")
        .record
        .expect("record");
    assert_eq!(first.offset, 0);

    // Read nothing for a while, sampling the server's memory; an unbounded server would read the
    // whole log into its send queue meanwhile.
    let mut peak = baseline;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(node.rss_anon());
    }
    let log_bytes = RECORDS * RECORD_BYTES as u64;
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "RssAnon baseline {} KiB, peak while not reading {} KiB (+{} KiB; log {} KiB)",
        baseline / 1024,
        peak / 1024,
        growth / 1024,
        log_bytes / 1024
    );
    assert!(
        growth < log_bytes * 2 / 5,
        "the server buffered {growth} bytes for a consumer that reads nothing (log: {log_bytes})"
    );

    // Now read everything: every record, in order, with its content.
    for offset in 1..RECORDS {
        let record = tokio::time::timeout(PATIENCE, stream.message())
            .await
            .expect("records keep coming")
            .expect("stream ok")
            .expect("stream open")
            .record
            .expect("record");
        assert_eq!(record.offset, offset, "records in offset order");
        assert!(
            record.value.as_ref() == value_at(offset).as_slice(),
            "content of record {offset}"
        );
    }
    drop(stream);
    drop(client);
    node.stop();
}
