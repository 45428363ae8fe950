//! The real `nokv` binary against temporary volumes: the argument surface, the one-line
//! error contract, and the serve → lock → signal → restart lifecycle.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use common::{Server, BIN, STARTUP};
use predicates::prelude::*;

/// A command on a locked volume must fail within this (V1: no waiting for the lock).
const FAIL_FAST: Duration = Duration::from_secs(5);

fn nokv() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env_remove("NOKV_LOG");
    cmd
}

/// Asserts `stderr` is exactly one `nokv: ...` line and returns it.
fn one_error_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "expected one stderr line, got {text:?}");
    assert!(
        lines[0].starts_with("nokv: "),
        "no `nokv: ` prefix: {text:?}"
    );
    lines[0].to_string()
}

#[test]
fn help_and_version_succeed() {
    nokv()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("serve"))
        .stdout(predicate::str::contains("status"))
        .stdout(predicate::str::contains("--data"));
    nokv()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
    for sub in ["serve", "status"] {
        nokv()
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("--data"));
    }
    nokv()
        .args(["serve", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--s3-bucket"));
}

#[test]
fn unknown_subcommand_is_a_one_line_usage_error() {
    let out = nokv()
        .arg("frobnicate")
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_error_line(&out.stderr).contains("frobnicate"));
    assert!(out.stdout.is_empty());
}

#[test]
fn unknown_flag_is_a_one_line_usage_error() {
    let out = nokv()
        .args(["status", "--no-such-flag"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    assert!(one_error_line(&out.stderr).contains("--no-such-flag"));
}

#[test]
fn missing_subcommand_is_a_one_line_usage_error() {
    let out = nokv().assert().code(2).get_output().clone();
    let line = one_error_line(&out.stderr);
    assert!(line.contains("subcommand"), "{line}");
    assert!(line.contains("usage: nokv"), "{line}");
}

#[test]
fn s3_settings_without_a_bucket_are_a_usage_error() {
    let out = nokv()
        .args(["serve", "--s3-region", "eu-west-1"])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let line = one_error_line(&out.stderr);
    assert!(
        line.contains("required") && line.contains("--s3-bucket"),
        "{line}"
    );
}

#[test]
fn data_pointing_at_a_regular_file_is_a_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    for sub in ["serve", "status"] {
        let out = nokv()
            .arg(sub)
            .arg("--data")
            .arg(&file)
            .timeout(FAIL_FAST)
            .assert()
            .code(1)
            .get_output()
            .clone();
        let line = one_error_line(&out.stderr);
        assert!(line.contains("not a directory"), "{sub}: {line}");
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
}

#[test]
fn status_does_not_create_a_volume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("absent");
    let out = nokv()
        .args(["status", "--data"])
        .arg(&data)
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(one_error_line(&out.stderr).contains("no volume"));
    assert!(!data.exists(), "status created {}", data.display());
}

fn status_json(data: &Path) -> serde_json::Value {
    let out = nokv()
        .args(["status", "--json", "--data"])
        .arg(data)
        .timeout(STARTUP)
        .assert()
        .success()
        .get_output()
        .clone();
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "status --json is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[test]
fn serve_holds_the_volume_until_signalled_and_the_volume_survives_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data: PathBuf = tmp.path().join("vol");

    let mut server = Server::start(&data);
    let id = server.wait_serving();
    assert!(!id.is_empty());
    let p = server.port;
    let linux = server.next_line();
    assert!(
        linux.ends_with(&format!(
            "mount -t nfs -o vers=3,tcp,port={p},mountport={p},mountproto=tcp,nolock,addr=127.0.0.1 127.0.0.1:/ /mnt/nokv"
        )),
        "{linux}"
    );
    let macos = server.next_line();
    assert!(
        macos.starts_with("mount on macOS: mount -t nfs -o vers=3,tcp,port="),
        "{macos}"
    );

    // While it serves, status goes through the admin socket (mode 0600).
    let sock = data.join("admin.sock");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "admin.sock mode {mode:o}");
    assert_eq!(status_json(&data)["volume"], id.as_str());

    // Without the socket, a second opener fails at once, naming the holder.
    std::fs::remove_file(&sock).unwrap();
    let started = Instant::now();
    let out = nokv()
        .args(["status", "--data"])
        .arg(&data)
        .timeout(FAIL_FAST)
        .assert()
        .code(1)
        .get_output()
        .clone();
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
    let line = one_error_line(&out.stderr);
    assert!(line.contains("in use by"), "{line}");
    assert!(line.contains(&format!("pid {}", server.pid())), "{line}");
    assert!(out.stdout.is_empty());

    let (status, stderr) = server.stop(libc::SIGTERM);
    assert_eq!(
        status.code(),
        Some(0),
        "serve exited {status}; stderr: {stderr}"
    );
    assert!(
        stderr.contains(&id),
        "no log line naming the volume: {stderr}"
    );

    assert!(!sock.exists(), "admin.sock left behind after a clean stop");

    // Stopped: status opens the same volume and reports on it.
    nokv()
        .args(["status", "--data"])
        .arg(&data)
        .timeout(STARTUP)
        .assert()
        .success()
        .stdout(predicate::str::contains(&id))
        .stdout(predicate::str::contains("root entries: 0"));
    let v = status_json(&data);
    assert_eq!(v["volume"], id.as_str());
    assert_eq!(v["data_dir"], data.to_str().unwrap());
    assert_eq!(v["root_entries"], 0);
    assert!(v["statfs"]["blocks"].as_u64().unwrap() > 0, "{v}");
    assert!(v["statfs"]["files"].as_u64().unwrap() > 0, "{v}");
    assert!(v["objects"].as_str().is_some_and(|s| !s.is_empty()), "{v}");

    // A restarted server serves the same volume (and its admin socket again); SIGINT stops
    // it as cleanly as SIGTERM.
    let mut server = Server::start(&data);
    assert_eq!(server.wait_serving(), id);
    assert_eq!(status_json(&data)["volume"], id.as_str());
    let (status, stderr) = server.stop(libc::SIGINT);
    assert_eq!(
        status.code(),
        Some(0),
        "serve exited {status}; stderr: {stderr}"
    );
    assert_eq!(status_json(&data)["volume"], id.as_str());
}

#[test]
fn a_bad_listen_address_is_a_one_line_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    for bad in ["nonsense", "127.0.0.1", "127.0.0.1:99999", "localhost:2049"] {
        let out = nokv()
            .args(["serve", "--listen", bad, "--data"])
            .arg(&data)
            .timeout(FAIL_FAST)
            .assert()
            .code(2)
            .get_output()
            .clone();
        let line = one_error_line(&out.stderr);
        assert!(line.contains("--listen"), "{line}");
        assert!(!data.exists(), "a usage error created the volume");
    }
}

#[test]
fn a_busy_port_is_a_one_line_error_before_the_volume_is_touched() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = nokv()
        .args(["serve", "--listen", &addr, "--data"])
        .arg(&data)
        .timeout(STARTUP)
        .assert()
        .code(1)
        .get_output()
        .clone();
    let line = one_error_line(&out.stderr);
    assert!(line.contains(&format!("cannot listen on {addr}")), "{line}");
    assert!(
        !data.exists(),
        "the volume was created although nothing could be served"
    );
}

/// Every subcommand of the volume.
const SUBCOMMANDS: [&str; 15] = [
    "serve",
    "status",
    "workspaces",
    "clone",
    "snapshot",
    "snapshots",
    "snapshot-delete",
    "rollback",
    "diff",
    "discard",
    "promote",
    "gc",
    "fsck",
    "import",
    "export",
];

#[test]
fn every_subcommand_has_help_with_examples() {
    let top = nokv().arg("--help").assert().success().get_output().clone();
    let top = String::from_utf8_lossy(&top.stdout).into_owned();
    for sub in SUBCOMMANDS {
        assert!(top.contains(sub), "`nokv --help` does not list {sub}");
        let out = nokv()
            .args([sub, "--help"])
            .assert()
            .success()
            .get_output()
            .clone();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("--data"), "{sub} --help: {text}");
        if sub != "serve" {
            assert!(text.contains("--json"), "{sub} --help: {text}");
            assert!(
                text.contains("Example"),
                "{sub} --help has no example: {text}"
            );
        }
    }
}

#[test]
fn a_stale_admin_socket_from_a_killed_server_does_not_block_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let mut server = Server::start(&data);
    let id = server.wait_serving();
    let sock = data.join("admin.sock");
    assert!(sock.exists());
    let (status, _) = server.stop(libc::SIGKILL);
    assert_eq!(status.code(), None, "killed by a signal");
    assert!(sock.exists(), "a killed server leaves its socket behind");

    // The CLI finds nobody listening and opens the volume itself, at once.
    let started = Instant::now();
    let out = nokv()
        .args(["workspaces", "--json", "--data"])
        .arg(&data)
        .env("NOKV_LOG", "error")
        .timeout(STARTUP)
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        started.elapsed() < FAIL_FAST,
        "took {:?}",
        started.elapsed()
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["path"], "/", "{v}");

    // The next server replaces the stale socket and serves through it.
    let mut server = Server::start(&data);
    assert_eq!(server.wait_serving(), id);
    assert_eq!(status_json(&data)["volume"], id.as_str());
    let (status, stderr) = server.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!sock.exists());
}
