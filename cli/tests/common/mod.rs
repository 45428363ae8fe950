//! Shared by the tests that run the real `nokv` binary: a `nokv serve` child process that
//! is killed if a test fails before stopping it.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_nokv");
/// Generous: the first open of a volume on a loaded CI machine may take a while.
pub const STARTUP: Duration = Duration::from_secs(60);
/// A signalled server must be gone within this.
pub const SHUTDOWN: Duration = Duration::from_secs(30);

/// A running `nokv serve` that is killed if the test fails before stopping it.
pub struct Server {
    /// The NFS port, known once serving.
    pub port: u16,
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
}

impl Server {
    /// Starts `nokv serve` on a free loopback port.
    pub fn start(data: &Path) -> Server {
        Self::start_on(data, 0)
    }

    /// Starts `nokv serve` on loopback port `port` (0: a free one).
    pub fn start_on(data: &Path, port: u16) -> Server {
        Self::start_with(data, &format!("127.0.0.1:{port}"), &[])
    }

    /// Starts `nokv serve --listen listen` with `extra` arguments.
    pub fn start_with(data: &Path, listen: &str, extra: &[&str]) -> Server {
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--listen", listen, "--data"])
            .arg(data)
            .args(extra)
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
            port: 0,
            child,
            stdout,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the serving line and returns the volume id it names.
    pub fn wait_serving(&mut self) -> String {
        let deadline = Instant::now() + STARTUP;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("nokv: serving volume ") {
                        assert!(line.contains("press Ctrl-C to stop"), "{line}");
                        let addr = line
                            .split(" over NFSv3 on ")
                            .nth(1)
                            .and_then(|r| r.split(';').next())
                            .unwrap_or_else(|| panic!("no NFS address in {line:?}"));
                        let addr: std::net::SocketAddr = addr.parse().unwrap();
                        assert!(addr.ip().is_loopback(), "{line}");
                        self.port = addr.port();
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

    /// The next line on stdout after the serving line.
    pub fn next_line(&mut self) -> String {
        self.stdout
            .recv_timeout(STARTUP)
            .expect("another line on stdout")
    }

    /// Sends `sig` and waits for the exit; returns its status and everything on stderr.
    pub fn stop(mut self, sig: libc::c_int) -> (ExitStatus, String) {
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

pub fn lines(r: impl Read + Send + 'static) -> Receiver<String> {
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

pub mod tree;

/// The `nokv` binary on one data directory.
pub struct Nokv {
    /// The `--data` directory.
    pub data: std::path::PathBuf,
}

impl Nokv {
    /// A command `nokv ARGS --data DATA`, logs off.
    pub fn cmd<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> assert_cmd::Command {
        let mut cmd = assert_cmd::Command::new(BIN);
        cmd.env_remove("NOKV_LOG")
            .args(args)
            .arg("--data")
            .arg(&self.data)
            .timeout(STARTUP);
        cmd
    }

    /// Runs a command that must succeed with nothing on stderr; returns stdout.
    pub fn ok<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> String {
        let out = self.cmd(args).output().unwrap();
        let shown: Vec<_> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        assert!(
            out.status.success(),
            "nokv {shown:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "nokv {shown:?} wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command with `--json` that must succeed; returns the parsed output.
    pub fn json<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> serde_json::Value {
        let mut all: Vec<std::ffi::OsString> = args.iter().map(|a| a.as_ref().to_owned()).collect();
        all.push("--json".into());
        let out = self.ok(&all);
        assert_eq!(
            out.lines().count(),
            1,
            "--json printed several lines: {out}"
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Runs a command that must exit with `code`, print nothing on stdout and exactly one
    /// `nokv: ` line on stderr; returns that line.
    pub fn fail<S: AsRef<std::ffi::OsStr>>(&self, args: &[S], code: i32) -> String {
        let out = self.cmd(args).output().unwrap();
        let shown: Vec<_> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "nokv {shown:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "nokv {shown:?} printed {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "nokv {shown:?}: expected one stderr line, got {stderr:?}"
        );
        assert!(lines[0].starts_with("nokv: "), "{stderr:?}");
        lines[0].to_string()
    }
}
