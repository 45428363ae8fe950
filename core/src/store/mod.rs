//! `MetaStore`: the narrow interface to the embedded metadata engine.
//!
//! Everything the core persists as metadata goes through this trait: point reads, ordered
//! prefix scans from a start key, and atomic guarded batches. Three implementations exist:
//! [`RedbStore`] (durable, the default engine of new volumes), [`HoltStore`] (durable,
//! selectable) and [`MemStore`] (an in-memory reference used by tests). The conformance
//! suite in `store::conformance` runs against all three.
//!
//! Contract shared by every implementation:
//! - Keys are byte strings compared lexicographically. Callers (the key codec in
//!   `meta::keys`) guarantee that no key is ever a strict prefix of another key; an
//!   implementation MAY reject or mishandle such keys (holt does, see `docs/design.md`).
//! - Values are at most [`MAX_VALUE_LEN`] bytes; larger values are rejected with
//!   [`StoreError::ValueTooLarge`] and nothing is written.
//! - [`MetaStore::commit`] is atomic and durable: when it returns `Ok(true)` every op of the
//!   batch is applied and on stable storage; on `Ok(false)` (a guard failed) or `Err` none
//!   is. A process kill at any point leaves the batch entirely applied or entirely absent.
//! - Scans see a state at least as new as every commit that returned before the scan began.

mod holt_store;
mod memory;
mod redb_log;
mod redb_store;

#[cfg(test)]
mod conformance;

pub use holt_store::HoltStore;
pub use memory::MemStore;
pub use redb_store::RedbStore;
pub(crate) use redb_store::FILE_NAME as REDB_FILE_NAME;

/// Largest value a store accepts (holt's limit).
pub const MAX_VALUE_LEN: usize = 65_535;

/// An opaque per-key version token used by [`Guard::Version`]. It changes on every write of
/// the key; it is not an MVCC timestamp.
pub type KeyVersion = u64;

/// A key and its value, as returned by scans.
pub type Entry = (Vec<u8>, Vec<u8>);

/// A value together with its current version token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// The stored value.
    pub value: Vec<u8>,
    /// The key's current version token.
    pub version: KeyVersion,
}

/// One mutation of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Insert or overwrite `key`.
    Put(Vec<u8>, Vec<u8>),
    /// Remove `key` if present (deleting an absent key is not an error).
    Delete(Vec<u8>),
}

impl Op {
    /// The key this op writes.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k,
        }
    }
}

/// A precondition checked atomically before a batch applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guard {
    /// `key` must currently exist with this version token.
    Version(Vec<u8>, KeyVersion),
    /// `key` must currently be absent.
    Absent(Vec<u8>),
}

/// An atomic batch: guards are checked first, then all ops apply, or nothing does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// Preconditions, all checked against the state before the batch.
    pub guards: Vec<Guard>,
    /// Mutations, applied in order (a later op on the same key wins).
    pub ops: Vec<Op>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add a put.
    pub fn put(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put(key.into(), value.into()));
        self
    }

    /// Add a delete.
    pub fn delete(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete(key.into()));
        self
    }

    /// Require `key` to be absent.
    pub fn assert_absent(&mut self, key: impl Into<Vec<u8>>) -> &mut Self {
        self.guards.push(Guard::Absent(key.into()));
        self
    }

    /// Require `key` to carry `version`.
    pub fn assert_version(&mut self, key: impl Into<Vec<u8>>, version: KeyVersion) -> &mut Self {
        self.guards.push(Guard::Version(key.into(), version));
        self
    }

    /// True when the batch has no ops and no guards.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.guards.is_empty()
    }
}

/// Errors of a metadata store.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O or engine failure; the batch was not applied.
    #[error("I/O error: {0}")]
    Io(String),
    /// The disk is full; the batch was not applied.
    #[error("no space: {0}")]
    NoSpace(String),
    /// A value exceeded [`MAX_VALUE_LEN`].
    #[error("value of {len} bytes exceeds the {max}-byte limit")]
    ValueTooLarge {
        /// Offending length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Stored bytes failed validation.
    #[error("corrupt: {0}")]
    Corrupt(String),
    /// The store is held by another process.
    #[error("locked by {holder}")]
    Locked {
        /// Who holds it, as far as known.
        holder: String,
    },
    /// The store was closed or poisoned by an earlier failure.
    #[error("store closed: {0}")]
    Closed(String),
}

/// The metadata engine interface. See the module docs for the contract.
pub trait MetaStore: Send + Sync + 'static {
    /// The value of `key`, if present.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// The value and version token of `key`, if present.
    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError>;

    /// Up to `limit` entries whose key starts with `prefix` and is `>= start`, in ascending
    /// key order. `start` MAY be shorter than `prefix` or sort before it, in which case the
    /// scan starts at the first key of the prefix. MUST return every matching key (no
    /// delimiter roll-ups, no silent drops).
    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError>;

    /// Apply `batch` atomically and durably. `Ok(false)` when a guard failed (nothing
    /// applied). Values longer than [`MAX_VALUE_LEN`] MUST be rejected before anything applies.
    fn commit(&self, batch: &Batch) -> Result<bool, StoreError>;

    /// Flush engine state to its files (a checkpoint) so reopen is fast. Durability never
    /// depends on calling this.
    fn checkpoint(&self) -> Result<(), StoreError>;
}

/// Checks value sizes of a batch; shared by the implementations.
pub(crate) fn check_value_sizes(batch: &Batch) -> Result<(), StoreError> {
    for op in &batch.ops {
        if let Op::Put(_, v) = op {
            if v.len() > MAX_VALUE_LEN {
                return Err(StoreError::ValueTooLarge {
                    len: v.len(),
                    max: MAX_VALUE_LEN,
                });
            }
        }
    }
    Ok(())
}
