//! Directory listing across a layer chain.
//!
//! Entries of a directory may live in several layers of the chain (inherited entries below,
//! additions and whiteouts above). A listing merges them in `(name hash, name)` order, the
//! shallowest layer deciding each name. The readdir cookie of an entry is its name hash, so
//! a listing resumed after cookie `c` continues with the first name hashing above `c`:
//! entries present throughout a listing are returned exactly once, whatever is inserted or
//! removed meanwhile. (Two names with the same 63-bit hash in one directory would make the
//! second invisible to a listing that stops between them; the chance is ~n²/2⁶⁴.)

use std::collections::BTreeMap;

use super::{check_access, Ctx, Fs, R_OK};
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::keys;
use crate::meta::records::Dentry;
use crate::types::{Caller, DirEntry, FileId, FileType};

/// Cookie of `.` (resume after it); `..` uses [`DOTDOT_COOKIE`].
pub const DOT_COOKIE: u64 = 1;
/// Cookie of `..`.
pub const DOTDOT_COOKIE: u64 = 2;

impl Fs {
    /// Lists `dir` after `cookie` (0 = from the start), at most `limit` entries, including
    /// `.` and `..`. Returns the entries and whether the listing reached the end.
    pub async fn readdir(
        &self,
        dir: FileId,
        cookie: u64,
        limit: usize,
        caller: &Caller,
    ) -> Result<(Vec<DirEntry>, bool)> {
        if crate::control::is_control(dir) {
            return self.control_readdir(dir, cookie, limit);
        }
        let ctx = self.ctx(dir.workspace())?;
        let (inode, _) = self.load(&ctx, dir.ino())?;
        if inode.kind != FileType::Dir {
            return Err(FsError::of(ErrorKind::NotDir));
        }
        check_access(&inode, caller, R_OK)?;
        let limit = limit.max(1);
        let mut out = Vec::new();
        if cookie < DOT_COOKIE {
            out.push(DirEntry {
                name: b".".to_vec(),
                id: dir,
                kind: FileType::Dir,
                cookie: DOT_COOKIE,
            });
        }
        if cookie < DOTDOT_COOKIE && out.len() < limit {
            out.push(DirEntry {
                name: b"..".to_vec(),
                id: self.dotdot(&ctx, dir.ino(), &inode),
                kind: FileType::Dir,
                cookie: DOTDOT_COOKIE,
            });
        }
        let mut after = cookie.max(DOTDOT_COOKIE);
        while out.len() < limit {
            let (page, next) = self.dir_page(&ctx, dir.ino(), after, limit - out.len(), false)?;
            out.extend(page);
            match next {
                Some(n) => after = n,
                None => return Ok((out, true)),
            }
        }
        Ok((out, false))
    }

    /// Every visible entry of `dir` in view `ctx` (children and junctions), in cookie order.
    /// With `hidden`, junctions to discarded workspaces and junctions in snapshots are
    /// included too.
    pub(crate) fn entries(
        &self,
        ctx: &Ctx,
        dir: u64,
        hidden: bool,
    ) -> Result<Vec<(Vec<u8>, Dentry)>> {
        let mut out = Vec::new();
        let mut after = DOTDOT_COOKIE;
        loop {
            let (page, next) = self.dir_page(ctx, dir, after, 1024, hidden)?;
            for e in page {
                let d = if e.id.workspace() == ctx.ws {
                    Dentry::Child {
                        ino: e.id.ino(),
                        kind: e.kind,
                    }
                } else {
                    Dentry::Junction {
                        ws: e.id.workspace(),
                        root: e.id.ino(),
                    }
                };
                out.push((e.name, d));
            }
            match next {
                Some(n) => after = n,
                None => return Ok(out),
            }
        }
    }

    /// Whether `dir` has no entries (other than `.` and `..`).
    pub(crate) fn dir_is_empty(&self, ctx: &Ctx, dir: u64) -> Result<bool> {
        let mut after = DOTDOT_COOKIE;
        loop {
            let (page, next) = self.dir_page(ctx, dir, after, 1, false)?;
            if !page.is_empty() {
                return Ok(false);
            }
            match next {
                Some(n) => after = n,
                None => return Ok(true),
            }
        }
    }

    /// Up to `limit` live entries with hash > `after`, and the cursor to continue from
    /// (`None` at the end). May return fewer than `limit` entries (even none) before the end
    /// when whiteouts or old versions fill a page; callers loop, and the cursor always
    /// advances.
    fn dir_page(
        &self,
        ctx: &Ctx,
        dir: u64,
        after: u64,
        limit: usize,
        hidden: bool,
    ) -> Result<(Vec<DirEntry>, Option<u64>)> {
        let meta = &self.inner.meta;
        // name key (hash, name) -> (depth, dentry) of the shallowest layer.
        let mut merged: BTreeMap<(u64, Vec<u8>), (usize, Dentry)> = BTreeMap::new();
        // Entries are only certain up to the smallest "last key" of a layer whose page was full.
        let mut bound: Option<(u64, Vec<u8>)> = None;
        let raw_limit = (limit * 2).clamp(16, 4096);
        for (depth, rp) in ctx.chain.iter().enumerate() {
            if depth > 0 && !meta.may_have_pub(rp.layer, dir) {
                continue;
            }
            let prefix = keys::dentry_dir_prefix(rp.layer, dir);
            let mut start = prefix.clone();
            start.extend_from_slice(&(after + 1).to_be_bytes());
            let rows = meta.commit.scan(&prefix, &start, raw_limit)?;
            let full = rows.len() == raw_limit;
            let mut last_name: Option<(u64, Vec<u8>)> = None;
            let mut seen_this: Option<(u64, Vec<u8>)> = None;
            for (k, v) in &rows {
                let Some((hash, name, version)) = keys::parse_dentry(k) else {
                    return Err(FsError::new(ErrorKind::Corrupt, "malformed dentry key"));
                };
                let nk = (hash, name.to_vec());
                last_name = Some(nk.clone());
                if version > rp.version || seen_this.as_ref() == Some(&nk) {
                    continue;
                }
                seen_this = Some(nk.clone());
                merged.entry(nk).or_insert((depth, Dentry::decode(v)?));
            }
            if full {
                if let Some(l) = last_name {
                    // The last name of a full page may have more versions on the next page:
                    // only names strictly before it are certain.
                    if bound.as_ref().is_none_or(|b| l < *b) {
                        bound = Some(l);
                    }
                }
            }
        }
        let mut out = Vec::new();
        let mut cut = false;
        for ((hash, name), (_, d)) in merged {
            if let Some(b) = &bound {
                if (hash, &name) >= (b.0, &b.1) {
                    cut = true;
                    break;
                }
            }
            if out.len() == limit {
                cut = true;
                break;
            }
            let (id, kind) = match d {
                Dentry::Child { ino, kind } => (FileId::new(ctx.ws, ino), kind),
                Dentry::Junction { ws, root } => match self.junction_target(ctx, ws, root) {
                    Some(id) => (id, FileType::Dir),
                    None if hidden => (FileId::new(ws, root), FileType::Dir),
                    None => continue,
                },
                Dentry::Whiteout => continue,
            };
            out.push(DirEntry {
                name,
                id,
                kind,
                cookie: hash,
            });
        }
        if !cut && bound.is_none() {
            return Ok((out, None));
        }
        let next = match (out.last(), &bound) {
            (Some(last), _) => last.cookie,
            // Everything below the bound's hash was hidden; resume just before it (or at it,
            // in the pathological case of one name whose versions fill a whole page).
            (None, Some(b)) => (b.0 - 1).max(after + 1),
            (None, None) => return Ok((out, None)),
        };
        Ok((out, Some(next)))
    }
}
