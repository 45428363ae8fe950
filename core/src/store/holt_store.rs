//! `HoltStore`: the durable [`MetaStore`] on holt (placeholder until implemented).

use std::path::Path;

use super::{Batch, MetaStore, StoreError, Versioned};

/// Durable metadata store on holt.
pub struct HoltStore {
    _private: (),
}

impl HoltStore {
    /// Open or create the store in `dir`.
    pub fn open(_dir: &Path) -> Result<Self, StoreError> {
        Err(StoreError::Io("holt store not implemented yet".into()))
    }
}

impl MetaStore for HoltStore {
    fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Err(StoreError::Io("unimplemented".into()))
    }
    fn get_versioned(&self, _key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        Err(StoreError::Io("unimplemented".into()))
    }
    fn scan(&self, _p: &[u8], _s: &[u8], _l: usize) -> Result<Vec<super::Entry>, StoreError> {
        Err(StoreError::Io("unimplemented".into()))
    }
    fn commit(&self, _b: &Batch) -> Result<bool, StoreError> {
        Err(StoreError::Io("unimplemented".into()))
    }
    fn checkpoint(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
