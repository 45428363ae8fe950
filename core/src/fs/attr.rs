//! Attributes: getattr, setattr (with POSIX ownership and time rules), access, statfs.

use super::privileges::setid_cleared;
use super::{check_access, Fs};
use crate::error::{ErrorKind, FsError, Result};
use crate::types::{
    Attr, Caller, FileId, FileType, SetAttr, SetTime, StatFs, Timestamp, FILE_SIZE_MAX, NAME_MAX,
};

impl Fs {
    /// Attributes of `id` (including the size and mtime of unpublished writes).
    pub async fn getattr(&self, id: FileId) -> Result<Attr> {
        if crate::control::is_control(id) {
            return self.control_getattr(id);
        }
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        Ok(self.attr_of(id, &inode))
    }

    /// Checks `mask` (4 = read, 2 = write, 1 = execute; 0 = existence) for `caller`.
    pub async fn access(&self, id: FileId, mask: u32, caller: &Caller) -> Result<()> {
        if crate::control::is_control(id) {
            return self.control_access(id, mask);
        }
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        if mask == 0 {
            return Ok(());
        }
        if ctx.readonly && mask & super::W_OK != 0 {
            return Err(FsError::new(ErrorKind::ReadOnly, "snapshots are read-only"));
        }
        check_access(&inode, caller, mask & 7)
    }

    /// Changes attributes. Rules: only the owner (or root) changes mode and explicit times;
    /// only root changes the owner; the owner may change the group to its own group; any
    /// chown clears setuid/setgid of a non-directory; setting times to "now" needs
    /// ownership or write access; a size change needs write access (or a handle opened for
    /// writing) and a regular file, and clears setuid/setgid unless the caller is root.
    /// chown and size changes remove file capabilities (`privileges`).
    pub async fn setattr(&self, id: FileId, set: &SetAttr, caller: &Caller) -> Result<Attr> {
        if crate::control::is_control(id) {
            return self.control_setattr(id, set);
        }
        if let Some(size) = set.size {
            if size > FILE_SIZE_MAX {
                return Err(FsError::of(ErrorKind::FileTooBig));
            }
            // Publish buffered writes first so the truncate applies to all of them.
            self.flush(id).await?;
        }
        let meta = &self.inner.meta;
        let ctx = self.ctx_mut(id.workspace())?;
        // Truncation may read a block (the one that keeps a tail) before committing.
        let tail = match set.size {
            Some(size) => {
                let (inode, _) = self.load(&ctx, id.ino())?;
                self.truncate_tail(&ctx, id, &inode, size).await?
            }
            None => None,
        };
        let _w = self.inner.writer.lock();
        let (mut inode, found) = self.load(&ctx, id.ino())?;
        let owner = caller.uid == 0 || caller.uid == inode.uid;
        let now = Timestamp::now();
        let mut txn = meta.txn(ctx.head);
        if let Some(uid) = set.uid {
            if caller.uid != 0 && uid != inode.uid {
                return Err(FsError::of(ErrorKind::NotPermitted));
            }
        }
        if let Some(gid) = set.gid {
            if caller.uid != 0
                && (caller.uid != inode.uid || (gid != inode.gid && gid != caller.gid))
            {
                return Err(FsError::of(ErrorKind::NotPermitted));
            }
        }
        if let Some(mode) = set.mode {
            if !owner {
                return Err(FsError::of(ErrorKind::NotPermitted));
            }
            let mut perm = mode & 0o7777;
            let new_gid = set.gid.unwrap_or(inode.gid);
            if caller.uid != 0 && new_gid != caller.gid {
                perm &= !0o2000;
            }
            inode.perm = perm;
        }
        if set.uid.is_some() || set.gid.is_some() {
            if inode.kind != FileType::Dir {
                if set.mode.is_none() {
                    inode.perm = setid_cleared(inode.perm);
                }
                self.drop_capability(&mut txn, &ctx, id.ino())?;
            }
            if let Some(uid) = set.uid {
                inode.uid = uid;
            }
            if let Some(gid) = set.gid {
                inode.gid = gid;
            }
        }
        for (which, t) in [(0, set.atime), (1, set.mtime)] {
            let Some(t) = t else { continue };
            let ts = match t {
                SetTime::Now => {
                    if !owner {
                        check_access(&inode, caller, super::W_OK)?;
                    }
                    now
                }
                SetTime::At(ts) => {
                    if !owner {
                        return Err(FsError::of(ErrorKind::NotPermitted));
                    }
                    ts
                }
            };
            if which == 0 {
                inode.atime = ts;
            } else {
                inode.mtime = ts;
            }
        }
        if let Some(size) = set.size {
            match inode.kind {
                FileType::File => {}
                FileType::Dir => return Err(FsError::of(ErrorKind::IsDir)),
                _ => {
                    return Err(FsError::new(
                        ErrorKind::InvalidArgument,
                        "truncate of a special file",
                    ))
                }
            }
            if !set.opened_for_write && caller.uid != 0 {
                check_access(&inode, caller, super::W_OK)?;
            }
            self.apply_truncate(&mut txn, &ctx, id.ino(), &mut inode, size, tail)?;
            if caller.uid != 0 {
                inode.perm = setid_cleared(inode.perm);
            }
            self.drop_capability(&mut txn, &ctx, id.ino())?;
            if set.mtime.is_none() {
                inode.mtime = now;
            }
        }
        inode.ctime = set.ctime.unwrap_or(now);
        txn.put_inode(id.ino(), &inode, Some(&found));
        txn.commit()?;
        drop(_w);
        if let Some(size) = set.size {
            // A session that outlived the flush above must not keep the old size.
            if let Some(s) = self
                .inner
                .sessions
                .get(&id)
                .map(|s| std::sync::Arc::clone(&s))
            {
                let mut st = s.state.lock().await;
                if !st.has_changes() {
                    st.size = size;
                }
            }
        }
        Ok(self.attr_of(id, &inode))
    }

    /// Filesystem usage: capacity and free space of the disk holding the data directory,
    /// and inode counts from the volume's counters.
    pub async fn statfs(&self) -> Result<StatFs> {
        let used_inodes = self.inner.meta.inode_counter();
        let mut out = StatFs {
            block_size: 4096,
            blocks: 1 << 40,
            blocks_free: 1 << 40,
            blocks_available: 1 << 40,
            files: used_inodes + (1 << 32),
            files_free: 1 << 32,
            name_max: NAME_MAX as u32,
        };
        if let Some(path) = &self.inner.opts.statfs_path {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
                .map_err(|_| FsError::new(ErrorKind::InvalidArgument, "data path contains NUL"))?;
            let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
            // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
            let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
            if rc != 0 {
                return Err(FsError::new(
                    ErrorKind::Io,
                    format!("statvfs: {}", std::io::Error::last_os_error()),
                ));
            }
            let frsize = st.f_frsize.max(1);
            let scale = |n: u64| n.saturating_mul(frsize) / 4096;
            out.blocks = scale(st.f_blocks as u64);
            out.blocks_free = scale(st.f_bfree as u64);
            out.blocks_available = scale(st.f_bavail as u64);
        }
        Ok(out)
    }
}
