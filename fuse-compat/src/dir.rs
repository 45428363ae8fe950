//! Directory handles and listings: opendir, readdir and readdirplus over the core's
//! cookie-resumable listing (the FUSE offset of an entry is its core cookie).

use std::os::unix::ffi::OsStrExt;

use fuser::{Generation, ReplyDirectory, ReplyDirectoryPlus};
use nokv_core::{Caller, ErrorKind, FileId, FileType, FsError, Result};

use crate::convert::{errno, kind};
use crate::handles::Handle;
use crate::shared::State;

/// Entries fetched from the core per step: about what fits in the kernel's 4 KiB listing
/// buffer (plain entries ~32 bytes, readdirplus entries ~160), so little is fetched twice.
const BATCH: usize = 128;
const BATCH_PLUS: usize = 26;

/// Opens directory `id` (read permission is checked by each listing).
pub(crate) async fn opendir(s: &State, id: FileId, _c: &Caller) -> Result<u64> {
    let a = s.fs.getattr(id).await?;
    if a.kind != FileType::Dir {
        return Err(FsError::of(ErrorKind::NotDir));
    }
    Ok(s.handles.open(Handle {
        id,
        dir: true,
        write: false,
        scope: None,
    }))
}

pub(crate) async fn readdir(
    s: &State,
    id: FileId,
    offset: u64,
    c: &Caller,
    mut reply: ReplyDirectory,
) {
    let mut cookie = offset;
    loop {
        let (entries, done) = match s.fs.readdir(id, cookie, BATCH, c).await {
            Ok(r) => r,
            Err(e) => return reply.error(errno(&e)),
        };
        for e in &entries {
            let ino = s.inos.ino(e.id);
            if reply.add(
                ino,
                e.cookie,
                kind(e.kind),
                std::ffi::OsStr::from_bytes(&e.name),
            ) {
                return reply.ok();
            }
            cookie = e.cookie;
        }
        if done || entries.is_empty() {
            return reply.ok();
        }
    }
}

pub(crate) async fn readdirplus(
    s: &State,
    id: FileId,
    offset: u64,
    c: &Caller,
    mut reply: ReplyDirectoryPlus,
) {
    let mut cookie = offset;
    loop {
        let (entries, done) = match s.fs.readdir(id, cookie, BATCH_PLUS, c).await {
            Ok(r) => r,
            Err(e) => return reply.error(errno(&e)),
        };
        for e in &entries {
            let dots = e.name == b"." || e.name == b"..";
            let attr = match s.fs.getattr(e.id).await {
                Ok(a) => a,
                // Removed since the listing was read: skip it.
                Err(_) if !dots => continue,
                Err(err) => return reply.error(errno(&err)),
            };
            let mut fa = s.attr(&attr);
            if dots {
                // The kernel takes no reference for `.` and `..`.
                fa.ino = s.inos.ino(e.id);
            }
            let name = std::ffi::OsStr::from_bytes(&e.name);
            if reply.add(
                fa.ino,
                e.cookie,
                name,
                &s.entry_ttl,
                &fa,
                Generation(attr.generation),
            ) {
                return reply.ok();
            }
            if !dots {
                s.lookups.add(fa.ino.0);
            }
            cookie = e.cookie;
        }
        if done || entries.is_empty() {
            return reply.ok();
        }
    }
}
