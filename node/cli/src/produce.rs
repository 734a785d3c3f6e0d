//! `proglog produce`: appends values given as arguments, or one per line of stdin, and prints
//! each offset (`--output json`: `{"offset": N}` per line). Each produce goes through the client library, which retries it only while it
//! was certainly not executed. With `--bench N` it is a load generator instead (see
//! [`super::bench`]).

use clap::Args;
use tokio::io::AsyncBufReadExt;

use super::bench::{ProduceBench, ProduceMode};
use super::output::{OutputFormat, print_json};
use super::{CliError, ConnectionArgs};

/// Arguments of `proglog produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Values to append; without any, each line of stdin is one value.
    pub values: Vec<String>,
    /// Load-generator mode: append this many generated records and print throughput and
    /// latency instead of offsets.
    #[arg(long, value_name = "N")]
    pub bench: Option<u64>,
    /// Concurrent clients (one connection each) in bench mode.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Record size in bytes in bench mode.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// RPC used in bench mode.
    #[arg(long, value_enum, default_value_t = ProduceMode::Unary)]
    pub mode: ProduceMode,
    /// Records per ProduceBatch request in `--mode batch`.
    #[arg(long, default_value_t = 256)]
    pub batch_size: usize,
}

/// Runs `proglog produce`.
pub async fn run(
    connection: &ConnectionArgs,
    output: OutputFormat,
    args: ProduceArgs,
) -> Result<(), CliError> {
    if let Some(records) = args.bench {
        if !args.values.is_empty() {
            return Err(CliError::Usage(
                "--bench generates its own records; do not pass values".to_owned(),
            ));
        }
        let bench = ProduceBench {
            records,
            concurrency: args.concurrency,
            size: args.size,
            mode: args.mode,
            batch_size: args.batch_size,
        };
        bench.run(connection).await?.print(output);
        return Ok(());
    }
    let client = connection.cluster_client().await?;
    let produce = async |value: Vec<u8>| -> Result<(), CliError> {
        let offset = client.produce(value).await?;
        if output.is_json() {
            print_json(&serde_json::json!({ "offset": offset }));
        } else {
            println!("{offset}");
        }
        Ok(())
    };
    if args.values.is_empty() {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            produce(line.into_bytes()).await?;
        }
    } else {
        for value in args.values {
            produce(value.into_bytes()).await?;
        }
    }
    Ok(())
}
