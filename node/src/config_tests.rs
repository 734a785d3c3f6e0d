//! Unit tests of the node's configuration: defaults, precedence, validation.
use super::*;

fn base() -> Vec<&'static str> {
    vec![
        "proglog-node",
        "--data-dir",
        "/tmp/d",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
        "--tls-ca",
        "ca.pem",
        "--acl-file",
        "acl.csv",
    ]
}

/// The error of resolving the base flags plus `extra`.
fn refused(extra: &[&str]) -> ConfigError {
    let mut argv = base();
    argv.extend_from_slice(extra);
    NodeArgs::try_parse_from(argv)
        .unwrap()
        .resolve()
        .unwrap_err()
}

#[test]
fn defaults_apply() {
    let config = NodeArgs::try_parse_from(base()).unwrap().resolve().unwrap();
    assert_eq!(config.bind_addr, "0.0.0.0:8400".parse().unwrap());
    assert_eq!(config.metrics_addr, "0.0.0.0:9400".parse().unwrap());
    assert_eq!(config.limits.service.max_record_bytes, 1024 * 1024);
    assert_eq!(config.shutdown_grace, Duration::from_secs(10));
    assert!(!config.raft);
    assert_eq!(config.otlp, None, "OTLP export is off by default");
    assert_eq!(config.limits.message_timeout, Duration::from_secs(30));
    let mut argv = base();
    argv.extend(["--message-timeout", "5s"]);
    let config = NodeArgs::try_parse_from(argv).unwrap().resolve().unwrap();
    assert_eq!(config.limits.message_timeout, Duration::from_secs(5));
    let mut argv = base();
    argv.extend(["--raft", "true"]);
    assert!(
        NodeArgs::try_parse_from(argv)
            .unwrap()
            .resolve()
            .unwrap()
            .raft
    );
}

#[test]
fn missing_required_settings_are_named() {
    let err = NodeArgs::try_parse_from(["proglog-node"])
        .unwrap()
        .resolve()
        .unwrap_err();
    assert!(err.to_string().contains("data-dir"), "{err}");
}

#[test]
fn file_fills_gaps_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "bind-addr = \"127.0.0.1:9000\"\nshutdown-grace = \"3s\"\nmax-record-size = 100\notlp-endpoint = \"http://127.0.0.1:4317\"\n",
    )
    .unwrap();
    let mut argv = base();
    let file_arg = file.to_str().unwrap().to_owned();
    argv.extend(["--config", &file_arg, "--max-record-size", "200"]);
    let config = NodeArgs::try_parse_from(argv).unwrap().resolve().unwrap();
    assert_eq!(config.bind_addr, "127.0.0.1:9000".parse().unwrap());
    let otlp = config.otlp.expect("otlp-endpoint from the file");
    assert_eq!(otlp.endpoint, "http://127.0.0.1:4317");
    assert_eq!(otlp.node_address, "127.0.0.1:9000");
    assert_eq!(config.shutdown_grace, Duration::from_secs(3));
    assert_eq!(config.limits.service.max_record_bytes, 200);
}

#[test]
fn bad_values_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "no-such-key = 1\n").unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let err = refused(&["--config", &file_arg]);
    assert!(matches!(err, ConfigError::ParseFile { .. }), "{err}");

    let err = refused(&["--max-record-size", "5000000", "--max-message-size", "1000"]);
    assert!(err.to_string().contains("max-message-size"), "{err}");

    let mut argv = base();
    argv.extend(["--advertise-addr", "nohost"]);
    assert!(NodeArgs::try_parse_from(argv).unwrap().resolve().is_err());

    assert!(NodeArgs::try_parse_from(["proglog-node", "--bind-addr", "nonsense"]).is_err());

    let err = refused(&["--otlp-endpoint", "https://127.0.0.1:4317"]);
    assert!(err.to_string().contains("otlp-endpoint"), "{err}");
}

/// The node's record/message check is `proglog_proto::limits::check_record_limits`, the
/// function the operator validates specs with; a record may be larger than a segment.
#[test]
fn record_limits_are_the_shared_check() {
    use proglog_proto::limits::{MAX_RECORD_BYTES, check_record_limits};
    let cases: [(u64, u64); 6] = [
        (1, 65),
        (1000, 1063),
        (4 << 20, 4 << 20),
        (MAX_RECORD_BYTES, MAX_RECORD_BYTES + 64),
        (MAX_RECORD_BYTES + 1, 1 << 30),
        (0, 4 << 20),
    ];
    for (record, message) in cases {
        let (record_arg, message_arg) = (record.to_string(), message.to_string());
        let mut argv = base();
        argv.extend([
            "--max-record-size",
            &record_arg,
            "--max-message-size",
            &message_arg,
            "--segment-max-store-bytes",
            "4096",
        ]);
        let node = NodeArgs::try_parse_from(argv).unwrap().resolve();
        match check_record_limits(record, message) {
            Ok(()) => {
                let config = node.unwrap_or_else(|e| panic!("{record}/{message}: {e}"));
                assert_eq!(config.limits.service.max_record_bytes, record);
            }
            Err(shared) => {
                let err = node.expect_err(&format!("{record}/{message} must be refused"));
                assert!(err.to_string().contains(shared.flag()), "{err}");
            }
        }
    }
}

#[test]
fn ordinal_comes_from_statefulset_hostnames() {
    assert_eq!(ordinal_of_hostname("proglog-2"), Some(2));
    assert_eq!(
        ordinal_of_hostname("my-log-11.my-log-headless.ns.svc"),
        Some(11)
    );
    assert_eq!(ordinal_of_hostname("laptop"), None);
}

#[test]
fn snapshot_policy_has_defaults_and_rejects_zero() {
    let config = NodeArgs::try_parse_from(base()).unwrap().resolve().unwrap();
    assert_eq!(
        config.snapshots,
        SnapshotPolicy {
            entries: 20_000,
            keep_entries: 5_000
        }
    );
    let mut argv = base();
    argv.extend(["--snapshot-entries", "50", "--snapshot-keep-entries", "0"]);
    let config = NodeArgs::try_parse_from(argv).unwrap().resolve().unwrap();
    assert_eq!(config.snapshots.entries, 50);
    assert_eq!(config.snapshots.keep_entries, 0);
    let err = refused(&["--snapshot-entries", "0"]);
    assert!(err.to_string().contains("snapshot-entries"), "{err}");
}

#[test]
fn resource_limits_have_defaults_flags_env_names_and_file_keys() {
    let config = NodeArgs::try_parse_from(base()).unwrap().resolve().unwrap();
    let limits = &config.limits;
    assert_eq!(limits.memory_budget_bytes, 256 << 20);
    assert_eq!(limits.max_connections, 1024);
    assert_eq!(limits.max_unauthenticated_connections, 128);
    assert_eq!(limits.unauthenticated_timeout, Duration::from_secs(10));
    assert_eq!(limits.http2, crate::server::Http2Limits::default());
    assert_eq!(limits.http2.stream_window_bytes, 1 << 20);
    assert_eq!(limits.http2.connection_window_bytes, 1 << 20);
    assert_eq!(limits.http2.max_frame_bytes, 16 << 10);
    assert_eq!(limits.http2.max_header_list_bytes, 16 << 10);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(
        &file,
        "memory-budget-bytes = 1048576\nmax-connections = 7\nunauthenticated-timeout = \"3s\"\n\
         http2-max-frame-bytes = 32768\n",
    )
    .unwrap();
    let file_arg = file.to_str().unwrap().to_owned();
    let mut argv = base();
    argv.extend([
        "--config",
        &file_arg,
        "--memory-budget-bytes",
        "67108864",
        "--max-unauthenticated-connections",
        "5",
        "--http2-stream-window-bytes",
        "65535",
        "--http2-connection-window-bytes",
        "2097152",
        "--http2-max-header-list-bytes",
        "8192",
    ]);
    let limits = NodeArgs::try_parse_from(argv)
        .unwrap()
        .resolve()
        .unwrap()
        .limits;
    assert_eq!(limits.memory_budget_bytes, 64 << 20, "the flag wins");
    assert_eq!(limits.max_connections, 7, "from the file");
    assert_eq!(limits.max_unauthenticated_connections, 5);
    assert_eq!(limits.unauthenticated_timeout, Duration::from_secs(3));
    assert_eq!(
        limits.http2,
        crate::server::Http2Limits {
            stream_window_bytes: 65_535,
            connection_window_bytes: 2 << 20,
            max_frame_bytes: 32 << 10,
            max_header_list_bytes: 8 << 10,
        }
    );

    // Each flag has its environment variable.
    let command = <NodeArgs as clap::CommandFactory>::command();
    for (flag, env) in [
        ("memory-budget-bytes", "PROGLOG_MEMORY_BUDGET_BYTES"),
        ("max-connections", "PROGLOG_MAX_CONNECTIONS"),
        (
            "max-unauthenticated-connections",
            "PROGLOG_MAX_UNAUTHENTICATED_CONNECTIONS",
        ),
        ("unauthenticated-timeout", "PROGLOG_UNAUTHENTICATED_TIMEOUT"),
        (
            "http2-stream-window-bytes",
            "PROGLOG_HTTP2_STREAM_WINDOW_BYTES",
        ),
        (
            "http2-connection-window-bytes",
            "PROGLOG_HTTP2_CONNECTION_WINDOW_BYTES",
        ),
        ("http2-max-frame-bytes", "PROGLOG_HTTP2_MAX_FRAME_BYTES"),
        (
            "http2-max-header-list-bytes",
            "PROGLOG_HTTP2_MAX_HEADER_LIST_BYTES",
        ),
    ] {
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(flag))
            .unwrap_or_else(|| panic!("--{flag}"));
        assert_eq!(
            arg.get_env().and_then(|e| e.to_str()),
            Some(env),
            "--{flag}"
        );
    }
}

#[test]
fn resource_limits_reject_unusable_values() {
    for (flag, value) in [
        ("--memory-budget-bytes", "1000"),
        ("--max-connections", "0"),
        ("--max-unauthenticated-connections", "0"),
        ("--unauthenticated-timeout", "0s"),
        ("--http2-stream-window-bytes", "100"),
        ("--http2-connection-window-bytes", "2147483648"),
        ("--http2-max-frame-bytes", "1024"),
        ("--http2-max-header-list-bytes", "10"),
    ] {
        let err = refused(&[flag, value]);
        assert!(
            err.to_string().contains(flag.trim_start_matches("--")),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn worker_threads_come_from_flag_or_file_and_absurd_counts_are_refused() {
    use crate::runtime::WorkerThreads;
    let config = NodeArgs::try_parse_from(base()).unwrap().resolve().unwrap();
    assert_eq!(config.worker_threads, WorkerThreads::PerCpu);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("node.toml");
    std::fs::write(&file, "worker-threads = 2\n").unwrap();
    let mut argv = base();
    argv.extend(["--config", file.to_str().unwrap()]);
    let config = NodeArgs::try_parse_from(argv).unwrap().resolve().unwrap();
    assert_eq!(
        config.worker_threads,
        WorkerThreads::Exactly(std::num::NonZeroUsize::new(2).unwrap())
    );

    let err = refused(&["--worker-threads", "5000"]);
    assert!(err.to_string().contains("worker-threads"), "{err}");
}
