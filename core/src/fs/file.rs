//! File data operations: open, read, write, flush, fsync, release, truncate.
//!
//! Writes go into a per-file write session (`data::session`); reads merge the session's
//! staged blocks with committed blocks. Publishing (flush, fsync, release, NFS COMMIT, and
//! before a truncate) uploads every dirty block, waits for all uploads, then writes the new
//! chunk manifests, size and mtime in one metadata transaction. The group committer makes
//! the objects durable (`ObjectStore::sync`) before it commits that transaction (invariant
//! D1: objects first; commit invariant C5), so a publish never waits for an fsync.
//! Files up to `INLINE_MAX` bytes are published inline in their inode record instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{check_access, Ctx, Fs, R_OK, W_OK};
use crate::data::{
    Held, Session, SessionState, StagedRead, Upload, BLOCKS_PER_CHUNK, BLOCK_SIZE, CHUNK_SIZE,
    INLINE_MAX,
};

use crate::error::{ErrorKind, FsError, Result};
use crate::meta::keys;
use crate::meta::records::{BlockRef, ChunkManifest, Data, Inode};
use crate::meta::Txn;
use crate::types::{Attr, Caller, FileId, FileType, Timestamp, FILE_SIZE_MAX};

const BS: u64 = BLOCK_SIZE as u64;
/// Blocks fetched ahead of a sequential reader.
const READ_AHEAD_BLOCKS: u64 = 8;

/// How a file is opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenFlags {
    /// Opened for reading.
    pub read: bool,
    /// Opened for writing.
    pub write: bool,
    /// `O_TRUNC`.
    pub truncate: bool,
}

fn file_only(inode: &Inode) -> Result<()> {
    match inode.kind {
        FileType::File => Ok(()),
        FileType::Dir => Err(FsError::of(ErrorKind::IsDir)),
        _ => Err(FsError::new(
            ErrorKind::InvalidArgument,
            "not a regular file",
        )),
    }
}

impl Fs {
    /// Opens `id`, checking permissions; counts the handle until [`Fs::release`].
    pub async fn open(&self, id: FileId, flags: OpenFlags, caller: &Caller) -> Result<Attr> {
        if crate::control::is_control(id) {
            return self.control_open(id, flags);
        }
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        if inode.kind == FileType::Dir && (flags.write || flags.truncate) {
            return Err(FsError::of(ErrorKind::IsDir));
        }
        if ctx.readonly && (flags.write || flags.truncate) {
            return Err(FsError::new(ErrorKind::ReadOnly, "snapshots are read-only"));
        }
        let mask = if flags.read { R_OK } else { 0 }
            | if flags.write || flags.truncate {
                W_OK
            } else {
                0
            };
        if mask != 0 {
            check_access(&inode, caller, mask)?;
        }
        *self.inner.open.entry(id).or_insert(0) += 1;
        if flags.truncate && inode.kind == FileType::File && self.getattr(id).await?.size != 0 {
            let set = crate::types::SetAttr {
                size: Some(0),
                opened_for_write: true,
                ..Default::default()
            };
            if let Err(e) = self.setattr(id, &set, caller).await {
                self.release(id).await?;
                return Err(e);
            }
        }
        self.getattr(id).await
    }

    /// Closes one handle of `id`: publishes its writes and, for the last handle of an
    /// unlinked file, removes the file.
    pub async fn release(&self, id: FileId) -> Result<()> {
        if crate::control::is_control(id) {
            return Ok(());
        }
        let flushed = self.flush(id).await;
        let last = match self.inner.open.get_mut(&id) {
            Some(mut n) => {
                *n = n.saturating_sub(1);
                *n == 0
            }
            None => false,
        };
        if last {
            self.inner.open.remove_if(&id, |_, n| *n == 0);
            self.inner.last_read.remove(&id);
            self.reap(id.workspace(), id.ino())?;
        }
        flushed
    }

    /// Deletes inode `ino` of `ws` if it has no links left and no open handle.
    fn reap(&self, ws: u64, ino: u64) -> Result<()> {
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        if self.inner.open.contains_key(&FileId::new(ws, ino)) {
            return Ok(());
        }
        let Ok(ctx) = self.ctx_mut(ws) else {
            return Ok(());
        };
        let mut txn = meta.txn(ctx.head);
        if let Some((inode, found)) = meta.inode(&ctx.chain, ino)? {
            if inode.nlink > 0 {
                return Ok(());
            }
            txn.delete_inode(ino, Some(&found));
        }
        txn.delete_raw(keys::orphan(ws, ino));
        self.inner.sessions.remove(&FileId::new(ws, ino));
        txn.commit()?;
        Ok(())
    }

    /// Reaps orphans left by a previous run (unlinked while open, then crash or shutdown).
    pub(crate) fn reap_orphans(&self) -> Result<()> {
        for (k, _) in self.inner.meta.scan_all(&[keys::tag::ORPHAN])? {
            let (Some(ws), Some(ino)) = (keys::read_u64(&k, 1), keys::read_u64(&k, 9)) else {
                return Err(FsError::new(ErrorKind::Corrupt, "malformed orphan key"));
            };
            self.reap(ws, ino)?;
        }
        Ok(())
    }

    /// Reads up to `len` bytes at `off` (short at end of file).
    pub async fn read(&self, id: FileId, off: u64, len: u32) -> Result<Bytes> {
        if crate::control::is_control(id) {
            return self.control_read(id, None, off, len);
        }
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        file_only(&inode)?;
        let session = self.inner.sessions.get(&id).map(|s| Arc::clone(&s));
        if let Some(session) = session {
            let mut st = session.state.lock().await;
            let end = off.saturating_add(len as u64).min(st.size);
            if off >= end {
                return Ok(Bytes::new());
            }
            let mut out = Vec::with_capacity((end - off) as usize);
            let mut pos = off;
            while pos < end {
                let b = pos / BS;
                let seg_end = ((b + 1) * BS).min(end);
                if st.is_staged(b) {
                    out.extend_from_slice(&self.read_staged(&mut st, b, pos, seg_end).await?);
                } else {
                    let part = self.read_committed(&ctx, id, &inode, pos, seg_end).await?;
                    out.extend_from_slice(&part);
                }
                pos = seg_end;
            }
            return Ok(Bytes::from(out));
        }
        let end = off.saturating_add(len as u64).min(inode.size);
        if off >= end {
            return Ok(Bytes::new());
        }
        self.read_committed(&ctx, id, &inode, off, end).await
    }

    /// Bytes `[from, to)` (inside block `b`) of a block the session holds.
    async fn read_staged(
        &self,
        st: &mut SessionState,
        b: u64,
        from: u64,
        to: u64,
    ) -> Result<Vec<u8>> {
        match st.read_staged(b, from, to)? {
            StagedRead::Bytes(v) => Ok(v),
            StagedRead::Object { key, len } => {
                let (f, t) = (from - b * BS, to - b * BS);
                let mut out = vec![0u8; (t - f) as usize];
                if f < len as u64 {
                    let got = self
                        .inner
                        .data
                        .block_range(&key, f..t.min(len as u64))
                        .await?;
                    out[..got.len()].copy_from_slice(&got);
                }
                Ok(out)
            }
        }
    }

    /// Turns the upload of block `b` back into a dirty block (a new write changes it). Its
    /// object becomes garbage.
    async fn reclaim(&self, st: &mut SessionState, b: u64) -> Result<()> {
        let Some(up) = st.uploading.remove(&b) else {
            return Ok(());
        };
        match up.take_back() {
            Ok(dirty) => {
                st.dirty.insert(b, dirty);
                Ok(())
            }
            Err(done) => {
                // Only the object holds the bytes now: read them back.
                let got = self
                    .inner
                    .data
                    .objects
                    .get_range(&done.key, 0..done.len as u64)
                    .await
                    .map_err(FsError::from)
                    .and_then(|bytes| st.make_dirty(&self.inner.data.dirty, b, &bytes));
                if got.is_err() {
                    st.uploading.insert(b, done);
                }
                got
            }
        }
    }

    /// Committed bytes `[off, end)` of a file (zeros for holes and past block lengths).
    ///
    /// A range inside one stored block is returned as a slice of that block's bytes (the
    /// block cache's, or the range read), without a copy; others are assembled in a
    /// zero-filled buffer.
    async fn read_committed(
        &self,
        ctx: &Ctx,
        id: FileId,
        inode: &Inode,
        off: u64,
        end: u64,
    ) -> Result<Bytes> {
        if off >= end {
            return Ok(Bytes::new());
        }
        if let Data::Inline(d) = &inode.data {
            let mut buf = vec![0u8; (end - off) as usize];
            let s = (off as usize).min(d.len());
            let e = (end as usize).min(d.len());
            buf[..e - s].copy_from_slice(&d[s..e]);
            return Ok(Bytes::from(buf));
        }
        let sequential = self.inner.last_read.get(&id).is_some_and(|p| *p == off) || off == 0;
        self.inner.last_read.insert(id, end);
        let data = &self.inner.data;
        let mut manifests: BTreeMap<u64, Option<ChunkManifest>> = BTreeMap::new();
        let mut buf: Option<Vec<u8>> = None;
        let mut pos = off;
        while pos < end {
            let b = pos / BS;
            let seg_end = ((b + 1) * BS).min(end);
            if let Some(r) = self.block_ref(ctx, id.ino(), inode, b, &mut manifests)? {
                let key = data.object_key(r.owner, r.generation, b);
                let in_start = pos - b * BS;
                let in_end = (seg_end - b * BS).min(r.len as u64);
                if in_start < in_end {
                    let bytes = if sequential || in_end - in_start >= BS / 2 {
                        let blk = data.block(&key, r.len).await?;
                        blk.slice(in_start as usize..(in_end as usize).min(blk.len()))
                    } else {
                        data.block_range(&key, in_start..in_end).await?
                    };
                    if buf.is_none()
                        && pos == off
                        && seg_end == end
                        && bytes.len() as u64 == end - off
                    {
                        // The whole range, from one block: no copy.
                        self.read_ahead(ctx, id, inode, end, sequential, &mut manifests)?;
                        return Ok(bytes);
                    }
                    let buf = buf.get_or_insert_with(|| vec![0u8; (end - off) as usize]);
                    let at = (pos - off) as usize;
                    buf[at..at + bytes.len()].copy_from_slice(&bytes);
                }
            }
            pos = seg_end;
        }
        self.read_ahead(ctx, id, inode, end, sequential, &mut manifests)?;
        Ok(Bytes::from(
            buf.unwrap_or_else(|| vec![0u8; (end - off) as usize]),
        ))
    }

    /// After a sequential read ending at `end`: starts fetching the next blocks.
    fn read_ahead(
        &self,
        ctx: &Ctx,
        id: FileId,
        inode: &Inode,
        end: u64,
        sequential: bool,
        manifests: &mut BTreeMap<u64, Option<ChunkManifest>>,
    ) -> Result<()> {
        let data = &self.inner.data;
        if sequential {
            let last = (end - 1) / BS;
            for nb in last + 1..=last + READ_AHEAD_BLOCKS {
                if nb * BS >= inode.size {
                    break;
                }
                if let Some(r) = self.block_ref(ctx, id.ino(), inode, nb, manifests)? {
                    data.prefetch(data.object_key(r.owner, r.generation, nb), r.len);
                }
            }
        }
        Ok(())
    }

    fn block_ref(
        &self,
        ctx: &Ctx,
        ino: u64,
        inode: &Inode,
        block: u64,
        cache: &mut BTreeMap<u64, Option<ChunkManifest>>,
    ) -> Result<Option<BlockRef>> {
        let chunk = block / BLOCKS_PER_CHUNK as u64;
        if let std::collections::btree_map::Entry::Vacant(slot) = cache.entry(chunk) {
            let m = self
                .inner
                .meta
                .chunk(&ctx.chain, ino, chunk, inode.data_epoch)?
                .map(|(m, _)| m);
            slot.insert(m);
        }
        Ok(cache[&chunk]
            .as_ref()
            .and_then(|m| m.blocks[(block % BLOCKS_PER_CHUNK as u64) as usize]))
    }

    fn session_for(&self, id: FileId, size: u64) -> Arc<Session> {
        let staging = &self.inner.data.staging;
        Arc::clone(&self.inner.sessions.entry(id).or_insert_with(|| {
            let nanos = Timestamp::now().nanos;
            let path = staging.join(format!("{}-{}-{nanos}", id.workspace(), id.ino()));
            Arc::new(Session::new(id, path, size))
        }))
    }

    /// Writes `data` at `off`; returns the bytes written. Visible to readers at once,
    /// published by flush/fsync/release.
    pub async fn write(&self, id: FileId, off: u64, data: &[u8]) -> Result<u32> {
        if crate::control::is_control(id) {
            return self.control_write(id, None, data).await;
        }
        if data.is_empty() {
            return Ok(0);
        }
        let end = off
            .checked_add(data.len() as u64)
            .filter(|e| *e <= FILE_SIZE_MAX)
            .ok_or_else(|| FsError::of(ErrorKind::FileTooBig))?;
        let ctx = self.ctx_mut(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        file_only(&inode)?;
        let session = self.session_for(id, inode.size);
        let mut st = session.state.lock().await;
        // Reload under the session lock: a publish (flush, COMMIT, idle flush) may have run
        // since, and read-modify-write must start from what it committed.
        let (inode, _) = self.load(&ctx, id.ino())?;
        file_only(&inode)?;
        if !st.has_changes() {
            st.size = inode.size;
        }
        let budget = &self.inner.data.dirty;
        if let Data::Inline(d) = &inode.data {
            // Stage inline content as block 0 so it survives a move to block storage.
            if !d.is_empty() && !st.is_staged(0) {
                st.make_dirty(budget, 0, d)?;
            }
        }
        for b in off / BS..=(end - 1) / BS {
            if st.uploading.contains_key(&b) {
                self.reclaim(&mut st, b).await?;
                continue;
            }
            if st.is_staged(b) {
                continue;
            }
            let (bs, committed_end) = (b * BS, ((b + 1) * BS).min(inode.size));
            let content = if bs < committed_end && !(off <= bs && end >= committed_end) {
                self.read_committed(&ctx, id, &inode, bs, committed_end)
                    .await?
            } else {
                Bytes::new()
            };
            st.make_dirty(budget, b, &content)?;
        }
        let mut pos = off;
        while pos < end {
            let seg_end = ((pos / BS + 1) * BS).min(end);
            let part = &data[(pos - off) as usize..(seg_end - off) as usize];
            st.write_block(pos / BS, pos, part)?;
            pos = seg_end;
        }
        st.size = st.size.max(end);
        let now = Timestamp::now();
        st.modified = Some(now);
        *session.pending.lock() = Some((st.size, now));
        // Blocks this write completed are uploaded in the background.
        let complete: Vec<u64> = st
            .dirty
            .range(off / BS..end / BS)
            .map(|(b, _)| *b)
            .filter(|b| (b + 1) * BS <= st.size)
            .collect();
        for b in complete {
            self.start_upload(&mut st, id, b).await?;
        }
        Ok(data.len() as u32)
    }

    async fn start_upload(&self, st: &mut SessionState, id: FileId, b: u64) -> Result<()> {
        // One generation per publish cycle (all its blocks share the key prefix); a block
        // uploaded twice in one cycle needs a fresh generation so no key is written twice.
        let generation = match st.generation {
            Some(g) if !st.uploaded.contains(&b) => g,
            _ => {
                let g = self.inner.meta.alloc_generation().await?;
                st.generation = Some(g);
                st.uploaded.clear();
                g
            }
        };
        st.uploaded.insert(b);
        let data = Arc::clone(&self.inner.data);
        let key = data.object_key(id.ino(), generation, b);
        let permit = Arc::clone(&data.uploads)
            .acquire_owned()
            .await
            .map_err(|_| FsError::new(ErrorKind::Io, "upload pool closed"))?;
        let Some((bytes, held)) = st.take_for_upload(b)? else {
            return Ok(());
        };
        let len = bytes.len() as u32;
        let slot = match &held {
            Held::Mem(slot) => Some(Arc::clone(slot)),
            Held::Staged => None,
        };
        let k = key.clone();
        let task = tokio::spawn(async move {
            let _permit = permit;
            data.objects.put(&k, bytes).await.map_err(FsError::from)?;
            // The object holds the bytes now: give their memory and budget back, keeping the
            // buffer for reuse when nobody else holds it (a store may keep the bytes).
            let taken = slot.and_then(|slot| slot.lock().take());
            if let Some((bytes, res)) = taken.filter(|(b, _)| b.is_unique()) {
                data.dirty.recycle(Vec::from(bytes), res);
            }
            Ok(())
        });
        st.uploading.insert(
            b,
            Upload {
                generation,
                len,
                key,
                held,
                task: Some(task),
            },
        );
        Ok(())
    }

    /// Publishes the writes of `id` (visible and queued for the next group commit).
    pub async fn flush(&self, id: FileId) -> Result<()> {
        let Some(session) = self.inner.sessions.get(&id).map(|s| Arc::clone(&s)) else {
            return Ok(());
        };
        let mut st = session.state.lock().await;
        if st.has_changes() {
            self.publish(id, &mut st).await?;
            *session.pending.lock() = None;
        }
        // Drop the session when nobody else holds it (map + this handle).
        self.inner.sessions.remove_if(&id, |_, s| {
            Arc::strong_count(s) == 2 && !s.pending.lock().is_some()
        });
        Ok(())
    }

    /// Publishes the writes of `id` and waits until they and all earlier metadata are durable.
    pub async fn fsync(&self, id: FileId) -> Result<()> {
        self.flush(id).await?;
        self.sync_metadata().await
    }

    /// Waits until every entry change of directory `id` (and everything else) is durable.
    pub async fn fsync_dir(&self, _id: FileId) -> Result<()> {
        self.sync_metadata().await
    }

    async fn publish(&self, id: FileId, st: &mut SessionState) -> Result<()> {
        let ctx = self.ctx_mut(id.workspace())?;
        let meta = &self.inner.meta;
        let Some((inode0, _)) = meta.inode(&ctx.chain, id.ino())? else {
            st.reset()?;
            return Ok(());
        };
        let size = st.size;
        let modified = st.modified.unwrap_or_else(Timestamp::now);
        let mut new_inline = None;
        let mut refs: BTreeMap<u64, BlockRef> = BTreeMap::new();
        if size <= INLINE_MAX {
            // Uploads still running are abandoned by `reset` once this commits.
            let content = if st.is_staged(0) {
                self.read_staged(st, 0, 0, size).await?
            } else {
                self.read_committed(&ctx, id, &inode0, 0, size)
                    .await?
                    .to_vec()
            };
            new_inline = Some(content);
        } else {
            let dirty: Vec<u64> = st.dirty.keys().copied().collect();
            for b in dirty {
                self.start_upload(st, id, b).await?;
            }
            // Nothing leaves the session before the commit, so a failure (or this future
            // being dropped) leaves every block readable and a later flush retries.
            let mut failure = None;
            let blocks: Vec<u64> = st.uploading.keys().copied().collect();
            for b in blocks {
                let up = st.uploading.get_mut(&b).expect("listed above");
                if let Some(task) = up.task.as_mut() {
                    let outcome = match task.await {
                        Ok(r) => r,
                        Err(e) => Err(FsError::new(ErrorKind::Io, format!("upload task: {e}"))),
                    };
                    up.task = None;
                    if let Err(e) = outcome {
                        failure.get_or_insert(e);
                        let up = st.uploading.remove(&b).expect("listed above");
                        match up.take_back() {
                            Ok(dirty) => {
                                st.dirty.insert(b, dirty);
                            }
                            // Bytes are released only after a successful put, so the
                            // object exists after all (e.g. the task failed later).
                            Err(done) => {
                                st.uploading.insert(b, done);
                            }
                        }
                        continue;
                    }
                }
                refs.insert(
                    b,
                    BlockRef {
                        generation: up.generation,
                        owner: id.ino(),
                        len: up.len,
                    },
                );
            }
            if let Some(e) = failure {
                // Blocks that failed are dirty again; finished uploads stay for the retry.
                return Err(e);
            }
            // D1 (objects durable before the metadata referencing them) is the committer's
            // job: it syncs the object store before the store commit (commit invariant C5).
        }
        {
            let _w = self.inner.writer.lock();
            let Some((mut inode, found)) = meta.inode(&ctx.chain, id.ino())? else {
                st.reset()?;
                return Ok(());
            };
            let mut txn = meta.txn(ctx.head);
            if let Some(content) = new_inline {
                inode.data = Data::Inline(content);
                inode.data_epoch = txn.version;
            } else {
                let fresh = matches!(inode.data, Data::Inline(_));
                if fresh {
                    inode.data = Data::Blocks;
                    inode.data_epoch = txn.version;
                }
                let mut by_chunk: BTreeMap<u64, Vec<(usize, BlockRef)>> = BTreeMap::new();
                for (b, r) in refs {
                    by_chunk
                        .entry(b / BLOCKS_PER_CHUNK as u64)
                        .or_default()
                        .push(((b % BLOCKS_PER_CHUNK as u64) as usize, r));
                }
                for (chunk, blocks) in by_chunk {
                    let (mut m, prev) =
                        match meta.chunk(&ctx.chain, id.ino(), chunk, inode.data_epoch)? {
                            Some((m, f)) => (m, Some(f)),
                            None => (ChunkManifest::default(), None),
                        };
                    for (i, r) in blocks {
                        m.blocks[i] = Some(r);
                    }
                    txn.put_chunk(id.ino(), chunk, &m, prev.as_ref());
                }
            }
            inode.size = size;
            inode.mtime = modified;
            inode.ctime = modified;
            txn.put_inode(id.ino(), &inode, Some(&found));
            txn.commit()?;
        }
        st.reset()?;
        Ok(())
    }

    /// Before a truncate: uploads what must exist as an object for the new size (an inline
    /// file growing past `INLINE_MAX` moves its content into block 0).
    pub(crate) async fn truncate_tail(
        &self,
        _ctx: &Ctx,
        id: FileId,
        inode: &Inode,
        size: u64,
    ) -> Result<Option<BlockRef>> {
        match &inode.data {
            Data::Inline(d) if size > INLINE_MAX && !d.is_empty() => {
                let generation = self.inner.meta.alloc_generation().await?;
                let key = self.inner.data.object_key(id.ino(), generation, 0);
                self.inner
                    .data
                    .objects
                    .put(&key, Bytes::from(d.clone()))
                    .await?;
                Ok(Some(BlockRef {
                    generation,
                    owner: id.ino(),
                    len: d.len() as u32,
                }))
            }
            _ => Ok(None),
        }
    }

    /// Applies a size change to `inode` inside `txn`: O(1) for extension and truncation to
    /// zero, O(chunks cut) otherwise. Blocks past the new end are dropped from manifests and
    /// the block holding the new end is clamped, so re-extension reads zeros.
    pub(crate) fn apply_truncate(
        &self,
        txn: &mut Txn<'_>,
        ctx: &Ctx,
        ino: u64,
        inode: &mut Inode,
        size: u64,
        tail: Option<BlockRef>,
    ) -> Result<()> {
        let old = inode.size;
        match &mut inode.data {
            Data::Inline(d) => {
                if size <= INLINE_MAX {
                    d.resize(size as usize, 0);
                } else {
                    inode.data = Data::Blocks;
                    inode.data_epoch = txn.version;
                    if let Some(r) = tail {
                        let mut m = ChunkManifest::default();
                        m.blocks[0] = Some(r);
                        txn.put_chunk(ino, 0, &m, None);
                    }
                }
            }
            Data::Blocks if size == 0 => {
                inode.data = Data::Inline(Vec::new());
                inode.data_epoch = txn.version;
            }
            Data::Blocks if size < old => {
                for chunk in size / CHUNK_SIZE..old.div_ceil(CHUNK_SIZE) {
                    let Some((mut m, prev)) =
                        self.inner
                            .meta
                            .chunk(&ctx.chain, ino, chunk, inode.data_epoch)?
                    else {
                        continue;
                    };
                    let mut changed = false;
                    for (i, slot) in m.blocks.iter_mut().enumerate() {
                        let start = chunk * CHUNK_SIZE + i as u64 * BS;
                        if let Some(r) = slot {
                            if start >= size {
                                *slot = None;
                                changed = true;
                            } else if start + r.len as u64 > size {
                                r.len = (size - start) as u32;
                                changed = true;
                            }
                        }
                    }
                    if changed {
                        txn.put_chunk(ino, chunk, &m, Some(&prev));
                    }
                }
            }
            Data::Blocks => {}
        }
        inode.size = size;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use async_trait::async_trait;

    use super::*;
    use crate::object::{MemObjectStore, ObjectError, ObjectErrorKind, ObjectMeta, ObjectStore};
    use crate::store::MemStore;
    use crate::FsOptions;

    const ROOT: Caller = Caller::ROOT;
    const B: usize = BLOCK_SIZE;

    /// An in-memory object store whose `sync` fails while `failing_sync` is set.
    #[derive(Default)]
    struct SyncFails {
        inner: MemObjectStore,
        failing_sync: AtomicBool,
    }

    #[async_trait]
    impl ObjectStore for SyncFails {
        async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
            self.inner.put(key, data).await
        }
        async fn get_range(
            &self,
            key: &str,
            range: std::ops::Range<u64>,
        ) -> Result<Bytes, ObjectError> {
            self.inner.get_range(key, range).await
        }
        fn sync(&self) -> Result<(), ObjectError> {
            if self.failing_sync.load(Ordering::SeqCst) {
                return Err(ObjectError::new(
                    ObjectErrorKind::Other,
                    "injected fsync EIO",
                ));
            }
            Ok(())
        }
        async fn delete(&self, key: &str) -> Result<(), ObjectError> {
            self.inner.delete(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectError> {
            self.inner.list(prefix).await
        }
        fn describe(&self) -> String {
            "sync-fails".into()
        }
    }

    fn fs_with(dir: &std::path::Path, objects: Arc<dyn ObjectStore>, dirty_bytes: usize) -> Fs {
        let mut opts = FsOptions::new("vol", dir.join("staging"));
        opts.dirty_bytes = dirty_bytes;
        Fs::new(Arc::new(MemStore::new()), objects, opts).unwrap()
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ seed.wrapping_mul(37))
            .collect()
    }

    async fn write_both(fs: &Fs, id: FileId, model: &mut Vec<u8>, off: usize, data: &[u8]) {
        assert_eq!(
            fs.write(id, off as u64, data).await.unwrap() as usize,
            data.len()
        );
        if model.len() < off + data.len() {
            model.resize(off + data.len(), 0);
        }
        model[off..off + data.len()].copy_from_slice(data);
    }

    async fn assert_reads(fs: &Fs, id: FileId, model: &[u8], when: &str) {
        let got = fs.read(id, 0, model.len() as u32 + 100).await.unwrap();
        assert_eq!(got.len(), model.len(), "{when}: length");
        if let Some(i) = (0..model.len()).find(|i| got[*i] != model[*i]) {
            panic!("{when}: first difference at byte {i}");
        }
        // An unaligned read across a block boundary.
        let (a, n) = (B - 7, 20);
        if model.len() >= a + n {
            let got = fs.read(id, a as u64, n as u32).await.unwrap();
            assert!(got[..] == model[a..a + n], "{when}: across a boundary");
        }
    }

    /// Memory blocks, staged blocks and a mix of both (a budget of one block) give the same
    /// results for read-modify-write, rewrites of uploading blocks, holes and reads before
    /// and after publishing; and a publish leaves no block memory or staged bytes (S2).
    #[tokio::test]
    async fn memory_and_staged_blocks_read_and_publish_the_same() {
        for budget in [0, B, 256 << 20] {
            let tmp = tempfile::tempdir().unwrap();
            let fs = fs_with(tmp.path(), Arc::new(MemObjectStore::new()), budget);
            let id = fs
                .create(fs.root(), b"f", 0o644, &ROOT, true)
                .await
                .unwrap()
                .id;
            let mut model = Vec::new();
            // Committed base: 2.5 blocks.
            write_both(&fs, id, &mut model, 0, &pattern(2 * B + B / 2, 1)).await;
            fs.fsync(id).await.unwrap();
            // Partial overwrite of committed blocks (read-modify-write, S1).
            write_both(&fs, id, &mut model, 100, &pattern(1000, 2)).await;
            write_both(&fs, id, &mut model, B + 5, &pattern(B - 10, 3)).await;
            // Sequential 1 MiB writes past the old end complete blocks, which start uploading.
            for i in 0..10 {
                let off = 2 * B + B / 2 + i * (1 << 20);
                write_both(&fs, id, &mut model, off, &pattern(1 << 20, 4 + i as u8)).await;
            }
            // Rewrite inside blocks whose uploads have started.
            write_both(&fs, id, &mut model, 3 * B + 17, &pattern(300, 20)).await;
            write_both(&fs, id, &mut model, 2 * B - 3, &pattern(9, 21)).await;
            // A hole: a write well past the end.
            write_both(&fs, id, &mut model, 9 * B + 11, &pattern(5, 22)).await;
            assert_reads(&fs, id, &model, &format!("budget {budget}, unpublished")).await;
            fs.fsync(id).await.unwrap();
            assert_eq!(
                fs.inner.data.dirty.used(),
                0,
                "budget {budget}: memory kept"
            );
            for e in std::fs::read_dir(tmp.path().join("staging")).unwrap() {
                let len = e.unwrap().metadata().unwrap().len();
                assert_eq!(len, 0, "budget {budget}: staged bytes kept");
            }
            assert_reads(&fs, id, &model, &format!("budget {budget}, published")).await;
            // The published file reads the same without a session.
            fs.inner.sessions.remove(&id);
            assert_reads(&fs, id, &model, &format!("budget {budget}, committed")).await;
        }
    }

    /// Once an in-memory block's upload succeeds its memory is released; reading and then
    /// rewriting that block takes its bytes back from its object.
    #[tokio::test]
    async fn a_block_whose_upload_finished_is_read_back_from_its_object() {
        let tmp = tempfile::tempdir().unwrap();
        let fs = fs_with(tmp.path(), Arc::new(MemObjectStore::new()), 256 << 20);
        let id = fs
            .create(fs.root(), b"f", 0o644, &ROOT, true)
            .await
            .unwrap()
            .id;
        let mut model = Vec::new();
        write_both(&fs, id, &mut model, 0, &pattern(B + 10, 1)).await;
        // Block 0 is uploading; wait until only block 1 holds memory.
        let start = Instant::now();
        while fs.inner.data.dirty.used() != B {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "upload never finished"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_reads(&fs, id, &model, "after the upload").await;
        write_both(&fs, id, &mut model, 50, &pattern(10, 2)).await;
        assert_reads(&fs, id, &model, "rewritten").await;
        fs.fsync(id).await.unwrap();
        fs.inner.sessions.remove(&id);
        assert_reads(&fs, id, &model, "published").await;
    }

    /// A failed object-store sync makes nothing durable after it: the fsync fails, the
    /// metadata referencing the unsynced objects never reaches the store, and every later
    /// durable operation fails too (a failed fsync may have lost the pages, so the volume
    /// must be reopened), while the data stays readable in the process.
    #[tokio::test]
    async fn a_failed_object_sync_makes_nothing_durable() {
        let tmp = tempfile::tempdir().unwrap();
        let objects = Arc::new(SyncFails::default());
        let store = Arc::new(MemStore::new());
        let mut opts = FsOptions::new("vol", tmp.path().join("staging"));
        opts.dirty_bytes = 256 << 20;
        let fs = Fs::new(store.clone(), objects.clone(), opts.clone()).unwrap();
        let id = fs
            .create(fs.root(), b"f", 0o644, &ROOT, true)
            .await
            .unwrap()
            .id;
        fs.fsync(id).await.unwrap();
        let mut model = Vec::new();
        write_both(&fs, id, &mut model, 0, &pattern(2 * B + 99, 1)).await;
        objects.failing_sync.store(true, Ordering::SeqCst);
        let err = fs.fsync(id).await.unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_reads(&fs, id, &model, "after the failed sync").await;
        objects.failing_sync.store(false, Ordering::SeqCst);
        let err = fs.sync_metadata().await.unwrap_err();
        assert!(err.to_string().contains("injected"), "poisoned: {err}");
        // What the store holds is the state before the failed sync.
        let reopened = Fs::new(store, Arc::new(MemObjectStore::default()), opts).unwrap();
        let found = reopened.lookup(reopened.root(), b"f", &ROOT).await.unwrap();
        assert_eq!(
            found.size, 0,
            "metadata of unsynced objects reached the store"
        );
    }
}
