//! A bounded cache of whole blocks, keyed by object key.
//!
//! Blocks are immutable (their keys are never reused), so cached bytes never go stale;
//! eviction is least-recently-used by a logical clock. A per-key in-flight table makes
//! concurrent misses of one block share a single GET.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::error::Result;

struct Entry {
    data: Bytes,
    tick: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, Entry>,
    bytes: usize,
    tick: u64,
}

/// Bounded LRU block cache.
pub(crate) struct BlockCache {
    inner: Mutex<Inner>,
    capacity: usize,
    inflight: Mutex<HashMap<String, Arc<OnceCell<Bytes>>>>,
}

impl BlockCache {
    pub fn new(capacity: usize) -> Self {
        BlockCache {
            inner: Mutex::new(Inner::default()),
            capacity,
            inflight: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.map.get_mut(key).map(|e| {
            e.tick = tick;
            e.data.clone()
        })
    }

    pub fn contains(&self, key: &str) -> bool {
        self.inner.lock().map.contains_key(key)
    }

    pub fn insert(&self, key: &str, data: Bytes) {
        if data.len() > self.capacity {
            return;
        }
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let len = data.len();
        if let Some(old) = inner.map.insert(key.to_string(), Entry { data, tick }) {
            inner.bytes -= old.data.len();
        }
        inner.bytes += len;
        while inner.bytes > self.capacity {
            let victim = inner
                .map
                .iter()
                .min_by_key(|(_, e)| e.tick)
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    let e = inner.map.remove(&k).expect("victim present");
                    inner.bytes -= e.data.len();
                }
                None => break,
            }
        }
    }

    /// The block `key`, fetched with `fetch` on a miss; concurrent misses share one fetch.
    pub async fn get_or_fetch<F, Fut>(&self, key: &str, fetch: F) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes>>,
    {
        if let Some(b) = self.get(key) {
            return Ok(b);
        }
        let cell = Arc::clone(self.inflight.lock().entry(key.to_string()).or_default());
        let res = cell.get_or_try_init(fetch).await.cloned();
        if let Ok(b) = &res {
            self.insert(key, b.clone());
        }
        self.inflight.lock().remove(key);
        res
    }

    /// Bytes currently held.
    #[allow(dead_code)]
    pub fn used(&self) -> usize {
        self.inner.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used() {
        let c = BlockCache::new(10);
        c.insert("a", Bytes::from_static(b"aaaa"));
        c.insert("b", Bytes::from_static(b"bbbb"));
        assert!(c.get("a").is_some());
        c.insert("c", Bytes::from_static(b"cccc"));
        assert!(c.contains("a") && c.contains("c") && !c.contains("b"));
        assert!(c.used() <= 10);
    }
}
