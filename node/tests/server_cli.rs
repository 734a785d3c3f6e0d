//! The two binaries end to end: `proglog certs`, `proglog-node` (invalid configuration exits
//! with status 64; a valid one serves and stops cleanly on SIGTERM), `proglog produce`,
//! `consume` and `servers`.

use std::process::{Command, Stdio};

mod node_process;

use node_process::{NODE, cli, cli_bin, free_port, node_args, produce_when_up, stop};

#[test]
fn invalid_configuration_exits_with_status_64_and_says_why() {
    let out = Command::new(NODE).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("data-dir is required"), "{stderr}");

    let out = Command::new(NODE).arg("--no-such-flag").output().unwrap();
    assert_eq!(out.status.code(), Some(64));

    // Files that do not exist are configuration errors too.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(NODE)
        .args(node_args(dir.path(), free_port(), free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No such file"), "{stderr}");
}

#[test]
fn certs_then_node_then_produce_consume_servers_and_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(cli_bin())
        .args(["certs", "--out"])
        .arg(dir.path().join("certs"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for file in [
        "ca.pem",
        "node.pem",
        "root-key.pem",
        "nobody.pem",
        "acl.csv",
    ] {
        assert!(dir.path().join("certs").join(file).exists(), "{file}");
    }

    let (port, metrics_port) = (free_port(), free_port());
    let node = Command::new(NODE)
        .args(node_args(dir.path(), port, metrics_port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = produce_when_up(dir.path(), port, "hello");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    let out = cli(dir.path(), port, &["produce", "world"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n");

    let out = cli(dir.path(), port, &["consume", "--offsets"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\thello\n1\tworld\n");
    let out = cli(dir.path(), port, &["consume", "--from", "1"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world\n");

    let out = cli(dir.path(), port, &["servers"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("leader") && text.contains("next 2"), "{text}");

    let status = stop(node);
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
}
