//! `proglog-node`: runs one ProgLog log node (see `proglog_node::config` for its flags).

use std::process::ExitCode;

use clap::Parser;
use proglog_node::config::{EXIT_INVALID_CONFIG, NodeArgs};
use proglog_node::server::{run_node, shutdown_signal};
use proglog_node::telemetry::TelemetryError;
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let args = match NodeArgs::try_parse() {
        Ok(args) => args,
        Err(error) if !error.use_stderr() => error.exit(), // --help, --version
        Err(error) => {
            let _ = error.print();
            return exit_invalid();
        }
    };
    let config = match args.resolve() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("proglog-node: invalid configuration: {error}");
            return exit_invalid();
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("proglog-node: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The OTLP exporter's gRPC channel is spawned on the runtime, so set up inside it.
    let telemetry = {
        let _runtime = runtime.enter();
        proglog_node::telemetry::init_with_export(config.log_format, config.otlp.as_ref())
    };
    let telemetry = match telemetry {
        Ok(telemetry) => telemetry,
        Err(error @ TelemetryError::Exporter { .. }) => {
            eprintln!("proglog-node: invalid configuration: {error}");
            return exit_invalid();
        }
        Err(error) => {
            eprintln!("proglog-node: cannot set up logging: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            trigger.cancel();
        });
        run_node(config, shutdown).await
    });
    // Flush queued spans while the runtime (and the exporter's channel) still runs.
    if let Err(error) = telemetry.shutdown() {
        eprintln!("proglog-node: {error}");
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_configuration_error() => {
            eprintln!("proglog-node: invalid configuration: {error}");
            exit_invalid()
        }
        Err(error) => {
            eprintln!("proglog-node: {error}");
            ExitCode::FAILURE
        }
    }
}

fn exit_invalid() -> ExitCode {
    ExitCode::from(EXIT_INVALID_CONFIG as u8)
}
