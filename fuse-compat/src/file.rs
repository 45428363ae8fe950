//! File handles: open, create, release, and the range operations (fallocate, lseek with
//! SEEK_DATA/SEEK_HOLE, copy_file_range), each a translation onto one core call.

use bytes::Bytes;
use fuser::{Errno, FopenFlags};
use nokv_core::{Attr, Caller, ErrorKind, FileId, FsError, OpenFlags, Result};

use crate::convert::errno;
use crate::handles::Handle;
use crate::ops::{file_handle, reads, writes};
use crate::shared::State;

/// Open flags for a file handle: keep the page cache across opens (the kernel drops it
/// when it sees the size or mtime change, `FUSE_AUTO_INVAL_DATA`); a handle that cannot
/// write has nothing to publish, so its `close` sends no FLUSH (one round trip less for
/// every file a reader such as `git status` or a compiler opens).
fn fopen(flags: i32) -> FopenFlags {
    if writes(flags) {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::FOPEN_KEEP_CACHE | FopenFlags::FOPEN_NOFLUSH
    }
}

fn core_flags(flags: i32) -> OpenFlags {
    OpenFlags {
        read: reads(flags),
        write: writes(flags),
        truncate: flags & libc::O_TRUNC != 0,
    }
}

/// Opens `id` (permission checks in the core) and allocates a handle.
pub(crate) async fn open(
    s: &State,
    id: FileId,
    flags: i32,
    c: &Caller,
) -> Result<(u64, FopenFlags)> {
    let f = core_flags(flags);
    if f.write || f.truncate {
        s.writable()?;
    }
    s.fs.open(id, f, c).await?;
    if nokv_core::control::is_control(id) {
        // Control files: every read and write goes to the core (no page cache), and a
        // command written through this handle leaves its output in the handle's own scope.
        let h = Handle {
            scope: s.fs.control_scope(id),
            ..file_handle(id, flags)
        };
        return Ok((s.handles.open(h), FopenFlags::FOPEN_DIRECT_IO));
    }
    Ok((s.handles.open(file_handle(id, flags)), fopen(flags)))
}

/// Reads through handle `fh` (its control scope, if it has one).
pub(crate) async fn read(s: &State, id: FileId, fh: u64, off: u64, len: u32) -> Result<Bytes> {
    match s.handles.get(fh).and_then(|h| h.scope) {
        Some(scope) => s.fs.read_scoped(id, scope, off, len).await,
        None => s.fs.read(id, off, len).await,
    }
}

/// Writes through handle `fh` (its control scope, if it has one).
pub(crate) async fn write(s: &State, id: FileId, fh: u64, off: u64, data: &[u8]) -> Result<u32> {
    match s.handles.get(fh).and_then(|h| h.scope) {
        Some(scope) => s.fs.write_scoped(id, scope, off, data).await,
        None => s.fs.write(id, off, data).await,
    }
}

/// Creates and opens `name` in `parent`. A file this call created is opened without a
/// permission check (the creator may write a file it creates read-only); an existing one
/// (no `O_EXCL`) is opened like `open`.
pub(crate) async fn create(
    s: &State,
    parent: FileId,
    name: &[u8],
    mode: u32,
    flags: i32,
    c: &Caller,
) -> Result<(Attr, u64, FopenFlags)> {
    s.writable()?;
    let attr = match s.fs.create(parent, name, mode, c, true).await {
        Ok(a) => {
            s.fs.open(a.id, OpenFlags::default(), c).await?;
            a
        }
        Err(e) if e.kind() == ErrorKind::Exists && flags & libc::O_EXCL == 0 => {
            let a = s.fs.lookup(parent, name, c).await?;
            if a.kind == nokv_core::FileType::Dir {
                return Err(FsError::of(ErrorKind::IsDir));
            }
            s.fs.open(a.id, core_flags(flags), c).await?
        }
        Err(e) => return Err(e),
    };
    let fh = s.handles.open(file_handle(attr.id, flags));
    Ok((attr, fh, fopen(flags)))
}

/// Closes handle `fh`: the core publishes its writes and reaps an unlinked file.
pub(crate) async fn release(s: &State, fh: u64) -> Result<()> {
    match s.handles.close(fh) {
        Some(h) => {
            if let Some(scope) = h.scope {
                s.fs.release_scope(scope);
            }
            s.fs.release(h.id).await
        }
        None => Ok(()),
    }
}

/// `fallocate(2)`: mode 0 (and `KEEP_SIZE`) reserve nothing but extend the size;
/// `PUNCH_HOLE|KEEP_SIZE` deallocates the range; other modes are `EOPNOTSUPP`.
pub(crate) async fn fallocate(s: &State, id: FileId, off: u64, len: u64, mode: i32) -> Result<()> {
    let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
    match mode & !libc::FALLOC_FL_KEEP_SIZE {
        0 => s.fs.allocate(id, off, len, keep).await,
        libc::FALLOC_FL_PUNCH_HOLE if keep => s.fs.punch_hole(id, off, len).await,
        _ => Err(FsError::new(ErrorKind::Unsupported, "fallocate mode")),
    }
}

/// `lseek(2)` with `SEEK_DATA` / `SEEK_HOLE` (the kernel answers the other whences).
pub(crate) async fn lseek(s: &State, id: FileId, off: i64, whence: i32) -> Result<i64, Errno> {
    let off = u64::try_from(off).map_err(|_| Errno::EINVAL)?;
    let r = match whence {
        libc::SEEK_DATA => s.fs.seek_data(id, off).await,
        libc::SEEK_HOLE => s.fs.seek_hole(id, off).await,
        _ => return Err(Errno::EINVAL),
    };
    match r {
        Ok(Some(o)) => Ok(o as i64),
        Ok(None) => Err(Errno::ENXIO),
        Err(e) => Err(errno(&e)),
    }
}

/// `copy_file_range(2)`: the core shares whole blocks where it can instead of copying.
pub(crate) async fn copy_range(
    s: &State,
    src: FileId,
    src_off: u64,
    dst: FileId,
    dst_off: u64,
    len: u64,
) -> Result<u32> {
    let len = len.min(u32::MAX as u64 & !0xfff);
    let n = s.fs.copy_range(src, src_off, dst, dst_off, len).await?;
    Ok(n as u32)
}
