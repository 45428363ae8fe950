//! The data path: immutable blocks in the object store, write sessions, the block cache.
//!
//! Layout: a file is a sequence of 64 MiB chunks of 16 blocks of 4 MiB. A chunk manifest
//! (`C` record) maps each block index to the object that holds it; a missing block is a hole
//! and reads as zeros, as do bytes of a block past its recorded length. Objects are keyed
//! by volume, writing inode, a volume-unique generation and block index ([`ObjectLayout`]),
//! so no two writers ever produce the same key and objects are never rewritten.
//!
//! Durability order (invariant D1): every object a manifest references is written (`put`
//! returned) and made durable (`ObjectStore::sync` returned) before the metadata commit
//! that publishes the manifest. A crash between
//! the two leaves only unreferenced objects, never a manifest pointing at missing data.

mod budget;
mod cache;
mod session;

pub(crate) use budget::DirtyBudget;
pub(crate) use cache::BlockCache;
pub(crate) use session::{Held, Session, SessionState, StagedRead, Upload};

use std::sync::Arc;

use bytes::Bytes;

use crate::error::Result;
use crate::object::ObjectStore;

/// Size of a data block (the unit of object I/O).
pub const BLOCK_SIZE: usize = 4 << 20;
/// Blocks per chunk manifest.
pub const BLOCKS_PER_CHUNK: usize = 16;
/// Size of a chunk (the unit of metadata for file data).
pub const CHUNK_SIZE: u64 = (BLOCK_SIZE * BLOCKS_PER_CHUNK) as u64;
/// Files up to this size are stored inline in their inode record.
pub const INLINE_MAX: u64 = 8 * 1024;

/// How a volume names its block objects; recorded in the volume's metadata when it is
/// formatted (decision 0013), so that a volume keeps the layout it was written with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ObjectLayout {
    /// `blocks/{volume}/{owner}/{generation}/{chunk}/{index}`: volumes formatted before
    /// the layout was recorded. On a local directory every new file made three
    /// directories, each fsynced with the object.
    Nested,
    /// `blocks/{volume}/{group}/{owner}-{generation}-{block}`, `group` being the owner's
    /// inode number / 1024 mod 256 in two hex digits: a fixed set of 256 directories, and
    /// files created together share one.
    Flat,
}

impl ObjectLayout {
    /// The number recorded in the volume's metadata.
    pub(crate) fn number(self) -> u64 {
        match self {
            ObjectLayout::Nested => 1,
            ObjectLayout::Flat => 2,
        }
    }

    /// The layout recorded as `n`, if known.
    pub(crate) fn from_number(n: u64) -> Option<Self> {
        match n {
            1 => Some(ObjectLayout::Nested),
            2 => Some(ObjectLayout::Flat),
            _ => None,
        }
    }

    /// Object key of block `block` of the data written by file `owner` in `generation`.
    pub(crate) fn key(self, volume: &str, owner: u64, generation: u64, block: u64) -> String {
        match self {
            ObjectLayout::Nested => {
                let chunk = block / BLOCKS_PER_CHUNK as u64;
                let idx = block % BLOCKS_PER_CHUNK as u64;
                format!("blocks/{volume}/{owner}/{generation}/{chunk}/{idx}")
            }
            ObjectLayout::Flat => {
                let group = (owner >> 10) & 0xff;
                format!("blocks/{volume}/{group:02x}/{owner}-{generation}-{block}")
            }
        }
    }
}

/// Object I/O shared by every file: the store, the volume id and the cache.
pub(crate) struct DataPath {
    pub objects: Arc<dyn ObjectStore>,
    pub volume: String,
    pub layout: ObjectLayout,
    pub cache: BlockCache,
    pub staging: std::path::PathBuf,
    /// Bounds the memory of dirty blocks across all write sessions.
    pub dirty: Arc<DirtyBudget>,
    /// Bounds concurrent background uploads.
    pub uploads: Arc<tokio::sync::Semaphore>,
}

impl DataPath {
    /// Object key of block `block` of the data written by file `owner` in `generation`.
    pub fn object_key(&self, owner: u64, generation: u64, block: u64) -> String {
        self.layout.key(&self.volume, owner, generation, block)
    }

    /// The first `len` bytes of block `key`, through the cache.
    ///
    /// The cache holds whole objects: one object can be referenced with different valid
    /// lengths (a truncate clamps a manifest's length, while a snapshot or fork still
    /// reads the longer one), so an entry must never be a shorter prefix.
    pub async fn block(&self, key: &str, len: u32) -> Result<Bytes> {
        let objects = Arc::clone(&self.objects);
        let k = key.to_string();
        let whole = self
            .cache
            .get_or_fetch(key, || async move {
                Ok(objects.get_range(&k, 0..BLOCK_SIZE as u64).await?)
            })
            .await?;
        Ok(whole.slice(..(len as usize).min(whole.len())))
    }

    /// Bytes `range` of block `key` without caching (random reads of uncached blocks).
    pub async fn block_range(&self, key: &str, range: std::ops::Range<u64>) -> Result<Bytes> {
        if let Some(b) = self.cache.get(key) {
            let end = (range.end as usize).min(b.len());
            let start = (range.start as usize).min(end);
            return Ok(b.slice(start..end));
        }
        Ok(self.objects.get_range(key, range).await?)
    }

    /// Starts fetching `key` into the cache in the background (read-ahead).
    pub fn prefetch(self: &Arc<Self>, key: String, len: u32) {
        if self.cache.contains(&key) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move {
            let _ = me.block(&key, len).await;
        });
    }
}
