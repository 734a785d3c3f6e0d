//! The `proglog` CLI as a user drives it after `make install`: contexts in a config file instead
//! of five flags, `--output json` for scripts, shell completions — against a real node.

use std::path::Path;
use std::process::{Command, Output};

mod support;

use serde_json::Value;
use support::{CLI, InProcessNode, produce_when_up};

/// Runs `proglog` with only the config file (no connection flags, no PROGLOG_* connection
/// variables).
fn proglog(config: &Path, args: &[&str]) -> Output {
    Command::new(CLI)
        .env("PROGLOG_CONFIG", config)
        .env_remove("PROGLOG_ADDR")
        .env_remove("PROGLOG_CA")
        .env_remove("PROGLOG_CERT")
        .env_remove("PROGLOG_KEY")
        .env_remove("PROGLOG_CONTEXT")
        .args(args)
        .output()
        .expect("run proglog")
}

fn stdout(out: &Output) -> String {
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

fn json_lines(out: &Output) -> Vec<Value> {
    stdout(out)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[test]
fn a_context_replaces_the_connection_flags_and_json_output_is_parseable() {
    let dir = tempfile::tempdir().unwrap();
    let node = InProcessNode::start(dir.path());
    let port = node.port;
    assert!(produce_when_up(dir.path(), port, "first").status.success());

    let config = dir.path().join("home/.config/proglog/config.toml");
    let certs = dir.path().join("certs");
    let path = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    let (ca, cert, key) = (path("ca.pem"), path("root.pem"), path("root-key.pem"));
    let set = [
        "config",
        "set-context",
        "local",
        "--addr",
        &addr,
        "--ca",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    stdout(&proglog(&config, &set));
    // The first context becomes the current one; a second one does not.
    stdout(&proglog(
        &config,
        &[
            "config",
            "set-context",
            "elsewhere",
            "--addr",
            "127.0.0.1:1",
        ],
    ));
    let listed = stdout(&proglog(&config, &["config", "get-contexts"]));
    assert!(
        listed.contains("* local") && listed.contains("  elsewhere"),
        "{listed}"
    );

    // No flags: everything comes from the current context.
    assert_eq!(stdout(&proglog(&config, &["produce", "second"])), "1\n");
    let produced = json_lines(&proglog(&config, &["-o", "json", "produce", "third"]));
    assert_eq!(produced, vec![serde_json::json!({ "offset": 2 })]);

    let records = json_lines(&proglog(&config, &["--output", "json", "consume"]));
    let values: Vec<(u64, &str)> = records
        .iter()
        .map(|r| (r["offset"].as_u64().unwrap(), r["value"].as_str().unwrap()))
        .collect();
    assert_eq!(values, vec![(0, "first"), (1, "second"), (2, "third")]);

    let servers = json_lines(&proglog(&config, &["-o", "json", "servers"]));
    assert_eq!(servers.len(), 1, "one object");
    assert_eq!(servers[0]["next_offset"], 3);
    assert_eq!(servers[0]["servers"][0]["is_leader"], true);

    let view = json_lines(&proglog(&config, &["-o", "json", "config", "view"]));
    assert_eq!(view[0]["context"], "local");
    assert_eq!(view[0]["addr"], addr.as_str());

    // A flag wins over the context, and --context picks another context.
    let out = proglog(&config, &["--addr", "127.0.0.1:1", "produce", "x"]);
    assert!(!out.status.success(), "{out:?}");
    let out = proglog(&config, &["--context", "elsewhere", "produce", "x"]);
    assert!(!out.status.success(), "{out:?}");
    // ... and nothing was appended by either.
    assert_eq!(
        json_lines(&proglog(&config, &["-o", "json", "servers"]))[0]["next_offset"],
        3
    );

    node.stop().expect("the node stops cleanly");
}

#[test]
fn config_mistakes_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");

    let out = proglog(&config, &["config", "use-context", "prod"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("\"prod\"") && stderr.contains("known: none"),
        "{stderr}"
    );

    let out = proglog(
        &config,
        &["config", "set-context", "a", "--ca", "/no/such/ca.pem"],
    );
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/ca.pem"));
    assert!(!config.exists(), "a refused change writes nothing");

    std::fs::write(
        &config,
        "current-context = \"a\"\n[contexts.a]\nadress = \"x:1\"\n",
    )
    .unwrap();
    let out = proglog(&config, &["servers"]);
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("adress"));
}

#[test]
fn max_attempts_must_allow_one_try() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let out = proglog(&config, &["--max-attempts", "0", "servers"]);
    assert!(!out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid value '0'") && stderr.contains("--max-attempts"),
        "{stderr}"
    );
}

#[test]
fn completion_scripts_cover_the_subcommands() {
    for shell in ["bash", "zsh", "fish"] {
        let dir = tempfile::tempdir().unwrap();
        let script = stdout(&proglog(
            &dir.path().join("c.toml"),
            &["completions", shell],
        ));
        for word in ["produce", "consume", "set-context", "output"] {
            assert!(script.contains(word), "{shell} completions lack {word}");
        }
    }
}
