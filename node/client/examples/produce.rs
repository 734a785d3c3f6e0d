//! Produces each argument as a record and prints its offset.
//!
//! ```sh
//! export PROGLOG_ADDR=127.0.0.1:8400 PROGLOG_CA=ca.pem PROGLOG_CERT=root.pem PROGLOG_KEY=root-key.pem
//! cargo run -p proglog-client --example produce -- hello world
//! ```

use proglog_client::{ClientConfig, ClientError, ClusterClient};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let client = ClusterClient::connect(ClientConfig::from_env()?).await?;
    for value in std::env::args().skip(1) {
        match client.produce(value.clone()).await {
            Ok(offset) => println!("{offset}\t{value}"),
            // Stored or not: unknown. Retrying blindly could store it twice (see the crate docs).
            Err(error @ ClientError::OutcomeUnknown(_)) => {
                anyhow::bail!("{value:?}: {error}; consume the tail to check before retrying")
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
