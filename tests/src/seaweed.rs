//! A real S3 server for tests: SeaweedFS (`weed mini`) driven through `scripts/seaweedfs.sh`,
//! run inside a private network namespace so its fixed ports never collide with anything.
//!
//! Use:
//! ```no_run
//! # use std::time::Duration;
//! use nokv_tests::seaweed::{in_private_netns, SeaweedFs, BUCKET};
//!
//! #[test]
//! fn my_s3_test() {
//!     in_private_netns("my_s3_test", Duration::from_secs(120), || {
//!         let server = SeaweedFs::start().expect("SeaweedFS");
//!         let cfg = server.s3_config(BUCKET);
//!         // ... OpendalStore::s3(&cfg) ...
//!     });
//! }
//! ```
//!
//! A test that needs the server fails (never skips) when it cannot be installed or started.
//! Needs root (for `unshare --net`), `curl`, `ip` and Python's pip: see
//! `scripts/install-test-deps.sh`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nokv_core::object::S3Config;

/// The bucket every server starts with.
pub const BUCKET: &str = "nokv-test";

/// Set in the re-executed test process: the shared work directory of one netns run.
const NETNS_WORKDIR: &str = "NOKV_NETNS_WORKDIR";

/// `scripts/seaweedfs.sh` of this checkout.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/seaweedfs.sh")
}

/// A running SeaweedFS server, stopped (and its data removed) on drop.
#[derive(Debug)]
pub struct SeaweedFs {
    dir: tempfile::TempDir,
    endpoint: String,
    access_key: String,
    secret_key: String,
}

impl SeaweedFs {
    /// Start a server with [`BUCKET`], waiting until it accepts writes. Its S3 port is the
    /// fixed 8333, so call this inside [`in_private_netns`].
    pub fn start() -> Result<Self, String> {
        let parent = std::env::var_os(NETNS_WORKDIR).map_or_else(std::env::temp_dir, PathBuf::from);
        let dir = tempfile::Builder::new()
            .prefix("seaweedfs-")
            .tempdir_in(parent)
            .map_err(|e| format!("temporary directory: {e}"))?;
        let out = Command::new("bash")
            .arg(script())
            .arg("start")
            .arg(dir.path())
            .arg(BUCKET)
            .output()
            .map_err(|e| format!("running {}: {e}", script().display()))?;
        if !out.status.success() {
            return Err(format!(
                "scripts/seaweedfs.sh start failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let env = fs::read_to_string(dir.path().join("env"))
            .map_err(|e| format!("reading the server's env file: {e}"))?;
        let var = |name: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_string)
                .ok_or_else(|| format!("{name} missing from the server's env file"))
        };
        Ok(Self {
            endpoint: var("AWS_ENDPOINT_URL")?,
            access_key: var("AWS_ACCESS_KEY_ID")?,
            secret_key: var("AWS_SECRET_ACCESS_KEY")?,
            dir,
        })
    }

    /// Create `bucket` unless it exists.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), String> {
        let out = Command::new("bash")
            .arg(script())
            .arg("bucket")
            .arg(self.dir.path())
            .arg(bucket)
            .output()
            .map_err(|e| format!("running {}: {e}", script().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "creating bucket {bucket}: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The S3 endpoint, e.g. `http://127.0.0.1:8333`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Settings that reach `bucket` on this server with its admin credentials.
    pub fn s3_config(&self, bucket: &str) -> S3Config {
        S3Config {
            endpoint: Some(self.endpoint.clone()),
            bucket: bucket.to_string(),
            region: Some("us-east-1".to_string()),
            root: None,
            access_key_id: Some(self.access_key.clone()),
            secret_access_key: Some(self.secret_key.clone()),
        }
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        stop(self.dir.path());
    }
}

fn stop(dir: &Path) {
    let status = Command::new("bash")
        .arg(script())
        .arg("stop")
        .arg(dir)
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("stopping SeaweedFS in {} failed: {status:?}", dir.display());
    }
}

/// Run `body` in a fresh network namespace: the test re-executes itself (only `test_name`,
/// which must be the test's full name) under `scripts/seaweedfs.sh netns` and passes when that
/// run passes. The inner run gets `timeout`; servers it leaves behind are stopped.
pub fn in_private_netns(test_name: &str, timeout: Duration, body: impl FnOnce()) {
    if let Some(workdir) = std::env::var_os(NETNS_WORKDIR) {
        body();
        fs::write(Path::new(&workdir).join(format!("{test_name}.done")), b"")
            .expect("write the completion marker");
        return;
    }
    let work = tempfile::Builder::new()
        .prefix("nokv-netns-")
        .tempdir()
        .unwrap();
    let log_path = work.path().join("inner.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut child = Command::new("bash")
        .arg(script())
        .arg("netns")
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(NETNS_WORKDIR, work.path())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("spawn scripts/seaweedfs.sh netns");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever happened inside, no server outlives the test.
    for entry in fs::read_dir(work.path()).unwrap().flatten() {
        if entry.path().join("weed.pid").exists() {
            stop(&entry.path());
        }
    }
    let output = fs::read_to_string(&log_path).unwrap_or_default();
    print!("{output}");
    match status {
        None => panic!("{test_name} did not finish within {timeout:?} in its network namespace"),
        Some(s) if !s.success() => panic!("{test_name} failed in its network namespace ({s})"),
        Some(_) => assert!(
            work.path().join(format!("{test_name}.done")).exists(),
            "the network-namespace run did not run {test_name}: is that the test's full name?"
        ),
    }
}
