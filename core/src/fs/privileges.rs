//! What modifying a file takes away, as Linux does it:
//!
//! - writing or truncating a regular file clears its setuid bit, and its setgid bit when the
//!   file is group-executable (setgid without group execute marks mandatory locking and
//!   stays), unless the caller may keep them (root; the FUSE kernel module tells per write);
//! - changing its owner or group clears the same bits for every caller;
//! - each of these removes the file's capabilities (the `security.capability` xattr),
//!   whoever the caller.
//!
//! The frontends leave this to the core: the FUSE mount negotiates
//! `FUSE_HANDLE_KILLPRIV_V2`, so the kernel no longer reads `security.capability` before
//! every `write` (a round trip each) and relies on the server instead.

use super::{Ctx, Fs};
use crate::error::Result;
use crate::invalidate::Invalidation;
use crate::meta::records;
use crate::meta::{keys, Found, Txn};
use crate::types::{FileId, FileType, Timestamp};

/// The xattr holding a file's capabilities.
pub(crate) const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// `perm` without setuid, and without setgid when group-executable.
pub(crate) fn setid_cleared(perm: u32) -> u32 {
    let mut p = perm & !0o4000;
    if perm & 0o2010 == 0o2010 {
        p &= !0o2000;
    }
    p
}

impl Fs {
    /// Before a write to `id`: clears setuid/setgid unless `keep_setid`, and removes the
    /// file's capabilities (see the module docs). Costs two record reads and no
    /// transaction when there is nothing to remove, the usual case; a change is reported
    /// to the invalidators ([`Invalidation::Attributes`]) before this returns.
    pub async fn before_write(&self, id: FileId, keep_setid: bool) -> Result<()> {
        if crate::control::is_control(id) {
            return Ok(());
        }
        let ctx = self.ctx_mut(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        let setid = !keep_setid && setid_cleared(inode.perm) != inode.perm;
        if inode.kind != FileType::File || (!setid && self.capability(&ctx, id.ino())?.is_none()) {
            return Ok(());
        }
        let _w = self.inner.writer.lock();
        let (mut inode, found) = self.load(&ctx, id.ino())?;
        let mut txn = self.inner.meta.txn(ctx.head);
        let mut changed = self.drop_capability(&mut txn, &ctx, id.ino())?;
        if !keep_setid && setid_cleared(inode.perm) != inode.perm {
            inode.perm = setid_cleared(inode.perm);
            changed = true;
        }
        if !changed {
            return Ok(());
        }
        inode.ctime = Timestamp::now();
        txn.put_inode(id.ino(), &inode, Some(&found));
        txn.commit()?;
        drop(_w);
        // A kernel that cached the old mode would honour setuid on an exec of the new
        // content until its cache expired.
        self.invalidate(&[Invalidation::Attributes(id)]);
        Ok(())
    }

    /// In `txn`: removes `ino`'s capabilities, if it has any; whether it had.
    pub(crate) fn drop_capability(&self, txn: &mut Txn<'_>, ctx: &Ctx, ino: u64) -> Result<bool> {
        match self.capability(ctx, ino)? {
            Some(found) => {
                txn.put_xattr(ino, CAPABILITY_XATTR, None, Some(&found));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The record of `ino`'s capability xattr, if it has one.
    fn capability(&self, ctx: &Ctx, ino: u64) -> Result<Option<Found>> {
        let found = self.inner.meta.read_versioned(&ctx.chain, ino, |l| {
            keys::xattr_prefix(l, ino, CAPABILITY_XATTR)
        })?;
        Ok(match found {
            Some(f) if records::decode_xattr(&f.value)?.is_some() => Some(f),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::setid_cleared;

    #[test]
    fn setgid_without_group_execute_stays() {
        assert_eq!(setid_cleared(0o6755), 0o755);
        assert_eq!(setid_cleared(0o6745), 0o2745);
        assert_eq!(setid_cleared(0o4644), 0o644);
        assert_eq!(setid_cleared(0o1777), 0o1777);
    }
}
