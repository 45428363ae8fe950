//! Namespace operations: lookup, create/mkdir/mknod/symlink, link, unlink, rmdir, rename,
//! readlink.
//!
//! Dentries are keyed by parent inode, so renaming a directory rewrites two dentries and
//! the moved inode's record, whatever the size of the subtree (O(1)). Inode numbers are
//! volume-wide, so a name deleted and recreated in a fork never collides with an inherited
//! inode, and no "opaque directory" markers are needed.

use super::{check_access, check_name, check_sticky, Ctx, Fs, W_OK, X_OK};
use crate::control;
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::records::{Data, Dentry, Inode};
use crate::meta::Found;
use crate::types::{Attr, Caller, FileId, FileType, RenameFlags, Timestamp, LINK_MAX, SYMLINK_MAX};

/// Whether `name` in `parent` is the control directory's place (`/.nokv`).
fn reserved(parent: FileId, name: &[u8]) -> bool {
    parent == FileId::ROOT && name == control::CONTROL_NAME
}

/// What to create.
#[derive(Debug, Clone)]
pub(crate) enum NewNode<'a> {
    File,
    Dir,
    Symlink(&'a [u8]),
    Special(FileType, u64),
}

impl Fs {
    /// Looks up `name` in directory `parent`. `.` and `..` are resolved too.
    pub async fn lookup(&self, parent: FileId, name: &[u8], caller: &Caller) -> Result<Attr> {
        if control::is_control(parent) {
            return self.control_lookup(parent, name).await;
        }
        let ctx = self.ctx(parent.workspace())?;
        let (dir, _) = self.load(&ctx, parent.ino())?;
        if dir.kind != FileType::Dir {
            return Err(FsError::of(ErrorKind::NotDir));
        }
        check_access(&dir, caller, X_OK)?;
        if name == b"." {
            return Ok(self.attr_of(parent, &dir));
        }
        if name == b".." {
            let pid = self.dotdot(&ctx, parent.ino(), &dir);
            return self.getattr(pid).await;
        }
        if name.len() > crate::types::NAME_MAX {
            return Err(FsError::of(ErrorKind::NameTooLong));
        }
        if reserved(parent, name) {
            return self.control_getattr(control::CONTROL_DIR);
        }
        let (d, _) = self
            .inner
            .meta
            .dentry(&ctx.chain, parent.ino(), name)?
            .ok_or_else(|| FsError::of(ErrorKind::NotFound))?;
        match d {
            Dentry::Child { ino, .. } => {
                let (inode, _) = self.inner.meta.inode(&ctx.chain, ino)?.ok_or_else(|| {
                    FsError::new(
                        ErrorKind::Corrupt,
                        format!(
                            "entry {:?} points at missing inode {ino}",
                            String::from_utf8_lossy(name)
                        ),
                    )
                })?;
                Ok(self.attr_of(FileId::new(ctx.ws, ino), &inode))
            }
            Dentry::Junction { ws, root } => match self.junction_target(&ctx, ws, root) {
                Some(id) => self.getattr(id).await,
                None => Err(FsError::of(ErrorKind::NotFound)),
            },
            Dentry::Whiteout => Err(FsError::of(ErrorKind::NotFound)),
        }
    }

    /// Creates a regular file. With `exclusive`, an existing name fails with `Exists`;
    /// otherwise the existing file is returned (`O_CREAT` without `O_EXCL`, NFS UNCHECKED).
    pub async fn create(
        &self,
        parent: FileId,
        name: &[u8],
        mode: u32,
        caller: &Caller,
        exclusive: bool,
    ) -> Result<Attr> {
        match self.make_node(parent, name, mode, caller, NewNode::File) {
            Err(e) if e.kind() == ErrorKind::Exists && !exclusive => {
                let a = self.lookup(parent, name, caller).await?;
                if a.kind == FileType::Dir {
                    return Err(FsError::of(ErrorKind::IsDir));
                }
                Ok(a)
            }
            r => r,
        }
    }

    /// Creates a directory.
    pub async fn mkdir(
        &self,
        parent: FileId,
        name: &[u8],
        mode: u32,
        caller: &Caller,
    ) -> Result<Attr> {
        self.make_node(parent, name, mode, caller, NewNode::Dir)
    }

    /// Creates a special file: FIFO, socket, or (for root) a character/block device.
    pub async fn mknod(
        &self,
        parent: FileId,
        name: &[u8],
        kind: FileType,
        mode: u32,
        rdev: u64,
        caller: &Caller,
    ) -> Result<Attr> {
        match kind {
            FileType::Fifo | FileType::Socket => {}
            FileType::CharDevice | FileType::BlockDevice => {
                if caller.uid != 0 {
                    return Err(FsError::of(ErrorKind::NotPermitted));
                }
            }
            FileType::File => return self.make_node(parent, name, mode, caller, NewNode::File),
            _ => {
                return Err(FsError::new(
                    ErrorKind::InvalidArgument,
                    "mknod of a directory or symlink",
                ))
            }
        }
        self.make_node(parent, name, mode, caller, NewNode::Special(kind, rdev))
    }

    /// Creates a symbolic link to `target`.
    pub async fn symlink(
        &self,
        parent: FileId,
        name: &[u8],
        target: &[u8],
        caller: &Caller,
    ) -> Result<Attr> {
        if target.is_empty() {
            return Err(FsError::new(ErrorKind::NotFound, "empty symlink target"));
        }
        if target.len() > SYMLINK_MAX {
            return Err(FsError::of(ErrorKind::NameTooLong));
        }
        self.make_node(parent, name, 0o777, caller, NewNode::Symlink(target))
    }

    /// The target of a symbolic link.
    pub async fn readlink(&self, id: FileId) -> Result<Vec<u8>> {
        if control::is_control(id) {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "not a symbolic link",
            ));
        }
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        match (inode.kind, inode.data) {
            (FileType::Symlink, Data::Inline(t)) => Ok(t),
            _ => Err(FsError::new(
                ErrorKind::InvalidArgument,
                "not a symbolic link",
            )),
        }
    }

    fn make_node(
        &self,
        parent: FileId,
        name: &[u8],
        mode: u32,
        caller: &Caller,
        what: NewNode<'_>,
    ) -> Result<Attr> {
        check_name(name)?;
        if reserved(parent, name) {
            return Err(FsError::new(
                ErrorKind::Exists,
                "/.nokv is the control directory",
            ));
        }
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(parent.workspace())?;
        let (mut dir, dir_found) = self.dir_for_change(&ctx, parent.ino(), caller)?;
        let prev_dentry = self.vacant_entry(&ctx, parent.ino(), name)?;
        let now = Timestamp::now();
        let mut txn = meta.txn(ctx.head);
        let ino = meta.alloc_ino(&mut txn)?;
        let (kind, rdev, data, size) = match what {
            NewNode::File => (FileType::File, 0, Data::Inline(Vec::new()), 0),
            NewNode::Dir => (FileType::Dir, 0, Data::Blocks, 0),
            NewNode::Symlink(t) => (
                FileType::Symlink,
                0,
                Data::Inline(t.to_vec()),
                t.len() as u64,
            ),
            NewNode::Special(k, r) => (k, r, Data::Blocks, 0),
        };
        let mut perm = mode & 0o7777;
        let mut gid = caller.gid;
        if dir.perm & 0o2000 != 0 {
            // BSD group semantics under a setgid directory; subdirectories inherit the bit.
            gid = dir.gid;
            if kind == FileType::Dir {
                perm |= 0o2000;
            }
        }
        let inode = Inode {
            kind,
            perm,
            uid: caller.uid,
            gid,
            nlink: if kind == FileType::Dir { 2 } else { 1 },
            size,
            atime: now,
            mtime: now,
            ctime: now,
            btime: now,
            rdev,
            generation: txn.version,
            parent: parent.ino(),
            name: name.to_vec(),
            data_epoch: txn.version,
            data,
        };
        txn.put_inode(ino, &inode, None);
        txn.put_dentry(
            parent.ino(),
            name,
            Dentry::Child { ino, kind },
            prev_dentry.as_ref(),
        );
        dir.mtime = now;
        dir.ctime = now;
        if kind == FileType::Dir {
            dir.nlink = dir
                .nlink
                .checked_add(1)
                .ok_or_else(|| FsError::of(ErrorKind::TooManyLinks))?;
        }
        txn.put_inode(parent.ino(), &dir, Some(&dir_found));
        txn.commit()?;
        Ok(self.attr_of(FileId::new(ctx.ws, ino), &inode))
    }

    /// Adds a hard link `name` in `parent` to the file `id`.
    pub async fn link(
        &self,
        id: FileId,
        parent: FileId,
        name: &[u8],
        caller: &Caller,
    ) -> Result<Attr> {
        check_name(name)?;
        if control::is_control(id) || control::is_control(parent) {
            return Err(control::not_permitted("link"));
        }
        if reserved(parent, name) {
            return Err(FsError::new(
                ErrorKind::Exists,
                "/.nokv is the control directory",
            ));
        }
        if id.workspace() != parent.workspace() {
            return Err(FsError::of(ErrorKind::CrossWorkspace));
        }
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(parent.workspace())?;
        let (mut dir, dir_found) = self.dir_for_change(&ctx, parent.ino(), caller)?;
        let (mut inode, found) = self.load(&ctx, id.ino())?;
        if inode.kind == FileType::Dir {
            return Err(FsError::new(
                ErrorKind::NotPermitted,
                "hard link to a directory",
            ));
        }
        if inode.nlink == 0 {
            return Err(FsError::of(ErrorKind::NotFound));
        }
        if inode.nlink >= LINK_MAX {
            return Err(FsError::of(ErrorKind::TooManyLinks));
        }
        let prev_dentry = self.vacant_entry(&ctx, parent.ino(), name)?;
        let now = Timestamp::now();
        let mut txn = meta.txn(ctx.head);
        inode.nlink += 1;
        inode.ctime = now;
        // The parent pointer names the newest link (used for paths in diffs).
        inode.parent = parent.ino();
        inode.name = name.to_vec();
        txn.put_inode(id.ino(), &inode, Some(&found));
        txn.put_dentry(
            parent.ino(),
            name,
            Dentry::Child {
                ino: id.ino(),
                kind: inode.kind,
            },
            prev_dentry.as_ref(),
        );
        dir.mtime = now;
        dir.ctime = now;
        txn.put_inode(parent.ino(), &dir, Some(&dir_found));
        txn.commit()?;
        Ok(self.attr_of(id, &inode))
    }

    /// Removes the non-directory entry `name` of `parent`.
    pub async fn unlink(&self, parent: FileId, name: &[u8], caller: &Caller) -> Result<()> {
        self.remove(parent, name, caller, false)
    }

    /// Removes the empty directory `name` of `parent`.
    pub async fn rmdir(&self, parent: FileId, name: &[u8], caller: &Caller) -> Result<()> {
        if name == b"." {
            return Err(FsError::new(ErrorKind::InvalidArgument, "rmdir of '.'"));
        }
        if name == b".." {
            return Err(FsError::of(ErrorKind::NotEmpty));
        }
        self.remove(parent, name, caller, true)
    }

    fn remove(&self, parent: FileId, name: &[u8], caller: &Caller, dir_wanted: bool) -> Result<()> {
        check_name(name)?;
        if reserved(parent, name) || control::is_control(parent) {
            return Err(control::not_permitted("remove"));
        }
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(parent.workspace())?;
        let (mut dir, dir_found) = self.dir_for_change(&ctx, parent.ino(), caller)?;
        let (d, dfound) = self
            .visible_entry(&ctx, parent.ino(), name)?
            .ok_or_else(|| FsError::of(ErrorKind::NotFound))?;
        let ino = match d {
            Dentry::Child { ino, .. } => ino,
            Dentry::Junction { ws, .. } => {
                if !dir_wanted {
                    return Err(FsError::of(ErrorKind::IsDir));
                }
                // rmdir of an empty workspace discards it (so `rm -rf fork` works).
                let wctx = self.ctx(ws)?;
                let (root, _) = self.load(&wctx, wctx.root)?;
                check_sticky(&dir, &root, caller)?;
                if !self.dir_is_empty(&wctx, wctx.root)? {
                    return Err(FsError::of(ErrorKind::NotEmpty));
                }
                let mut txn = meta.txn(ctx.head);
                self.discard_in(&mut txn, ws)?;
                txn.commit()?;
                return Ok(());
            }
            Dentry::Whiteout => return Err(FsError::of(ErrorKind::NotFound)),
        };
        let (mut child, cfound) = self.load(&ctx, ino)?;
        check_sticky(&dir, &child, caller)?;
        let is_dir = child.kind == FileType::Dir;
        if dir_wanted && !is_dir {
            return Err(FsError::of(ErrorKind::NotDir));
        }
        if !dir_wanted && is_dir {
            return Err(FsError::of(ErrorKind::IsDir));
        }
        if is_dir && !self.dir_is_empty(&ctx, ino)? {
            return Err(FsError::of(ErrorKind::NotEmpty));
        }
        let now = Timestamp::now();
        let mut txn = meta.txn(ctx.head);
        txn.delete_dentry(parent.ino(), name, &dfound);
        self.drop_link(&ctx, &mut txn, ino, &mut child, &cfound, now);
        dir.mtime = now;
        dir.ctime = now;
        if is_dir {
            dir.nlink = dir.nlink.saturating_sub(1);
        }
        txn.put_inode(parent.ino(), &dir, Some(&dir_found));
        txn.commit()?;
        Ok(())
    }

    /// Drops one link of `child` inside `txn`: decrements nlink, and deletes the inode when
    /// no link remains and nothing holds it open (otherwise it becomes an orphan, reaped on
    /// last release or at the next open).
    pub(crate) fn drop_link(
        &self,
        ctx: &Ctx,
        txn: &mut crate::meta::Txn<'_>,
        ino: u64,
        child: &mut Inode,
        found: &Found,
        now: Timestamp,
    ) {
        child.ctime = now;
        if child.kind == FileType::Dir {
            child.nlink = 0;
        } else {
            child.nlink = child.nlink.saturating_sub(1);
        }
        let id = FileId::new(ctx.ws, ino);
        if child.nlink == 0 && !self.inner.open.contains_key(&id) {
            txn.delete_inode(ino, Some(found));
            self.inner.sessions.remove(&id);
        } else {
            if child.nlink == 0 {
                txn.put_orphan_of(ctx.ws, ino);
            }
            txn.put_inode(ino, child, Some(found));
        }
    }

    /// Renames `src_name` in `src_dir` to `dst_name` in `dst_dir` with POSIX semantics
    /// (replacing a compatible target) or the `noreplace` / `exchange` flags.
    pub async fn rename(
        &self,
        src_dir: FileId,
        src_name: &[u8],
        dst_dir: FileId,
        dst_name: &[u8],
        flags: RenameFlags,
        caller: &Caller,
    ) -> Result<()> {
        check_name(src_name)?;
        check_name(dst_name)?;
        if flags.noreplace && flags.exchange {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "noreplace with exchange",
            ));
        }
        if reserved(src_dir, src_name)
            || reserved(dst_dir, dst_name)
            || control::is_control(src_dir)
            || control::is_control(dst_dir)
        {
            return Err(control::not_permitted("rename"));
        }
        if src_dir.workspace() != dst_dir.workspace() {
            return Err(FsError::of(ErrorKind::CrossWorkspace));
        }
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(src_dir.workspace())?;
        let (sino, dino) = (src_dir.ino(), dst_dir.ino());
        let (mut sdir, sdir_found) = self.dir_for_change(&ctx, sino, caller)?;
        let (mut ddir, ddir_found) = self.dir_for_change(&ctx, dino, caller)?;
        let (sd, sfound) = meta
            .dentry(&ctx.chain, sino, src_name)?
            .ok_or_else(|| FsError::of(ErrorKind::NotFound))?;
        let target = self.visible_entry(&ctx, dino, dst_name)?;
        if sino == dino && src_name == dst_name {
            return Ok(());
        }
        let (child_ino, child_kind) = match sd {
            Dentry::Child { ino, kind } => (ino, kind),
            Dentry::Junction { ws, root } => {
                if self.junction_target(&ctx, ws, root).is_none() {
                    return Err(FsError::of(ErrorKind::NotFound));
                }
                if flags.exchange || target.is_some() {
                    return Err(FsError::new(
                        ErrorKind::Busy,
                        "a workspace junction can only be renamed to a free name",
                    ));
                }
                let mut txn = meta.txn(ctx.head);
                let prev = meta.dentry_record(&ctx.chain, dino, dst_name)?;
                txn.put_dentry(dino, dst_name, sd, prev.as_ref());
                txn.delete_dentry(sino, src_name, &sfound);
                let now = Timestamp::now();
                sdir.mtime = now;
                sdir.ctime = now;
                if sino == dino {
                    txn.put_inode(sino, &sdir, Some(&sdir_found));
                } else {
                    sdir.nlink = sdir.nlink.saturating_sub(1);
                    ddir.nlink += 1;
                    ddir.mtime = now;
                    ddir.ctime = now;
                    txn.put_inode(sino, &sdir, Some(&sdir_found));
                    txn.put_inode(dino, &ddir, Some(&ddir_found));
                }
                let mut rec = meta.workspace(ws)?;
                rec.mount = Some(crate::meta::records::Mount {
                    ws: ctx.ws,
                    dir: dino,
                    name: dst_name.to_vec(),
                });
                meta.put_workspace(&mut txn, ws, rec);
                txn.commit()?;
                return Ok(());
            }
            Dentry::Whiteout => return Err(FsError::of(ErrorKind::NotFound)),
        };
        let (mut child, cfound) = self.load(&ctx, child_ino)?;
        check_sticky(&sdir, &child, caller)?;
        // No moving a directory under itself.
        if child_kind == FileType::Dir && sino != dino {
            self.refuse_move_under_itself(&ctx, child_ino, dino)?;
        }
        if child_kind == FileType::Dir && sino != dino && caller.uid != 0 && caller.uid != child.uid
        {
            // Moving a directory to a new parent rewrites its "..": needs write access to it.
            check_access(&child, caller, W_OK)?;
        }
        let now = Timestamp::now();
        let mut txn = meta.txn(ctx.head);
        let target = match target {
            Some((Dentry::Child { ino, kind }, tfound)) => Some((ino, kind, tfound)),
            Some(_) => {
                return Err(FsError::new(
                    ErrorKind::Busy,
                    "target is a workspace (discard it first)",
                ))
            }
            None => None,
        };
        if flags.exchange {
            let (tino, tkind, tfound) = target.ok_or_else(|| FsError::of(ErrorKind::NotFound))?;
            let (mut tchild, tcfound) = self.load(&ctx, tino)?;
            check_sticky(&ddir, &tchild, caller)?;
            if tkind == FileType::Dir && sino != dino {
                // The target moves under the source's directory: it must not be an ancestor.
                self.refuse_move_under_itself(&ctx, tino, sino)?;
            }
            txn.put_dentry(
                dino,
                dst_name,
                Dentry::Child {
                    ino: child_ino,
                    kind: child_kind,
                },
                Some(&tfound),
            );
            txn.put_dentry(
                sino,
                src_name,
                Dentry::Child {
                    ino: tino,
                    kind: tkind,
                },
                Some(&sfound),
            );
            child.parent = dino;
            child.name = dst_name.to_vec();
            child.ctime = now;
            tchild.parent = sino;
            tchild.name = src_name.to_vec();
            tchild.ctime = now;
            if sino != dino {
                let d = i64::from(child_kind == FileType::Dir) - i64::from(tkind == FileType::Dir);
                sdir.nlink = (i64::from(sdir.nlink) - d).max(1) as u32;
                ddir.nlink = (i64::from(ddir.nlink) + d).max(1) as u32;
            }
            txn.put_inode(child_ino, &child, Some(&cfound));
            txn.put_inode(tino, &tchild, Some(&tcfound));
        } else {
            if let Some((tino, tkind, tfound)) = target {
                if flags.noreplace {
                    return Err(FsError::of(ErrorKind::Exists));
                }
                if tino == child_ino {
                    // Both names are links to one file: POSIX says do nothing.
                    return Ok(());
                }
                let (mut tchild, tcfound) = self.load(&ctx, tino)?;
                check_sticky(&ddir, &tchild, caller)?;
                match (child_kind == FileType::Dir, tkind == FileType::Dir) {
                    (true, false) => return Err(FsError::of(ErrorKind::NotDir)),
                    (false, true) => return Err(FsError::of(ErrorKind::IsDir)),
                    (true, true) => {
                        if !self.dir_is_empty(&ctx, tino)? {
                            return Err(FsError::of(ErrorKind::NotEmpty));
                        }
                        ddir.nlink = ddir.nlink.saturating_sub(1);
                    }
                    (false, false) => {}
                }
                self.drop_link(&ctx, &mut txn, tino, &mut tchild, &tcfound, now);
                txn.put_dentry(
                    dino,
                    dst_name,
                    Dentry::Child {
                        ino: child_ino,
                        kind: child_kind,
                    },
                    Some(&tfound),
                );
            } else {
                let prev = meta.dentry_record(&ctx.chain, dino, dst_name)?;
                txn.put_dentry(
                    dino,
                    dst_name,
                    Dentry::Child {
                        ino: child_ino,
                        kind: child_kind,
                    },
                    prev.as_ref(),
                );
            }
            txn.delete_dentry(sino, src_name, &sfound);
            if child_kind == FileType::Dir && sino != dino {
                sdir.nlink = sdir.nlink.saturating_sub(1);
                ddir.nlink += 1;
            }
            child.parent = dino;
            child.name = dst_name.to_vec();
            child.ctime = now;
            txn.put_inode(child_ino, &child, Some(&cfound));
        }
        sdir.mtime = now;
        sdir.ctime = now;
        if sino == dino {
            // One directory: the only link-count change is a replaced subdirectory.
            sdir.nlink = sdir.nlink.min(ddir.nlink);
            txn.put_inode(sino, &sdir, Some(&sdir_found));
        } else {
            ddir.mtime = now;
            ddir.ctime = now;
            txn.put_inode(sino, &sdir, Some(&sdir_found));
            txn.put_inode(dino, &ddir, Some(&ddir_found));
        }
        txn.commit()?;
        Ok(())
    }

    /// Loads directory `ino` for a change of its entries: it must be a directory that still
    /// exists, writable and searchable by `caller`.
    fn dir_for_change(&self, ctx: &Ctx, ino: u64, caller: &Caller) -> Result<(Inode, Found)> {
        let (dir, found) = self.load(ctx, ino)?;
        if dir.kind != FileType::Dir {
            return Err(FsError::of(ErrorKind::NotDir));
        }
        if dir.nlink == 0 {
            return Err(FsError::new(ErrorKind::NotFound, "directory was removed"));
        }
        check_access(&dir, caller, W_OK | X_OK)?;
        Ok((dir, found))
    }

    /// Checks that `name` is free in `dir` (`Exists` otherwise) and returns the record that
    /// currently holds the name, if any (a whiteout), so the new entry can supersede it.
    pub(crate) fn vacant_entry(&self, ctx: &Ctx, dir: u64, name: &[u8]) -> Result<Option<Found>> {
        let prev = self.inner.meta.dentry_record(&ctx.chain, dir, name)?;
        if let Some(f) = &prev {
            match Dentry::decode(&f.value)? {
                Dentry::Whiteout => {}
                Dentry::Junction { ws, root } if self.junction_target(ctx, ws, root).is_none() => {}
                _ => return Err(FsError::of(ErrorKind::Exists)),
            }
        }
        Ok(prev)
    }

    /// The entry `name` of `dir` as `lookup` sees it: hidden junctions count as absent.
    pub(crate) fn visible_entry(
        &self,
        ctx: &Ctx,
        dir: u64,
        name: &[u8],
    ) -> Result<Option<(Dentry, Found)>> {
        Ok(match self.inner.meta.dentry(&ctx.chain, dir, name)? {
            Some((Dentry::Junction { ws, root }, _))
                if self.junction_target(ctx, ws, root).is_none() =>
            {
                None
            }
            other => other,
        })
    }

    /// Fails with `InvalidArgument` when directory `moved` is `dest` or one of its ancestors
    /// (moving it there would detach a cycle). Walks parent pointers up to the root, with a
    /// bound so a corrupt cycle of parents cannot hang the call.
    fn refuse_move_under_itself(&self, ctx: &Ctx, moved: u64, dest: u64) -> Result<()> {
        let mut cur = dest;
        for _ in 0..100_000 {
            if cur == moved {
                return Err(FsError::new(
                    ErrorKind::InvalidArgument,
                    "cannot move a directory under itself",
                ));
            }
            if cur == crate::types::ROOT_INO || cur == ctx.root {
                return Ok(());
            }
            let (p, _) = self.load(ctx, cur)?;
            if p.parent == cur {
                return Ok(());
            }
            cur = p.parent;
        }
        Err(FsError::new(
            ErrorKind::Corrupt,
            "directory parent pointers form a cycle",
        ))
    }
}
