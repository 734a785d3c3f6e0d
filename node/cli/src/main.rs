//! `proglog`: the command-line client (see the `proglog_cli` library).

use std::process::ExitCode;

use clap::Parser;
use proglog_cli::{Cli, CliError, run};

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
