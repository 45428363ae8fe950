//! `MemObjectStore`: a volatile object store for tests, with optional fault injection.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{ObjectError, ObjectErrorKind, ObjectMeta, ObjectStore};

/// In-memory object store. `set_failing(true)` makes every call fail as `Unavailable`.
#[derive(Debug, Default)]
pub struct MemObjectStore {
    /// key -> (bytes, put time in seconds since the epoch)
    objects: Mutex<BTreeMap<String, (Bytes, u64)>>,
    failing: AtomicBool,
}

impl MemObjectStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Make every later call fail (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Number of objects held.
    pub fn len(&self) -> usize {
        self.objects.lock().len()
    }

    /// Keys of every object held, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().keys().cloned().collect()
    }

    /// Removes an object behind the filesystem's back (to test fsck).
    pub fn remove(&self, key: &str) {
        self.objects.lock().remove(key);
    }

    /// True when no object is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self) -> Result<(), ObjectError> {
        if self.failing.load(Ordering::SeqCst) {
            Err(ObjectError::new(
                ObjectErrorKind::Unavailable,
                "injected failure",
            ))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl ObjectStore for MemObjectStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        self.check()?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.objects.lock().insert(key.to_string(), (data, now));
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectError> {
        self.check()?;
        let objects = self.objects.lock();
        let (data, _) = objects
            .get(key)
            .ok_or_else(|| ObjectError::new(ObjectErrorKind::NotFound, key.to_string()))?;
        let len = data.len() as u64;
        let start = range.start.min(len) as usize;
        let end = range.end.min(len) as usize;
        Ok(data.slice(start..end.max(start)))
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        self.check()?;
        self.objects.lock().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectError> {
        self.check()?;
        Ok(self
            .objects
            .lock()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, (v, t))| ObjectMeta {
                key: k.clone(),
                size: v.len() as u64,
                modified_secs: *t,
            })
            .collect())
    }

    fn describe(&self) -> String {
        "memory".to_string()
    }
}
