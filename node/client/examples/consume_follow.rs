//! Prints every record from an offset on, then keeps following the log as records commit
//! (like `tail -f`), resuming after the last record seen when a stream breaks.
//!
//! ```sh
//! export PROGLOG_ADDR=127.0.0.1:8400 PROGLOG_CA=ca.pem PROGLOG_CERT=root.pem PROGLOG_KEY=root-key.pem
//! cargo run -p proglog-client --example consume_follow -- 0
//! ```

use std::time::Duration;

use anyhow::Context;
use proglog_client::{ClientConfig, ClusterClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = ClusterClient::connect(ClientConfig::from_env()?).await?;
    let mut next: u64 = match std::env::args().nth(1) {
        Some(offset) => offset.parse().context("the first argument is an offset")?,
        None => 0,
    };
    loop {
        let mut stream = match client.consume_stream(next).await {
            Ok(stream) => stream,
            Err(error) => {
                eprintln!("cannot open a stream at {next}: {error}; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // A stream ends only with an error (a node restarting, a leader change): resume.
        while let Ok(Some(response)) = stream.message().await {
            if let Some(record) = response.record {
                println!(
                    "{}\t{}",
                    record.offset,
                    String::from_utf8_lossy(&record.value)
                );
                next = record.offset + 1;
            }
        }
    }
}
