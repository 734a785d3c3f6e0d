//! `proglog-node`: runs one ProgLog log node (see `proglog_node::config` for its flags). Exit
//! statuses: 0 after a requested shutdown, 64 invalid configuration, 74 storage failed, 70 the
//! Raft core panicked, 75 it stopped otherwise, 1 anything else (`RunError::exit_code`); the
//! reason also goes to `--termination-log` when that file exists.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use proglog_node::config::{DEFAULT_TERMINATION_LOG, EXIT_INVALID_CONFIG, NodeArgs};
use proglog_node::run::{run_node, shutdown_signal};
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
    let termination_log = args.termination_log.clone();
    let config = match args.resolve() {
        Ok(config) => config,
        Err(error) => {
            let message = format!("proglog-node: invalid configuration: {error}");
            eprintln!("{message}");
            write_termination_message(termination_log, &message);
            return exit_invalid();
        }
    };
    let termination_log = config.termination_log.clone();
    let runtime = match config.worker_threads.build() {
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
    let error = match result {
        Ok(()) => return ExitCode::SUCCESS,
        Err(error) => error,
    };
    let message = if error.is_configuration_error() {
        format!("proglog-node: invalid configuration: {error}")
    } else {
        format!("proglog-node: {error}")
    };
    eprintln!("{message}");
    write_termination_message(Some(termination_log), &message);
    // A failed disk may leave blocking tasks stuck in I/O; exit anyway.
    runtime.shutdown_timeout(Duration::from_secs(2));
    ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1))
}

fn write_termination_message(path: Option<std::path::PathBuf>, message: &str) {
    let path = path.unwrap_or_else(|| DEFAULT_TERMINATION_LOG.into());
    proglog_node::raft::fatal::write_termination_message(&path, message);
}

fn exit_invalid() -> ExitCode {
    ExitCode::from(EXIT_INVALID_CONFIG as u8)
}
