//! Extended attributes, stored per inode in the `X` family (versioned like every record, so
//! forks and snapshots see their own xattrs; removal in a fork writes a whiteout).
//!
//! POSIX ACLs (`system.posix_acl_access`, `system.posix_acl_default`) and SELinux labels
//! (`security.selinux`) are not supported: nothing would enforce them, so storing them
//! would only pretend. Getting, setting or removing them fails with `Unsupported`
//! (`EOPNOTSUPP`), which tools read as "this filesystem has none": `ls -l` then stops asking
//! for them on the whole mount after the first file, instead of a FUSE round trip per file.

use std::collections::BTreeMap;

use super::{check_access, Ctx, Fs, R_OK, W_OK};
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::{keys, records};
use crate::types::{Caller, FileId, Timestamp, XattrMode, XATTR_NAME_MAX, XATTR_VALUE_MAX};

fn check_xattr_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(FsError::new(
            ErrorKind::InvalidArgument,
            "invalid xattr name",
        ));
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(FsError::of(ErrorKind::Range));
    }
    Ok(())
}

/// Names whose semantics the filesystem does not implement (see the module docs).
fn check_supported(name: &[u8]) -> Result<()> {
    match name {
        b"system.posix_acl_access" | b"system.posix_acl_default" => Err(FsError::new(
            ErrorKind::Unsupported,
            "POSIX ACLs are not supported",
        )),
        b"security.selinux" => Err(FsError::new(
            ErrorKind::Unsupported,
            "SELinux labels are not supported",
        )),
        _ => Ok(()),
    }
}

fn check_namespace(name: &[u8], caller: &Caller) -> Result<()> {
    if name.starts_with(b"user.") {
        return Ok(());
    }
    if name.starts_with(b"trusted.")
        || name.starts_with(b"security.")
        || name.starts_with(b"system.")
    {
        if caller.uid == 0 {
            return Ok(());
        }
        return Err(FsError::of(ErrorKind::NotPermitted));
    }
    Err(FsError::new(
        ErrorKind::Unsupported,
        "unknown xattr namespace",
    ))
}

impl Fs {
    /// The value of xattr `name` (`NoData` if absent).
    pub async fn getxattr(&self, id: FileId, name: &[u8], caller: &Caller) -> Result<Vec<u8>> {
        check_xattr_name(name)?;
        check_supported(name)?;
        if crate::control::is_control(id) {
            return Err(FsError::of(ErrorKind::NoData));
        }
        let ctx = self.ctx(id.workspace())?;
        let (inode, _) = self.load(&ctx, id.ino())?;
        if name.starts_with(b"user.") {
            check_access(&inode, caller, R_OK)?;
        }
        self.inner
            .meta
            .xattr(&ctx.chain, id.ino(), name)?
            .map(|(v, _)| v)
            .ok_or_else(|| FsError::of(ErrorKind::NoData))
    }

    /// Sets xattr `name` with create/replace semantics.
    pub async fn setxattr(
        &self,
        id: FileId,
        name: &[u8],
        value: &[u8],
        mode: XattrMode,
        caller: &Caller,
    ) -> Result<()> {
        check_xattr_name(name)?;
        check_supported(name)?;
        check_namespace(name, caller)?;
        if value.len() > XATTR_VALUE_MAX {
            return Err(FsError::new(
                ErrorKind::TooBig,
                format!("xattr values are limited to {XATTR_VALUE_MAX} bytes"),
            ));
        }
        self.change_xattr(id, name, Some(value), mode, caller)
    }

    /// Removes xattr `name` (`NoData` if absent).
    pub async fn removexattr(&self, id: FileId, name: &[u8], caller: &Caller) -> Result<()> {
        check_xattr_name(name)?;
        check_supported(name)?;
        check_namespace(name, caller)?;
        self.change_xattr(id, name, None, XattrMode::Replace, caller)
    }

    fn change_xattr(
        &self,
        id: FileId,
        name: &[u8],
        value: Option<&[u8]>,
        mode: XattrMode,
        caller: &Caller,
    ) -> Result<()> {
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(id.workspace())?;
        let (mut inode, found) = self.load(&ctx, id.ino())?;
        if caller.uid != 0 && caller.uid != inode.uid {
            check_access(&inode, caller, W_OK)?;
        }
        let existing = meta.read_versioned(&ctx.chain, id.ino(), |l| {
            keys::xattr_prefix(l, id.ino(), name)
        })?;
        let present = match &existing {
            Some(f) => records::decode_xattr(&f.value)?.is_some(),
            None => false,
        };
        match mode {
            XattrMode::Create if present => return Err(FsError::of(ErrorKind::Exists)),
            XattrMode::Replace if !present => return Err(FsError::of(ErrorKind::NoData)),
            _ => {}
        }
        let mut txn = meta.txn(ctx.head);
        txn.put_xattr(id.ino(), name, value, existing.as_ref());
        inode.ctime = Timestamp::now();
        txn.put_inode(id.ino(), &inode, Some(&found));
        txn.commit()?;
        Ok(())
    }

    /// Names of all xattrs of `id`, sorted.
    pub async fn listxattr(&self, id: FileId) -> Result<Vec<Vec<u8>>> {
        if crate::control::is_control(id) {
            return Ok(Vec::new());
        }
        let ctx = self.ctx(id.workspace())?;
        self.load(&ctx, id.ino())?;
        self.xattr_names(&ctx, id.ino())
    }

    /// Names of all xattrs of `ino` in view `ctx`, sorted.
    pub(crate) fn xattr_names(&self, ctx: &Ctx, ino: u64) -> Result<Vec<Vec<u8>>> {
        let meta = &self.inner.meta;
        let mut names: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
        for (depth, rp) in ctx.chain.iter().enumerate() {
            if depth > 0 && !meta.may_have_pub(rp.layer, ino) {
                continue;
            }
            let mut decided: Option<Vec<u8>> = None;
            for (k, v) in meta.scan_all(&keys::xattr_ino_prefix(rp.layer, ino))? {
                let Some((name, version)) = keys::parse_xattr(&k) else {
                    return Err(FsError::new(ErrorKind::Corrupt, "malformed xattr key"));
                };
                if version > rp.version || decided.as_deref() == Some(name) {
                    continue;
                }
                decided = Some(name.to_vec());
                names
                    .entry(name.to_vec())
                    .or_insert(records::decode_xattr(&v)?.is_some());
            }
        }
        Ok(names
            .into_iter()
            .filter(|(_, live)| *live)
            .map(|(n, _)| n)
            .collect())
    }
}
