//! `OpendalStore`: the real [`ObjectStore`], over an OpenDAL `fs` directory or an S3 bucket.
//!
//! This module owns everything OpenDAL-specific: building the operator, the HTTP client and
//! its timeouts, retrying, and turning `opendal::Error` into [`ObjectError`]. No OpenDAL type
//! appears in its public API.
//!
//! Invariants:
//! 1. **Only temporary errors are retried**, at most [`StoreOptions::max_attempts`] times with
//!    jittered exponential backoff; every attempt is bounded by
//!    [`StoreOptions::request_timeout`]. A temporary error that outlives the attempts becomes
//!    `Unavailable`; a permanent one surfaces at once with its own kind. The retry loop lives
//!    here rather than in OpenDAL's `RetryLayer` because that layer marks every error it
//!    returns "persistent", permanent ones included, so the caller could no longer tell
//!    "gave up retrying" (`Unavailable`) from a real permanent failure. All four operations
//!    are idempotent on immutable keys, so replaying a whole operation is safe.
//! 2. **`put` is atomic; `sync` makes puts durable.** `fs`: OpenDAL writes to a temporary
//!    file in `{root}/.nokv-tmp/`, fsyncs it and renames it over the key; the directories
//!    from the key's parent up to the root are remembered and fsynced, once each, by the next
//!    `sync` (the data path calls it before publishing metadata that references the
//!    objects), so the renames survive a power loss without a chain of directory fsyncs per
//!    block. S3: a single `PutObject`, atomic and durable by the protocol.
//! 3. **Both backends behave the same**: a range past the end is clamped. OpenDAL fails such
//!    a read on both backends (`RangeNotSatisfied` on fs and for S3's 416; "too little data"
//!    for S3's short 206), so after such a failure `get_range` stats the key and, if the range
//!    did cross the end, reads what exists; only those reads pay the extra round trips.
//!    Deleting a missing key succeeds; `list` is recursive and never returns directories,
//!    staged files or keys outside the prefix.
//! 4. **Keys are checked** before any I/O: non-empty, relative, no empty, `.` or `..`
//!    component, not under the reserved `.nokv-tmp/` directory. So a key is stored and listed
//!    back byte for byte.
//!
//! Known limits: on `fs`, directories emptied by `delete` stay behind (removing them would
//! race with a concurrent `put` into the same directory). S3 credentials are static keys or
//! none (anonymous); session tokens, profiles and instance metadata are not consulted, so the
//! store never depends on hidden configuration.

use std::fmt::Write as _;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use opendal::services::{Fs, S3};
use opendal::{EntryMode, HttpTransporter, OperationContext, Operator};

use super::{ObjectError, ObjectErrorKind, ObjectMeta, ObjectStore};

/// Directory under an `fs` root where OpenDAL stages objects before renaming them into place.
pub(super) const TMP_DIR: &str = ".nokv-tmp";

/// Staged files older than this are leftovers of a crash and are removed when a store opens.
const STALE_TMP_AGE: Duration = Duration::from_secs(3600);

/// Region used when neither the configuration nor the environment names one.
const DEFAULT_REGION: &str = "us-east-1";

/// S3 connection settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct S3Config {
    /// Endpoint URL, e.g. `http://127.0.0.1:8333`; `None` means AWS for the region.
    pub endpoint: Option<String>,
    /// Bucket (must exist).
    pub bucket: String,
    /// Region; `None` means `us-east-1`.
    pub region: Option<String>,
    /// Key prefix inside the bucket, e.g. `volumes/a`.
    pub root: Option<String>,
    /// Access key id; with `secret_access_key`, requests are signed. Without both, anonymous.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
}

impl S3Config {
    /// Settings for `bucket` taken from the usual AWS variables: `AWS_ENDPOINT_URL`,
    /// `AWS_REGION` (else `AWS_DEFAULT_REGION`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
    /// Empty variables count as unset.
    pub fn from_env(bucket: impl Into<String>) -> Self {
        Self::from_lookup(bucket, |name| std::env::var(name).ok())
    }

    /// Like [`S3Config::from_env`], with `lookup` standing in for the environment.
    pub fn from_lookup(bucket: impl Into<String>, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        Self {
            endpoint: var("AWS_ENDPOINT_URL"),
            bucket: bucket.into(),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
            root: None,
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
        }
    }

    /// Fill every unset field from `fallback` (e.g. command-line flags over the environment:
    /// `flags.or(S3Config::from_env(bucket))`). The bucket is kept unless it is empty.
    pub fn or(self, fallback: S3Config) -> Self {
        Self {
            endpoint: self.endpoint.or(fallback.endpoint),
            bucket: if self.bucket.is_empty() {
                fallback.bucket
            } else {
                self.bucket
            },
            region: self.region.or(fallback.region),
            root: self.root.or(fallback.root),
            access_key_id: self.access_key_id.or(fallback.access_key_id),
            secret_access_key: self.secret_access_key.or(fallback.secret_access_key),
        }
    }
}

/// Retry and timeout policy of an [`OpendalStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Attempts per operation, the first included (at least 1).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles per retry, with jitter.
    pub min_backoff: Duration,
    /// Longest backoff between two attempts.
    pub max_backoff: Duration,
    /// Time allowed to open a TCP connection (S3).
    pub connect_timeout: Duration,
    /// Time allowed for one attempt of one operation, transfer included.
    pub request_timeout: Duration,
}

impl Default for StoreOptions {
    /// 4 attempts, 100 ms..2 s backoff, 5 s to connect, 60 s per attempt: an unreachable
    /// endpoint fails in about 1 s (refused) or 21 s (silently dropped), while a 4 MiB block
    /// still has a minute on a slow link.
    fn default() -> Self {
        Self {
            max_attempts: 4,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Which backend a store talks to; decides error classification and `put` durability.
#[derive(Debug)]
enum Backend {
    Fs { root: PathBuf },
    S3 { describe: String },
}

/// [`ObjectStore`] over OpenDAL (`fs` or `s3`).
#[derive(Debug)]
pub struct OpendalStore {
    op: Operator,
    backend: Backend,
    opts: StoreOptions,
    /// fs: directories whose new entries are not yet durable (fsynced by `sync`).
    unsynced_dirs: parking_lot::Mutex<std::collections::BTreeSet<std::path::PathBuf>>,
}

impl OpendalStore {
    /// A store in the local directory `root`, created if missing, with default options.
    pub fn fs(root: &Path) -> Result<Self, ObjectError> {
        Self::fs_with(root, StoreOptions::default())
    }

    /// A store in the local directory `root` with the given retry policy.
    pub fn fs_with(root: &Path, opts: StoreOptions) -> Result<Self, ObjectError> {
        let fail = |what: &str, e: io::Error| {
            let kind = io_kind(&e).unwrap_or(ObjectErrorKind::Other);
            ObjectError::new(kind, format!("fs:{}: {what}: {e}", root.display()))
        };
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(|e| fail("create", e))?;
        let root = root.canonicalize().map_err(|e| fail("canonicalize", e))?;
        remove_stale_tmp(&root.join(TMP_DIR));
        let builder = Fs::default()
            .root(&root.to_string_lossy())
            .atomic_write_dir(&root.join(TMP_DIR).to_string_lossy());
        let op = Operator::new(builder).map_err(|e| {
            ObjectError::new(
                ObjectErrorKind::Other,
                format!("fs:{}: {e}", root.display()),
            )
        })?;
        Ok(Self {
            op,
            backend: Backend::Fs { root },
            opts,
            unsynced_dirs: Default::default(),
        })
    }

    /// A store in an S3 bucket with default options.
    pub fn s3(cfg: &S3Config) -> Result<Self, ObjectError> {
        Self::s3_with(cfg, StoreOptions::default())
    }

    /// A store in an S3 bucket with the given retry policy. Addressing is path-style
    /// (`{endpoint}/{bucket}/{key}`), which SeaweedFS, MinIO and AWS all accept.
    pub fn s3_with(cfg: &S3Config, opts: StoreOptions) -> Result<Self, ObjectError> {
        let describe = describe_s3(cfg);
        let invalid =
            |msg: String| ObjectError::new(ObjectErrorKind::Other, format!("{describe}: {msg}"));
        if cfg.bucket.is_empty() {
            return Err(invalid("no bucket given".into()));
        }
        let mut builder = S3::default()
            .bucket(&cfg.bucket)
            .region(cfg.region.as_deref().unwrap_or(DEFAULT_REGION))
            .root(cfg.root.as_deref().unwrap_or("/"))
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint(endpoint);
        }
        builder = match (&cfg.access_key_id, &cfg.secret_access_key) {
            (Some(id), Some(secret)) => builder.access_key_id(id).secret_access_key(secret),
            (None, None) => builder.skip_signature(),
            _ => {
                return Err(invalid(
                    "access key id and secret access key go together".into(),
                ))
            }
        };
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .build()
            .map_err(|e| invalid(format!("http client: {e}")))?;
        let transport = HttpTransporter::new(
            opendal_http_transport_reqwest::ReqwestTransport::new(client),
        );
        let op = Operator::new(builder)
            .map_err(|e| invalid(e.to_string()))?
            .with_context(OperationContext::new().with_http_transport(transport));
        Ok(Self {
            op,
            backend: Backend::S3 { describe },
            opts,
            unsynced_dirs: Default::default(),
        })
    }

    /// Run `attempt` until it succeeds, fails permanently, or runs out of attempts.
    async fn retry<T, F, Fut>(
        &self,
        what: &str,
        key: &str,
        mut attempt: F,
    ) -> Result<T, ObjectError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let max_attempts = self.opts.max_attempts.max(1);
        let mut backoff = self.opts.min_backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let failure = match tokio::time::timeout(self.opts.request_timeout, attempt()).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(failure)) => failure,
                Err(_) => {
                    Failure::temporary(format!("no answer within {:?}", self.opts.request_timeout))
                }
            };
            let context = format!("{what} {key:?} on {}", self.describe());
            if !failure.retryable {
                return Err(ObjectError::new(
                    failure.kind,
                    format!("{context}: {}", failure.detail),
                ));
            }
            if tries >= max_attempts {
                return Err(ObjectError::new(
                    ObjectErrorKind::Unavailable,
                    format!(
                        "{context}: gave up after {tries} attempts: {}",
                        failure.detail
                    ),
                ));
            }
            tracing::warn!(attempt = tries, "{context}: will retry: {}", failure.detail);
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(self.opts.max_backoff);
        }
    }

    /// Classify an OpenDAL error of this backend.
    fn failure(&self, err: opendal::Error) -> Failure {
        classify(&err, matches!(self.backend, Backend::Fs { .. }))
    }
}

#[async_trait]
impl ObjectStore for OpendalStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        check_key(key)?;
        self.retry("put", key, || async {
            self.op
                .write(key, data.clone())
                .await
                .map_err(|e| self.failure(e))?;
            if let Backend::Fs { root } = &self.backend {
                // The file itself was fsynced before its rename; the directory entries
                // become durable at the next `sync`.
                let mut dirs = self.unsynced_dirs.lock();
                let mut dir = root.join(key).parent().map(Path::to_path_buf);
                while let Some(d) = dir {
                    let at_root = d == *root;
                    if !dirs.insert(d.clone()) && !at_root {
                        break; // its ancestors are already pending
                    }
                    if at_root {
                        break;
                    }
                    dir = d.parent().map(Path::to_path_buf);
                }
            }
            Ok(())
        })
        .await
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectError> {
        check_key(key)?;
        if range.start >= range.end {
            // Nothing to read, but a missing key must still be NotFound.
            return self
                .retry("stat", key, || async {
                    self.op
                        .stat(key)
                        .await
                        .map(|_| Bytes::new())
                        .map_err(|e| self.failure(e))
                })
                .await;
        }
        self.retry("get", key, || async {
            match self.op.read_with(key).range(range.clone()).await {
                Ok(buf) => Ok(buf.to_bytes()),
                // OpenDAL insists on the exact range: a range past the end fails, with
                // `RangeNotSatisfied` (fs; S3's 416 when it starts at or past the end) or
                // "reader got too little data" (S3's short 206 when it crosses the end).
                // Learn the length; if the range did cross it, read what exists.
                Err(e) if may_be_past_end(&e) => {
                    let len = self
                        .op
                        .stat(key)
                        .await
                        .map_err(|e| self.failure(e))?
                        .content_length();
                    if range.end <= len {
                        return Err(self.failure(e));
                    }
                    if range.start >= len {
                        return Ok(Bytes::new());
                    }
                    let clamped = range.start..len;
                    let buf = self.op.read_with(key).range(clamped).await;
                    buf.map(|b| b.to_bytes()).map_err(|e| self.failure(e))
                }
                Err(e) => Err(self.failure(e)),
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        check_key(key)?;
        self.retry("delete", key, || async {
            match self.op.delete(key).await {
                Err(e) if e.kind() != opendal::ErrorKind::NotFound => Err(self.failure(e)),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectError> {
        if prefix.starts_with('/') {
            return Err(ObjectError::new(
                ObjectErrorKind::Other,
                format!(
                    "list {prefix:?} on {}: prefix must be relative",
                    self.describe()
                ),
            ));
        }
        // List the directory holding the prefix and filter: `fs` can only list directories,
        // and a prefix such as `blocks/1/2` must also match `blocks/1/23/...`.
        let dir = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
        let entries = self
            .retry("list", prefix, || async {
                self.op
                    .list_with(dir)
                    .recursive(true)
                    .await
                    .map_err(|e| self.failure(e))
            })
            .await?;
        Ok(entries
            .into_iter()
            .filter(|e| e.metadata().mode() == EntryMode::FILE)
            .filter(|e| e.path().starts_with(prefix) && !is_reserved(e.path()))
            .map(|e| {
                let meta = e.metadata();
                ObjectMeta {
                    key: e.path().to_string(),
                    size: meta.content_length(),
                    modified_secs: meta
                        .last_modified()
                        .and_then(|t| SystemTime::from(t).duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_secs()),
                }
            })
            .collect())
    }

    fn has_unsynced(&self) -> bool {
        !self.unsynced_dirs.lock().is_empty()
    }

    fn sync(&self) -> Result<(), ObjectError> {
        let Backend::Fs { root } = &self.backend else {
            return Ok(()); // S3 puts are durable when acknowledged.
        };
        let dirs: Vec<std::path::PathBuf> = std::mem::take(&mut *self.unsynced_dirs.lock())
            .into_iter()
            .collect();
        // Deepest first, so a parent's entry for a new child is synced after the child.
        let result = dirs
            .iter()
            .rev()
            .try_for_each(|d| std::fs::File::open(d)?.sync_all());
        result.map_err(|e| {
            let kind = io_kind(&e).unwrap_or(ObjectErrorKind::Other);
            ObjectError::new(kind, format!("fs:{}: sync: {e}", root.display()))
        })
    }

    fn describe(&self) -> String {
        match &self.backend {
            Backend::Fs { root } => format!("fs:{}", root.display()),
            Backend::S3 { describe } => describe.clone(),
        }
    }
}

/// Whether a failed ranged read may have failed only because the range crossed the end.
fn may_be_past_end(err: &opendal::Error) -> bool {
    match err.kind() {
        opendal::ErrorKind::RangeNotSatisfied => true,
        opendal::ErrorKind::Unexpected => !err.is_temporary(),
        _ => false,
    }
}

/// What one attempt's failure means: the kind to report and whether to try again.
#[derive(Debug)]
struct Failure {
    kind: ObjectErrorKind,
    /// The failure is temporary and the attempt may be replayed.
    retryable: bool,
    detail: String,
}

impl Failure {
    fn temporary(detail: String) -> Self {
        Self {
            kind: ObjectErrorKind::Unavailable,
            retryable: true,
            detail,
        }
    }

    fn permanent(kind: ObjectErrorKind, detail: String) -> Self {
        Self {
            kind,
            retryable: false,
            detail,
        }
    }

    /// A local I/O error: only interruptions and timeouts are worth another attempt.
    fn io(err: &io::Error) -> Self {
        match io_kind(err) {
            Some(kind) => Self::permanent(kind, err.to_string()),
            None if is_transient_io(err) => Self::temporary(err.to_string()),
            None => Self::permanent(ObjectErrorKind::Other, err.to_string()),
        }
    }
}

/// Map an OpenDAL error to a [`Failure`]. On `fs`, OpenDAL calls almost every I/O error
/// temporary (ENOSPC and EIO included); the errno is the better guide there.
fn classify(err: &opendal::Error, is_fs: bool) -> Failure {
    let detail = render(err);
    if is_fs {
        let io_source = std::error::Error::source(err).and_then(|s| s.downcast_ref::<io::Error>());
        if let Some(io_err) = io_source {
            return Failure {
                detail,
                ..Failure::io(io_err)
            };
        }
    }
    match err.kind() {
        opendal::ErrorKind::NotFound => Failure::permanent(ObjectErrorKind::NotFound, detail),
        opendal::ErrorKind::PermissionDenied => {
            Failure::permanent(ObjectErrorKind::PermissionDenied, detail)
        }
        _ if err.is_temporary() => Failure::temporary(detail),
        _ => Failure::permanent(ObjectErrorKind::Other, detail),
    }
}

/// The error's message and its whole source chain, without OpenDAL's response dump.
fn render(err: &opendal::Error) -> String {
    let mut out = format!("{} ({})", err.message(), err.kind());
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let _ = write!(out, ": {s}");
        source = s.source();
    }
    out
}

/// The [`ObjectErrorKind`] an I/O error maps to, when it is not a generic failure.
pub(super) fn io_kind(err: &io::Error) -> Option<ObjectErrorKind> {
    match err.kind() {
        io::ErrorKind::NotFound => Some(ObjectErrorKind::NotFound),
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            Some(ObjectErrorKind::PermissionDenied)
        }
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => Some(ObjectErrorKind::NoSpace),
        _ => None,
    }
}

fn is_transient_io(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Reject keys that would not round-trip or would escape the store.
pub(super) fn check_key(key: &str) -> Result<(), ObjectError> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        || is_reserved(key);
    if bad {
        return Err(ObjectError::new(
            ObjectErrorKind::Other,
            format!("invalid object key {key:?}"),
        ));
    }
    Ok(())
}

pub(super) fn is_reserved(key: &str) -> bool {
    key.strip_prefix(TMP_DIR)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Remove staged files left by a crash. Best effort: a failure here only leaks space.
pub(super) fn remove_stale_tmp(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TMP_AGE);
        if stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A delay in `[d/2, d]`, so that concurrent retries spread out.
fn jitter(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    half + half.mul_f64((random % 1024) as f64 / 1024.0)
}

fn describe_s3(cfg: &S3Config) -> String {
    let mut out = format!("s3://{}", cfg.bucket);
    if let Some(root) = cfg
        .root
        .as_deref()
        .map(|r| r.trim_matches('/'))
        .filter(|r| !r.is_empty())
    {
        let _ = write!(out, "/{root}");
    }
    if let Some(endpoint) = &cfg.endpoint {
        let _ = write!(out, " at {endpoint}");
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::object::conformance::{self, Expect};

    fn fs_store(dir: &tempfile::TempDir) -> OpendalStore {
        OpendalStore::fs(&dir.path().join("objects")).unwrap()
    }

    fn bytes(n: usize) -> Bytes {
        (0..n)
            .map(|i| (i * 7 % 251) as u8)
            .collect::<Vec<_>>()
            .into()
    }

    // The shared behaviour suite, one step per test, on the fs backend.
    #[tokio::test]
    async fn fs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
        conformance::round_trip(&store, "").await;
        // Nothing is left in the staging directory once `put` returns.
        let staged = std::fs::read_dir(dir.path().join("objects").join(TMP_DIR)).unwrap();
        assert_eq!(staged.count(), 0);
    }

    #[tokio::test]
    async fn fs_ranges_past_the_end_are_clamped() {
        let dir = tempfile::tempdir().unwrap();
        conformance::ranges_past_the_end(&fs_store(&dir), "").await;
    }

    #[tokio::test]
    async fn fs_empty_object() {
        let dir = tempfile::tempdir().unwrap();
        conformance::empty_object(&fs_store(&dir), "").await;
    }

    #[tokio::test]
    async fn fs_missing_key_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        conformance::missing_key(&fs_store(&dir), "").await;
    }

    #[tokio::test]
    async fn fs_delete_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        conformance::delete_is_idempotent(&fs_store(&dir), "").await;
    }

    #[tokio::test]
    async fn fs_list_is_recursive_with_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
        let expect = Expect {
            modified_times: true,
        };
        conformance::list_recursive(&store, "", expect).await;
        // Staged files and directories never show up, even when listing everything.
        std::fs::write(dir.path().join("objects").join(TMP_DIR).join("x.123"), b"x").unwrap();
        let all = store.list("").await.unwrap();
        assert!(all.iter().all(|m| m.key.starts_with("ls/")), "{all:?}");
        assert!(store.list("/abs").await.is_err());
    }

    #[tokio::test]
    async fn fs_large_object_and_many_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
        conformance::large_object(&store, "", 20 << 20).await;
        conformance::many_keys(&store, "", 300).await;
    }

    #[tokio::test]
    async fn invalid_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = fs_store(&dir);
        for key in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "./a",
            ".nokv-tmp/x",
            ".nokv-tmp",
        ] {
            assert!(store.put(key, bytes(1)).await.is_err(), "{key:?} accepted");
        }
        store.put(".nokv-tmpx/ok", bytes(1)).await.unwrap();
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions {
            min_backoff: Duration::from_secs(5),
            ..StoreOptions::default()
        };
        let store = OpendalStore::fs_with(dir.path(), opts).unwrap();
        store.put("f", bytes(1)).await.unwrap();
        let start = Instant::now();
        // `f` is a file, so `f/g` cannot be created: ENOTDIR, not worth a retry.
        let err = store.put("f/g", bytes(1)).await.unwrap_err();
        assert_eq!(err.kind(), ObjectErrorKind::Other, "{err}");
        assert!(start.elapsed() < Duration::from_secs(2), "retried: {err}");
    }

    #[test]
    fn io_errors_map_to_kinds() {
        let no_space = opendal::Error::new(opendal::ErrorKind::Unexpected, "write")
            .set_source(io::Error::from(io::ErrorKind::StorageFull))
            .set_temporary();
        let f = classify(&no_space, true);
        assert_eq!((f.kind, f.retryable), (ObjectErrorKind::NoSpace, false));
        let read_only = opendal::Error::new(opendal::ErrorKind::Unexpected, "write")
            .set_source(io::Error::from(io::ErrorKind::ReadOnlyFilesystem));
        assert_eq!(
            classify(&read_only, true).kind,
            ObjectErrorKind::PermissionDenied
        );
        let server_busy =
            opendal::Error::new(opendal::ErrorKind::Unexpected, "503").set_temporary();
        let f = classify(&server_busy, false);
        assert_eq!((f.kind, f.retryable), (ObjectErrorKind::Unavailable, true));
        let bad_request = opendal::Error::new(opendal::ErrorKind::Unexpected, "400");
        assert!(!classify(&bad_request, false).retryable);
    }

    #[test]
    fn s3_config_from_env_and_flags() {
        let env = |name: &str| match name {
            "AWS_ENDPOINT_URL" => Some("http://127.0.0.1:8333".to_string()),
            "AWS_REGION" => Some(String::new()),
            "AWS_DEFAULT_REGION" => Some("eu-west-1".to_string()),
            "AWS_ACCESS_KEY_ID" => Some("id".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_string()),
            _ => None,
        };
        let cfg = S3Config::from_lookup("b", env);
        assert_eq!(cfg.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(cfg.region.as_deref(), Some("eu-west-1"));
        assert_eq!(cfg.access_key_id.as_deref(), Some("id"));
        let flags = S3Config {
            region: Some("us-west-2".into()),
            ..S3Config::default()
        };
        let merged = flags.or(cfg);
        assert_eq!(merged.bucket, "b");
        assert_eq!(merged.region.as_deref(), Some("us-west-2"));
        assert_eq!(merged.secret_access_key.as_deref(), Some("secret"));
    }

    fn quick() -> StoreOptions {
        StoreOptions {
            max_attempts: 3,
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(500),
        }
    }

    fn s3_at(addr: std::net::SocketAddr) -> OpendalStore {
        let cfg = S3Config {
            endpoint: Some(format!("http://{addr}")),
            bucket: "nokv".into(),
            access_key_id: Some("id".into()),
            secret_access_key: Some("secret".into()),
            ..S3Config::default()
        };
        OpendalStore::s3_with(&cfg, quick()).unwrap()
    }

    #[tokio::test]
    async fn unreachable_s3_is_unavailable_quickly() {
        // A port that was just free: connections are refused.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let store = s3_at(addr);
        let start = Instant::now();
        let err = store.get_range("k", 0..10).await.unwrap_err();
        assert_eq!(err.kind(), ObjectErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("3 attempts"), "{err}");
        let err = store.put("k", bytes(10)).await.unwrap_err();
        assert_eq!(err.kind(), ObjectErrorKind::Unavailable, "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn silent_s3_times_out_as_unavailable() {
        // Accepts connections (the kernel does, via the backlog) but never answers.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let store = s3_at(listener.local_addr().unwrap());
        let start = Instant::now();
        let err = store.list("").await.unwrap_err();
        assert_eq!(err.kind(), ObjectErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("no answer"), "{err}");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "took {:?}",
            start.elapsed()
        );
    }
}
