//! `proglog`: the command-line client (see `proglog_node::cli`).

use std::process::ExitCode;

use clap::Parser;
use proglog_node::cli::{Cli, CliError, run};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error @ CliError::Usage(_)) => {
            eprintln!("proglog: {error}");
            ExitCode::from(64)
        }
        Err(error) => {
            eprintln!("proglog: {error}");
            ExitCode::FAILURE
        }
    }
}
