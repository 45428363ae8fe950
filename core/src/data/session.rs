//! Write sessions: per-file buffering of writes until they are published.
//!
//! One session exists per open file id with unpublished writes. Written bytes go to a
//! sparse staging file in the volume's staging directory at their file offsets (block `b`
//! at `b * BLOCK_SIZE`), so memory stays bounded whatever is written. A block is *dirty*
//! from its first write until publish. When a write passes the end of a block, that block
//! is complete and is uploaded in the background; `flush`/`fsync`/`COMMIT` upload the rest,
//! wait for every upload, then publish all changed chunk manifests and the new size in one
//! metadata commit (see `fs::file`).
//!
//! Invariants:
//! - S1. A dirty block's staging bytes are the block's full current content: the first
//!   partial write into a block that has committed data first copies that data in
//!   (read-modify-write), so staging never mixes "unknown" ranges.
//! - S2. After a successful publish the staging file is emptied and no block is dirty.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use tokio::task::JoinHandle;

use super::BLOCK_SIZE;
use crate::error::{ErrorKind, FsError, Result};
use crate::types::{FileId, Timestamp};

/// An upload started in the background for a completed block.
pub(crate) struct Upload {
    pub generation: u64,
    pub len: u32,
    pub task: JoinHandle<Result<()>>,
}

/// Mutable state of a session (behind the session's async mutex).
pub(crate) struct SessionState {
    staging: Option<File>,
    staging_path: PathBuf,
    /// Dirty blocks (by file block index) whose bytes live in staging.
    pub dirty: BTreeMap<u64, ()>,
    /// Dirty blocks whose upload already started: block -> upload.
    pub uploading: BTreeMap<u64, Upload>,
    /// Logical size including unpublished writes.
    pub size: u64,
    /// Set when unpublished writes changed the file.
    pub modified: Option<Timestamp>,
    /// Generation of this publish cycle's uploads, and the blocks uploaded under it.
    pub generation: Option<u64>,
    pub uploaded: std::collections::HashSet<u64>,
}

/// A write session for one file id.
pub(crate) struct Session {
    pub state: tokio::sync::Mutex<SessionState>,
    /// Size and mtime of unpublished writes, readable without the async lock (getattr).
    pub pending: parking_lot::Mutex<Option<(u64, Timestamp)>>,
}

impl Session {
    pub fn new(id: FileId, staging_path: PathBuf, size: u64) -> Self {
        let _ = id;
        Session {
            state: tokio::sync::Mutex::new(SessionState {
                staging: None,
                staging_path,
                dirty: BTreeMap::new(),
                uploading: BTreeMap::new(),
                size,
                modified: None,
                generation: None,
                uploaded: std::collections::HashSet::new(),
            }),
            pending: parking_lot::Mutex::new(None),
        }
    }
}

fn io_err(what: &str, e: std::io::Error) -> FsError {
    let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
        ErrorKind::NoSpace
    } else {
        ErrorKind::Io
    };
    FsError::new(kind, format!("staging {what}: {e}"))
}

impl SessionState {
    fn file(&mut self) -> Result<&File> {
        if self.staging.is_none() {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&self.staging_path)
                .map_err(|e| io_err("open", e))?;
            self.staging = Some(f);
        }
        Ok(self.staging.as_ref().expect("just set"))
    }

    /// Whether block `b`'s current bytes live in staging.
    pub fn is_staged(&self, b: u64) -> bool {
        self.dirty.contains_key(&b) || self.uploading.contains_key(&b)
    }

    /// Writes `data` at file offset `off` into staging.
    pub fn write_at(&mut self, off: u64, data: &[u8]) -> Result<()> {
        self.file()?
            .write_all_at(data, off)
            .map_err(|e| io_err("write", e))
    }

    /// Reads `len` bytes at `off` from staging (zeros where never written).
    pub fn read_at(&mut self, off: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        let f = self.file()?;
        let mut done = 0;
        while done < len {
            let n = f
                .read_at(&mut buf[done..], off + done as u64)
                .map_err(|e| io_err("read", e))?;
            if n == 0 {
                break; // past the staging file's end: zeros
            }
            done += n;
        }
        Ok(buf)
    }

    /// The full content of staged block `b` (its valid length given the current size).
    pub fn block_bytes(&mut self, b: u64) -> Result<Vec<u8>> {
        let start = b * BLOCK_SIZE as u64;
        let len = self.size.saturating_sub(start).min(BLOCK_SIZE as u64) as usize;
        self.read_at(start, len)
    }

    /// Forgets all staged data after a publish (S2).
    pub fn reset(&mut self) -> Result<()> {
        self.dirty.clear();
        self.uploading.clear();
        self.modified = None;
        self.generation = None;
        self.uploaded.clear();
        if let Some(f) = &self.staging {
            f.set_len(0).map_err(|e| io_err("truncate", e))?;
        }
        Ok(())
    }

    /// Whether anything awaits publishing.
    pub fn has_changes(&self) -> bool {
        self.modified.is_some() || !self.dirty.is_empty() || !self.uploading.is_empty()
    }
}

impl Drop for SessionState {
    fn drop(&mut self) {
        if self.staging.take().is_some() {
            let _ = std::fs::remove_file(&self.staging_path);
        }
    }
}
