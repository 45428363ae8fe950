//! `ObjectStore`: immutable block objects in a local directory or an S3 bucket.
//!
//! The data path writes each 4 MiB block once under a key that is never reused
//! (`blocks/{volume}/{group}/{ino}-{generation}-{block}`, see `data::ObjectLayout`), reads it
//! back by range and deletes it when garbage collection proves it unreachable. This trait is
//! all it needs.
//!
//! Implementations: [`LocalStore`] (a local directory, the embedded default; see decision
//! 0005), [`OpendalStore`] (OpenDAL `s3`, or `fs`) and [`MemObjectStore`] for tests.
//! `opendal::Error` never leaves `object::opendal_store`: temporary errors are retried there
//! and the rest become [`ObjectError`].

#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod local_store;
mod memory;
mod opendal_store;

pub use local_store::LocalStore;
pub use memory::MemObjectStore;
pub use opendal_store::{OpendalStore, S3Config, StoreOptions};

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

/// Why an object operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectErrorKind {
    /// The object does not exist.
    NotFound,
    /// The backend refused the credentials or the operation.
    PermissionDenied,
    /// The backend is out of space.
    NoSpace,
    /// The backend stayed unreachable or overloaded after retries.
    Unavailable,
    /// Any other permanent failure.
    Other,
}

/// An object-store error: a kind plus a message naming the key and the backend's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ObjectError {
    kind: ObjectErrorKind,
    message: String,
}

impl ObjectError {
    /// A new error.
    pub fn new(kind: ObjectErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ObjectErrorKind {
        self.kind
    }
}

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the epoch (0 when the backend does not say).
    pub modified_secs: u64,
}

/// Immutable-object storage used by the data path.
///
/// Contract: `put` is atomic (a reader sees the whole object or none) and survives a process
/// crash when it returns; it survives a power loss once a later [`ObjectStore::sync`]
/// returned. Keys are `/`-separated relative paths without a leading slash.
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Store `data` under `key`, replacing nothing (keys are never reused by the core).
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError>;

    /// Bytes `range` of `key`. A range past the end of the object is clamped (the result
    /// may be shorter than asked). A missing key is `NotFound`.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectError>;

    /// Makes every `put` that returned before this call durable (survives power loss), or
    /// fails. After a failure, a later `sync` MUST NOT report those puts durable unless they
    /// are (the local store keeps failing until reopened). Backends whose puts are durable
    /// when acknowledged (S3) need not override it.
    ///
    /// Blocking: the metadata committer calls it before every metadata commit (commit
    /// invariant C5), on its own thread, or on a waiting caller's thread when
    /// [`Self::has_unsynced`] said there was nothing to do; never call it from an async task
    /// otherwise.
    fn sync(&self) -> Result<(), ObjectError> {
        Ok(())
    }

    /// Whether [`Self::sync`] would have anything to do (a put or a failure it has not
    /// synced or reported yet). Cheap; never blocks on I/O.
    fn has_unsynced(&self) -> bool {
        false
    }

    /// Remove `key`. Removing a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), ObjectError>;

    /// Every object whose key starts with `prefix` (recursively), in any order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectError>;

    /// A short description for logs and `nokv status` ("fs:/data/objects", "s3://bucket").
    fn describe(&self) -> String;
}
