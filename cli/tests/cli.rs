//! The real `nokv` binary against temporary volumes: the argument surface, the one-line
//! error contract, and the serve → lock → signal → restart lifecycle.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::*;

const BIN: &str = env!("CARGO_BIN_EXE_nokv");
/// Generous: the first open of a volume on a loaded CI machine may take a while.
const STARTUP: Duration = Duration::from_secs(60);
/// A signalled server must be gone within this.
const SHUTDOWN: Duration = Duration::from_secs(10);
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

/// A running `nokv serve` that is killed if the test fails before stopping it.
struct Server {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--data"])
            .arg(data)
            .env("NOKV_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nokv serve");
        let stdout = lines(child.stdout.take().unwrap());
        let (tx, stderr) = mpsc::channel();
        let mut err = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut all = String::new();
            let _ = err.read_to_string(&mut all);
            let _ = tx.send(all);
        });
        Server {
            child,
            stdout,
            stderr,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the serving line and returns the volume id it names.
    fn wait_serving(&mut self) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("nokv: serving volume ") {
                        assert!(line.contains("press Ctrl-C to stop"), "{line}");
                        return rest.split_whitespace().next().unwrap().to_string();
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no serving line within {STARTUP:?}"),
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().unwrap();
                    let stderr = self.stderr.recv().unwrap_or_default();
                    panic!("serve exited ({status}) before serving: {stderr}");
                }
            }
        }
    }

    /// Sends `sig` and waits for the exit; returns its status and everything on stderr.
    fn stop(mut self, sig: libc::c_int) -> (ExitStatus, String) {
        // SAFETY: signalling a child this test spawned and has not yet reaped.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
        let deadline = Instant::now() + SHUTDOWN;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "serve still running {SHUTDOWN:?} after signal {sig}"
            );
            thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.recv_timeout(SHUTDOWN).unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
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

    // While it serves, a second opener fails at once, naming the holder.
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

    // A restarted server serves the same volume; SIGINT stops it as cleanly as SIGTERM.
    let mut server = Server::start(&data);
    assert_eq!(server.wait_serving(), id);
    let (status, stderr) = server.stop(libc::SIGINT);
    assert_eq!(
        status.code(),
        Some(0),
        "serve exited {status}; stderr: {stderr}"
    );
    assert_eq!(status_json(&data)["volume"], id.as_str());
}
