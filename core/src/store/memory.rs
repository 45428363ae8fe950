//! `MemStore`: the in-memory reference implementation of [`MetaStore`].
//!
//! A `BTreeMap` behind a mutex. It defines the expected behaviour in the conformance suite
//! and backs fast unit and model tests. It is volatile by design.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::{check_value_sizes, Batch, Guard, MetaStore, Op, StoreError, Versioned};

/// In-memory metadata store (volatile).
#[derive(Debug, Default)]
pub struct MemStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    next_version: u64,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys stored (for tests and storage accounting).
    pub fn len(&self) -> usize {
        self.inner.lock().map.len()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl MetaStore for MemStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.inner.lock().map.get(key).map(|(v, _)| v.clone()))
    }

    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        Ok(self.inner.lock().map.get(key).map(|(v, ver)| Versioned {
            value: v.clone(),
            version: *ver,
        }))
    }

    fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<super::Entry>, StoreError> {
        let from = if start > prefix { start } else { prefix };
        let inner = self.inner.lock();
        Ok(inner
            .map
            .range(from.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect())
    }

    fn commit(&self, batch: &Batch) -> Result<bool, StoreError> {
        check_value_sizes(batch)?;
        let mut inner = self.inner.lock();
        for guard in &batch.guards {
            let ok = match guard {
                Guard::Absent(k) => !inner.map.contains_key(k),
                Guard::Version(k, v) => inner.map.get(k).is_some_and(|(_, cur)| cur == v),
            };
            if !ok {
                return Ok(false);
            }
        }
        for op in &batch.ops {
            inner.next_version += 1;
            let ver = inner.next_version;
            match op {
                Op::Put(k, v) => {
                    inner.map.insert(k.clone(), (v.clone(), ver));
                }
                Op::Delete(k) => {
                    inner.map.remove(k);
                }
            }
        }
        Ok(true)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
