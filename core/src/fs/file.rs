//! File data operations: open, read, write, flush, fsync, release, truncate.
//!
//! Writes go into a per-file write session (`data::session`); reads merge the session's
//! staged blocks with committed blocks. Publishing (flush, fsync, release, NFS COMMIT, and
//! before a truncate) uploads every staged block, waits for all uploads, then writes the new
//! chunk manifests, size and mtime in one metadata transaction (invariant D1: objects first).
//! Files up to `INLINE_MAX` bytes are published inline in their inode record instead.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::{check_access, Ctx, Fs, R_OK, W_OK};
use crate::data::{
    object_key, Session, SessionState, Upload, BLOCKS_PER_CHUNK, BLOCK_SIZE, CHUNK_SIZE, INLINE_MAX,
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
                ..Default::default()
            };
            if let Err(e) = self.setattr(id, &set, &Caller::ROOT).await {
                self.release(id).await?;
                return Err(e);
            }
        }
        self.getattr(id).await
    }

    /// Closes one handle of `id`: publishes its writes and, for the last handle of an
    /// unlinked file, removes the file.
    pub async fn release(&self, id: FileId) -> Result<()> {
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
                    out.extend_from_slice(&st.read_at(pos, (seg_end - pos) as usize)?);
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
        Ok(Bytes::from(
            self.read_committed(&ctx, id, &inode, off, end).await?,
        ))
    }

    /// Committed bytes `[off, end)` of a file (zeros for holes and past block lengths).
    async fn read_committed(
        &self,
        ctx: &Ctx,
        id: FileId,
        inode: &Inode,
        off: u64,
        end: u64,
    ) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (end - off) as usize];
        if off >= end {
            return Ok(buf);
        }
        if let Data::Inline(d) = &inode.data {
            let s = (off as usize).min(d.len());
            let e = (end as usize).min(d.len());
            buf[..e - s].copy_from_slice(&d[s..e]);
            return Ok(buf);
        }
        let sequential = self.inner.last_read.get(&id).is_some_and(|p| *p == off) || off == 0;
        self.inner.last_read.insert(id, end);
        let data = &self.inner.data;
        let mut manifests: BTreeMap<u64, Option<ChunkManifest>> = BTreeMap::new();
        let mut pos = off;
        while pos < end {
            let b = pos / BS;
            let seg_end = ((b + 1) * BS).min(end);
            if let Some(r) = self.block_ref(ctx, id.ino(), inode, b, &mut manifests)? {
                let key = object_key(&data.volume, r.owner, r.generation, b);
                let in_start = pos - b * BS;
                let in_end = (seg_end - b * BS).min(r.len as u64);
                if in_start < in_end {
                    let bytes = if sequential || in_end - in_start >= BS / 2 {
                        let blk = data.block(&key, r.len).await?;
                        blk.slice(in_start as usize..(in_end as usize).min(blk.len()))
                    } else {
                        data.block_range(&key, in_start..in_end).await?
                    };
                    let at = (pos - off) as usize;
                    buf[at..at + bytes.len()].copy_from_slice(&bytes);
                }
            }
            pos = seg_end;
        }
        if sequential {
            let last = (end - 1) / BS;
            for nb in last + 1..=last + READ_AHEAD_BLOCKS {
                if nb * BS >= inode.size {
                    break;
                }
                if let Some(r) = self.block_ref(ctx, id.ino(), inode, nb, &mut manifests)? {
                    data.prefetch(object_key(&data.volume, r.owner, r.generation, nb), r.len);
                }
            }
        }
        Ok(buf)
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
        if let Data::Inline(d) = &inode.data {
            // Stage inline content as block 0 so it survives a move to block storage.
            if !d.is_empty() && !st.is_staged(0) {
                st.write_at(0, d)?;
                st.dirty.insert(0, ());
            }
        }
        for b in off / BS..=(end - 1) / BS {
            if let Some(up) = st.uploading.remove(&b) {
                // Its upload becomes garbage; the staged bytes are still current.
                drop(up);
                st.dirty.insert(b, ());
                continue;
            }
            if st.is_staged(b) {
                continue;
            }
            let (bs, committed_end) = (b * BS, ((b + 1) * BS).min(inode.size));
            if bs < committed_end && !(off <= bs && end >= committed_end) {
                let content = self
                    .read_committed(&ctx, id, &inode, bs, committed_end)
                    .await?;
                st.write_at(bs, &content)?;
            }
            st.dirty.insert(b, ());
        }
        st.write_at(off, data)?;
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
        let bytes = Bytes::from(st.block_bytes(b)?);
        let len = bytes.len() as u32;
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
        let key = object_key(&data.volume, id.ino(), generation, b);
        let permit = Arc::clone(&data.uploads)
            .acquire_owned()
            .await
            .map_err(|_| FsError::new(ErrorKind::Io, "upload pool closed"))?;
        let task = tokio::spawn(async move {
            let _permit = permit;
            data.objects.put(&key, bytes).await.map_err(FsError::from)
        });
        st.dirty.remove(&b);
        st.uploading.insert(
            b,
            Upload {
                generation,
                len,
                task,
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
            let content = if st.is_staged(0) {
                st.read_at(0, size as usize)?
            } else {
                self.read_committed(&ctx, id, &inode0, 0, size).await?
            };
            for (_, up) in std::mem::take(&mut st.uploading) {
                up.task.abort();
            }
            new_inline = Some(content);
        } else {
            let dirty: Vec<u64> = st.dirty.keys().copied().collect();
            for b in dirty {
                self.start_upload(st, id, b).await?;
            }
            let mut failure = None;
            for (b, up) in std::mem::take(&mut st.uploading) {
                match up.task.await {
                    Ok(Ok(())) => {
                        refs.insert(
                            b,
                            BlockRef {
                                generation: up.generation,
                                owner: id.ino(),
                                len: up.len,
                            },
                        );
                    }
                    Ok(Err(e)) => {
                        failure.get_or_insert(e);
                        st.dirty.insert(b, ());
                    }
                    Err(e) => {
                        failure.get_or_insert(FsError::new(
                            ErrorKind::Io,
                            format!("upload task: {e}"),
                        ));
                        st.dirty.insert(b, ());
                    }
                }
            }
            if let Some(e) = failure {
                // Keep everything staged so a later flush retries; nothing was published.
                for b in refs.keys() {
                    st.dirty.insert(*b, ());
                }
                return Err(e);
            }
            // D1: the objects are durable before the metadata that references them.
            if let Err(e) = self.inner.data.objects.sync().await {
                for b in refs.keys() {
                    st.dirty.insert(*b, ());
                }
                return Err(e.into());
            }
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
                let key = object_key(&self.inner.data.volume, id.ino(), generation, 0);
                self.inner
                    .data
                    .objects
                    .put(&key, Bytes::from(d.clone()))
                    .await?;
                self.inner.data.objects.sync().await?;
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
