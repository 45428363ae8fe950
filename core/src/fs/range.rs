//! Range operations on file data: allocate (`fallocate` mode 0), punch a hole, find data
//! and holes (`SEEK_DATA` / `SEEK_HOLE`), and copy a range (`copy_file_range`) by sharing
//! blocks instead of copying bytes where the layout allows.
//!
//! Each first publishes the files' pending writes, then works on committed chunk manifests
//! in one metadata transaction. Holes are blocks missing from a manifest (and, inside a
//! block, the bytes past its `len`); a block shared by two files is one object referenced
//! by both manifests (objects are immutable and GC is by reachability, so either file may
//! later change or drop it freely). Object keys name the block index, so a block can be
//! shared only at the same index: copies with equal, block-aligned offsets share every
//! whole block; anything else (and inline files) is copied through the write path.

use std::collections::BTreeMap;

use super::Fs;
use crate::data::{BLOCKS_PER_CHUNK, BLOCK_SIZE, CHUNK_SIZE};
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::records::{BlockRef, ChunkManifest, Data};
use crate::types::{Caller, FileId, FileType, SetAttr, Timestamp, FILE_SIZE_MAX};

const BS: u64 = BLOCK_SIZE as u64;
/// Bytes moved per read/write step when a copy cannot share blocks.
const COPY_STEP: u64 = 1 << 20;

impl Fs {
    /// `fallocate` mode 0: makes `[off, off+len)` part of the file, extending its size
    /// unless `keep_size`. Space is not reserved (blocks are written on demand), so a
    /// later write may still fail with `NoSpace`. The caller's handle must be writable.
    pub async fn allocate(&self, id: FileId, off: u64, len: u64, keep_size: bool) -> Result<()> {
        let end = range_end(off, len)?;
        let attr = self.getattr(id).await?;
        file_kind(attr.kind)?;
        self.ctx_mut(id.workspace())?;
        if !keep_size && end > attr.size {
            let set = SetAttr {
                size: Some(end),
                ..Default::default()
            };
            self.setattr(id, &set, &Caller::ROOT).await?;
        }
        Ok(())
    }

    /// Deallocates `[off, off+len)`: it reads as zeros afterwards and the size is kept.
    /// Whole blocks leave the manifests (their objects become garbage unless shared);
    /// partly covered blocks are rewritten with zeros.
    pub async fn punch_hole(&self, id: FileId, off: u64, len: u64) -> Result<()> {
        let end = range_end(off, len)?;
        self.flush(id).await?;
        let attr = self.getattr(id).await?;
        file_kind(attr.kind)?;
        self.ctx_mut(id.workspace())?;
        let end = end.min(attr.size);
        if off >= end {
            return Ok(());
        }
        // First whole block at or after `off`, and the end of the last whole block.
        let (first, last) = (off.div_ceil(BS), end / BS);
        let ctx = self.ctx_mut(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        let inline = matches!(inode.data, Data::Inline(_));
        let zero_ranges: Vec<(u64, u64)> = if inline || first >= last {
            vec![(off, end)]
        } else {
            vec![(off, first * BS), (last * BS, end)]
        };
        for (a, b) in zero_ranges {
            let mut pos = a;
            while pos < b {
                let n = (b - pos).min(COPY_STEP);
                self.write(id, pos, &vec![0u8; n as usize]).await?;
                pos += n;
            }
        }
        self.flush(id).await?;
        if !inline && first < last {
            self.edit_blocks(id, |b, slot| {
                if b >= first && b < last {
                    *slot = None;
                }
            })?;
        }
        Ok(())
    }

    /// The first offset `>= off` holding data (`None` if none before the end: `ENXIO`).
    /// A stored block is data up to its length; missing blocks and the bytes of a block
    /// past its length are holes.
    pub async fn seek_data(&self, id: FileId, off: u64) -> Result<Option<u64>> {
        self.seek(id, off, true).await
    }

    /// The first offset `>= off` in a hole; the end of the file is one (`None` at or past
    /// the end: `ENXIO`).
    pub async fn seek_hole(&self, id: FileId, off: u64) -> Result<Option<u64>> {
        self.seek(id, off, false).await
    }

    async fn seek(&self, id: FileId, off: u64, data: bool) -> Result<Option<u64>> {
        self.flush(id).await?;
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        file_kind(inode.kind)?;
        let size = inode.size;
        if off >= size {
            return Ok(None);
        }
        if matches!(inode.data, Data::Inline(_)) {
            return Ok(Some(if data { off } else { size }));
        }
        let mut b = off / BS;
        let mut manifest: Option<(u64, Option<ChunkManifest>)> = None;
        while b * BS < size {
            let chunk = b / BLOCKS_PER_CHUNK as u64;
            if manifest.as_ref().is_none_or(|(c, _)| *c != chunk) {
                let m = self
                    .inner
                    .meta
                    .chunk(&ctx.chain, id.ino(), chunk, inode.data_epoch)?
                    .map(|(m, _)| m);
                if m.is_none() && data {
                    // A whole chunk of hole: skip it.
                    b = (chunk + 1) * BLOCKS_PER_CHUNK as u64;
                    continue;
                }
                manifest = Some((chunk, m));
            }
            let present = manifest
                .as_ref()
                .and_then(|(_, m)| m.as_ref())
                .and_then(|m| m.blocks[(b % BLOCKS_PER_CHUNK as u64) as usize]);
            match (data, present) {
                (true, Some(r)) if off < b * BS + r.len as u64 => return Ok(Some(off.max(b * BS))),
                (false, None) => return Ok(Some(off.max(b * BS).min(size))),
                (false, Some(r)) if (r.len as u64) < BS && b * BS + (r.len as u64) < size => {
                    let at = b * BS + r.len as u64;
                    if at >= off {
                        return Ok(Some(at));
                    }
                }
                _ => {}
            }
            b += 1;
        }
        Ok(if data { None } else { Some(size) })
    }

    /// Copies up to `len` bytes from `src` at `src_off` to `dst` at `dst_off`; returns the
    /// bytes copied (short at the end of `src`). Whole blocks at equal, block-aligned
    /// offsets are shared, not copied. Both files must be regular files in one workspace
    /// view; the caller's handles must allow reading `src` and writing `dst`.
    pub async fn copy_range(
        &self,
        src: FileId,
        src_off: u64,
        dst: FileId,
        dst_off: u64,
        len: u64,
    ) -> Result<u64> {
        if len == 0 {
            return Ok(0);
        }
        range_end(dst_off, len)?;
        self.flush(src).await?;
        self.flush(dst).await?;
        let sattr = self.getattr(src).await?;
        file_kind(sattr.kind)?;
        file_kind(self.getattr(dst).await?.kind)?;
        self.ctx_mut(dst.workspace())?;
        if src_off >= sattr.size {
            return Ok(0);
        }
        let len = len.min(sattr.size - src_off);
        if src == dst && src_off < dst_off + len && dst_off < src_off + len {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "overlapping copy within one file",
            ));
        }
        let end = src_off + len;
        let shareable = src_off == dst_off
            && src_off.is_multiple_of(BS)
            && src.workspace() == dst.workspace()
            && src != dst
            && !self.is_inline(src)?
            // An inline `dst` keeps its bytes in block 0: share only when that is replaced.
            && (src_off == 0 || !self.is_inline(dst)? || self.getattr(dst).await?.size == 0);
        // Whole source blocks inside the range (the last may be the partial tail block).
        let (first, mut last) = (src_off / BS, end / BS);
        if shareable && end == sattr.size && !end.is_multiple_of(BS) {
            // The partial tail block may be shared if nothing of `dst` lies past it.
            if self.getattr(dst).await?.size <= end {
                last += 1;
            }
        }
        let mut copied_to = src_off;
        if shareable && first < last {
            let refs = self.block_refs(src, first, last)?;
            let now = Timestamp::now();
            let new_size = (last * BS).min(end).max(self.getattr(dst).await?.size);
            self.edit_blocks_with(dst, Some(new_size), now, |b, slot| {
                if b >= first && b < last {
                    *slot = refs.get(&b).copied();
                }
            })?;
            copied_to = (last * BS).min(end);
        }
        // The rest goes through the write path.
        let mut pos = copied_to;
        while pos < end {
            let n = (end - pos).min(COPY_STEP);
            let data = self.read(src, pos, n as u32).await?;
            if data.is_empty() {
                break;
            }
            self.write(dst, dst_off + (pos - src_off), &data).await?;
            pos += data.len() as u64;
        }
        self.flush(dst).await?;
        Ok(pos - src_off)
    }

    fn is_inline(&self, id: FileId) -> Result<bool> {
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        Ok(matches!(inode.data, Data::Inline(_)))
    }

    /// The committed block references of `id` for blocks `[first, last)`.
    fn block_refs(&self, id: FileId, first: u64, last: u64) -> Result<BTreeMap<u64, BlockRef>> {
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        let mut out = BTreeMap::new();
        if !matches!(inode.data, Data::Blocks) {
            return Ok(out);
        }
        let per = BLOCKS_PER_CHUNK as u64;
        for chunk in first / per..last.div_ceil(per) {
            if let Some((m, _)) =
                self.inner
                    .meta
                    .chunk(&ctx.chain, id.ino(), chunk, inode.data_epoch)?
            {
                for (i, r) in m.blocks.iter().enumerate() {
                    let b = chunk * per + i as u64;
                    if let (Some(r), true) = (r, b >= first && b < last) {
                        out.insert(b, *r);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Applies `edit` to every block slot of `id`'s chunks (a file already in blocks), in one
    /// transaction that also sets mtime/ctime.
    fn edit_blocks(&self, id: FileId, edit: impl FnMut(u64, &mut Option<BlockRef>)) -> Result<()> {
        self.edit_blocks_with(id, None, Timestamp::now(), edit)
    }

    fn edit_blocks_with(
        &self,
        id: FileId,
        new_size: Option<u64>,
        now: Timestamp,
        mut edit: impl FnMut(u64, &mut Option<BlockRef>),
    ) -> Result<()> {
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(id.workspace())?;
        let (mut inode, found) = self.load(&ctx, id.ino())?;
        let mut txn = meta.txn(ctx.head);
        // An inline file's bytes are all in block 0; callers replace block 0 when they
        // pass one with content.
        if matches!(inode.data, Data::Inline(_)) {
            inode.data = Data::Blocks;
            inode.data_epoch = txn.version;
        }
        let size = new_size.unwrap_or(inode.size).max(inode.size);
        let per = BLOCKS_PER_CHUNK as u64;
        for chunk in 0..size.div_ceil(CHUNK_SIZE) {
            let (mut m, prev) = match meta.chunk(&ctx.chain, id.ino(), chunk, inode.data_epoch)? {
                Some((m, f)) => (m, Some(f)),
                None => (ChunkManifest::default(), None),
            };
            let before = m.clone();
            for (i, slot) in m.blocks.iter_mut().enumerate() {
                edit(chunk * per + i as u64, slot);
            }
            if m != before {
                txn.put_chunk(id.ino(), chunk, &m, prev.as_ref());
            }
        }
        inode.size = size;
        inode.mtime = now;
        inode.ctime = now;
        txn.put_inode(id.ino(), &inode, Some(&found));
        txn.commit()?;
        Ok(())
    }
}

fn range_end(off: u64, len: u64) -> Result<u64> {
    if len == 0 {
        return Err(FsError::new(ErrorKind::InvalidArgument, "empty range"));
    }
    off.checked_add(len)
        .filter(|e| *e <= FILE_SIZE_MAX)
        .ok_or_else(|| FsError::of(ErrorKind::FileTooBig))
}

fn file_kind(k: FileType) -> Result<()> {
    match k {
        FileType::File => Ok(()),
        FileType::Dir => Err(FsError::of(ErrorKind::IsDir)),
        _ => Err(FsError::new(
            ErrorKind::InvalidArgument,
            "not a regular file",
        )),
    }
}

#[cfg(test)]
mod tests;
