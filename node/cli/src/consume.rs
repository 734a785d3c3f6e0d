//! `proglog consume`: prints records from an offset (one value per line, optionally prefixed
//! with its offset; `--output json`: one object per record, see [`super::output::record_json`]);
//! `--follow` keeps waiting for new records. `--bench N` measures
//! ConsumeStream throughput or Consume latency instead (see [`super::bench`]).

use clap::Args;
use proglog_proto::log::v1::Consistency;
use tokio::io::AsyncWriteExt;

use super::bench::{ConsumeBench, ConsumeMode};
use super::output::{OutputFormat, record_json};
use super::{CliError, ConnectionArgs};

/// Arguments of `proglog consume`.
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// First offset to print.
    #[arg(long, default_value_t = 0)]
    pub from: u64,
    /// Keep waiting for new records instead of stopping at the end of the log.
    #[arg(long)]
    pub follow: bool,
    /// Print each record as `OFFSET<TAB>VALUE`.
    #[arg(long)]
    pub offsets: bool,
    /// Benchmark mode: read this many records (which must exist) starting at --from.
    #[arg(long, value_name = "N")]
    pub bench: Option<u64>,
    /// RPC used in bench mode.
    #[arg(long, value_enum, default_value_t = ConsumeMode::Stream)]
    pub mode: ConsumeMode,
    /// Concurrent clients in bench mode.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
}

/// Runs `proglog consume`.
pub async fn run(
    connection: &ConnectionArgs,
    output: OutputFormat,
    args: ConsumeArgs,
) -> Result<(), CliError> {
    if let Some(records) = args.bench {
        let bench = ConsumeBench {
            from: args.from,
            records,
            mode: args.mode,
            concurrency: args.concurrency,
        };
        bench.run(connection).await?.print(output);
        return Ok(());
    }
    let client = connection.cluster_client().await?;
    // Without --follow, stop at the end of the log as it is now.
    let end = if args.follow {
        None
    } else {
        let bounds = client.log_bounds(Consistency::Local).await?;
        if args.from >= bounds.next_offset {
            return Ok(());
        }
        Some(bounds.next_offset)
    };
    let mut stream = client.consume_stream(args.from).await?;
    let mut stdout = tokio::io::stdout();
    while let Some(response) = stream.message().await? {
        let Some(record) = response.record else {
            continue;
        };
        let mut line = Vec::with_capacity(record.value.len() + 24);
        if output.is_json() {
            line.extend_from_slice(
                record_json(record.offset, &record.value)
                    .to_string()
                    .as_bytes(),
            );
        } else {
            if args.offsets {
                line.extend_from_slice(format!("{}\t", record.offset).as_bytes());
            }
            line.extend_from_slice(&record.value);
        }
        line.push(b'\n');
        stdout.write_all(&line).await?;
        if end.is_some_and(|end| record.offset + 1 >= end) {
            break;
        }
    }
    stdout.flush().await?;
    Ok(())
}
