//! Write sessions: per-file buffering of writes until they are published.
//!
//! One session exists per open file id with unpublished writes. A block is *dirty* from its
//! first write until its upload starts. A dirty block lives in memory when the volume's
//! dirty budget ([`DirtyBudget`]) grants it a reservation of one block, otherwise in a sparse
//! staging file in the volume's staging directory, at its file offset (block `b` at
//! `b * BLOCK_SIZE`). When a write passes the end of a block, that block is complete and is
//! uploaded in the background straight from where it lives (memory: no copy); while the
//! upload runs its bytes stay readable there. An in-memory block's bytes and reservation are
//! dropped as soon as its `put` succeeds, after which reads of the block go to its object.
//! `flush`/`fsync`/`COMMIT` upload the rest, wait for every upload, `sync` the object store,
//! then publish all changed chunk manifests and the new size in one metadata commit (see
//! `fs::file`).
//!
//! Invariants:
//! - S1. A dirty block's bytes (in memory or in staging) are the block's full current
//!   content: the first partial write into a block that has committed data first copies
//!   that data in (read-modify-write), so nothing mixes "unknown" ranges. Bytes past what was
//!   written read as zeros.
//! - S2. After a successful publish no block is dirty or uploading, the staging file is
//!   emptied, and the session holds no block memory or budget.
//! - Memory is bounded: dirty and uploading blocks hold at most the volume's budget. The one
//!   exception is a write into a block whose upload is still running: the session takes the
//!   reservation back with a copy of the bytes, and the abandoned upload's copy lives until
//!   its `put` returns (bounded by the upload concurrency).

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use super::budget::{DirtyBudget, Reservation};
use super::BLOCK_SIZE;
use crate::error::{ErrorKind, FsError, Result};
use crate::types::{FileId, Timestamp};

const BS: u64 = BLOCK_SIZE as u64;

/// A dirty block held in memory: its bytes from the block's start (shorter than the block
/// when its end was never written; the rest reads as zeros) and its share of the budget.
pub(crate) struct MemBlock {
    buf: Vec<u8>,
    res: Reservation,
}

/// Where a dirty block's bytes live.
pub(crate) enum Dirty {
    Mem(MemBlock),
    Staged,
}

/// The bytes of an in-memory block under upload, with their reservation; emptied by the
/// upload task once the object holds them.
pub(crate) type HeldBytes = Arc<Mutex<Option<(Bytes, Reservation)>>>;

/// Where an uploading block's bytes can be read until its upload is published.
pub(crate) enum Held {
    /// In the staging file.
    Staged,
    /// In memory while the slot is full; in the object once it is empty.
    Mem(HeldBytes),
}

/// An upload of one block's content under one key.
pub(crate) struct Upload {
    pub generation: u64,
    pub len: u32,
    pub key: String,
    pub held: Held,
    /// The running `put`; `None` once it is known to have succeeded.
    pub task: Option<JoinHandle<Result<()>>>,
}

impl Upload {
    /// Abandons the upload (its object, if written, becomes garbage) and returns the block's
    /// bytes as dirty again; or gives the upload back when its bytes are only in its object.
    pub fn take_back(self) -> std::result::Result<Dirty, Upload> {
        let taken = match &self.held {
            Held::Staged => return Ok(Dirty::Staged),
            Held::Mem(slot) => slot.lock().take(),
        };
        match taken {
            // Copies unless the put already dropped its reference.
            Some((bytes, res)) => Ok(Dirty::Mem(MemBlock {
                buf: Vec::from(bytes),
                res,
            })),
            None => Err(Upload { task: None, ..self }),
        }
    }
}

/// What [`SessionState::read_staged`] found.
pub(crate) enum StagedRead {
    /// The bytes asked for.
    Bytes(Vec<u8>),
    /// The block's bytes are only in the (uploaded, unpublished) object `key` of `len` bytes.
    Object { key: String, len: u32 },
}

/// Mutable state of a session (behind the session's async mutex).
pub(crate) struct SessionState {
    staging: Option<File>,
    staging_path: PathBuf,
    /// Dirty blocks by file block index.
    pub dirty: BTreeMap<u64, Dirty>,
    /// Blocks whose upload started: block -> upload.
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

/// Bytes `[from, to)` of a block whose content is `buf` from its start (zeros past it).
fn slice_padded(buf: &[u8], from: usize, to: usize) -> Vec<u8> {
    let mut out = vec![0u8; to - from];
    if from < buf.len() {
        let n = buf.len().min(to) - from;
        out[..n].copy_from_slice(&buf[from..from + n]);
    }
    out
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

    /// Whether block `b`'s current bytes belong to this session (dirty or uploading).
    pub fn is_staged(&self, b: u64) -> bool {
        self.dirty.contains_key(&b) || self.uploading.contains_key(&b)
    }

    /// Valid length of block `b` at the current size.
    fn block_len(&self, b: u64) -> usize {
        self.size.saturating_sub(b * BS).min(BS) as usize
    }

    /// Makes `b` dirty with `content` (its bytes from the block's start; the rest reads as
    /// zeros): in memory when the budget grants a block, else in staging.
    pub fn make_dirty(&mut self, budget: &Arc<DirtyBudget>, b: u64, content: &[u8]) -> Result<()> {
        debug_assert!(!self.is_staged(b));
        if let Some((mut buf, res)) = budget.block() {
            buf.extend_from_slice(content);
            self.dirty.insert(b, Dirty::Mem(MemBlock { buf, res }));
        } else {
            if !content.is_empty() {
                self.write_at(b * BS, content)?;
            }
            self.dirty.insert(b, Dirty::Staged);
        }
        Ok(())
    }

    /// Writes `data` at file offset `off` into dirty block `b` (the range lies inside it).
    pub fn write_block(&mut self, b: u64, off: u64, data: &[u8]) -> Result<()> {
        match self.dirty.get_mut(&b) {
            Some(Dirty::Mem(m)) => {
                let pos = (off - b * BS) as usize;
                if m.buf.len() < pos {
                    m.buf.resize(pos, 0);
                }
                let overlap = (m.buf.len() - pos).min(data.len());
                m.buf[pos..pos + overlap].copy_from_slice(&data[..overlap]);
                m.buf.extend_from_slice(&data[overlap..]);
                Ok(())
            }
            Some(Dirty::Staged) => self.write_at(off, data),
            None => Err(FsError::new(
                ErrorKind::Io,
                format!("write into block {b}, which is not dirty"),
            )),
        }
    }

    /// Bytes `[from, to)` (file offsets inside block `b`) of staged block `b`.
    pub fn read_staged(&mut self, b: u64, from: u64, to: u64) -> Result<StagedRead> {
        let (f, t) = ((from - b * BS) as usize, (to - b * BS) as usize);
        match (self.dirty.get(&b), self.uploading.get(&b)) {
            (Some(Dirty::Mem(m)), _) => Ok(StagedRead::Bytes(slice_padded(&m.buf, f, t))),
            (
                None,
                Some(Upload {
                    held: Held::Mem(slot),
                    key,
                    len,
                    ..
                }),
            ) => match &*slot.lock() {
                Some((bytes, _)) => Ok(StagedRead::Bytes(slice_padded(bytes, f, t))),
                None => Ok(StagedRead::Object {
                    key: key.clone(),
                    len: *len,
                }),
            },
            _ => Ok(StagedRead::Bytes(self.read_at(from, (to - from) as usize)?)),
        }
    }

    /// Takes dirty block `b` for upload: its bytes at the current size, and where they stay
    /// readable until the upload is published. `None` when `b` is not dirty.
    pub fn take_for_upload(&mut self, b: u64) -> Result<Option<(Bytes, Held)>> {
        let len = self.block_len(b);
        match self.dirty.get(&b) {
            None => Ok(None),
            Some(Dirty::Staged) => {
                let bytes = Bytes::from(self.read_at(b * BS, len)?);
                self.dirty.remove(&b);
                Ok(Some((bytes, Held::Staged)))
            }
            Some(Dirty::Mem(_)) => {
                let Some(Dirty::Mem(MemBlock { mut buf, res })) = self.dirty.remove(&b) else {
                    unreachable!("matched above")
                };
                buf.resize(len, 0);
                let bytes = Bytes::from(buf);
                let slot = Arc::new(Mutex::new(Some((bytes.clone(), res))));
                Ok(Some((bytes, Held::Mem(slot))))
            }
        }
    }

    /// Writes `data` at file offset `off` into staging.
    fn write_at(&mut self, off: u64, data: &[u8]) -> Result<()> {
        self.file()?
            .write_all_at(data, off)
            .map_err(|e| io_err("write", e))
    }

    /// Reads `len` bytes at `off` from staging (zeros where never written).
    fn read_at(&mut self, off: u64, len: usize) -> Result<Vec<u8>> {
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

    /// Forgets all staged data after a publish (S2); abandons uploads still running.
    pub fn reset(&mut self) -> Result<()> {
        for up in self.uploading.values() {
            if let Some(t) = &up.task {
                t.abort();
            }
        }
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
