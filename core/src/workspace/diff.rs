//! diff: what changed between two directory trees.
//!
//! When both sides are versions of one directory (same root inode) and their views share a
//! layer (a fork and its base, a workspace and its snapshot,
//! two forks of one base), the candidates are the inodes the change log (`G`) lists above
//! the common read point on each side: O(changes), whatever the size of the trees. Each
//! candidate is resolved to a path in both views and compared; a file both sides share
//! unchanged is never a candidate, so it is never reported. A directory that appears or
//! disappears (including by rename) is reported with its whole subtree. Unrelated trees
//! fall back to a walk of both.
//!
//! Nested workspaces are not entered: a diff compares the content of one workspace (or
//! snapshot) tree with another.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::{Ctx, Fs};
use crate::meta::records::{Data, Dentry, Inode};
use crate::meta::ReadPoint;
use crate::types::{FileId, FileType};

/// How a path differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Change {
    /// Only in the second tree.
    Added,
    /// Only in the first tree.
    Removed,
    /// In both, different.
    Modified,
}

impl Change {
    /// The one-letter code of the CLI (`A`, `D`, `M`).
    pub fn letter(self) -> char {
        match self {
            Change::Added => 'A',
            Change::Removed => 'D',
            Change::Modified => 'M',
        }
    }
}

/// What differs about a modified path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Modification {
    /// File content (data written, size changed).
    pub content: bool,
    /// File type (e.g. a file replaced by a directory).
    pub kind: bool,
    /// Permission bits.
    pub mode: bool,
    /// Owner or group.
    pub owner: bool,
    /// Symbolic link target.
    pub target: bool,
    /// Extended attributes.
    pub xattrs: bool,
}

impl Modification {
    /// Whether anything differs.
    pub fn any(&self) -> bool {
        self.content || self.kind || self.mode || self.owner || self.target || self.xattrs
    }

    /// The names of what differs, e.g. `["content", "mode"]`.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.content, "content"),
            (self.kind, "type"),
            (self.mode, "mode"),
            (self.owner, "owner"),
            (self.target, "target"),
            (self.xattrs, "xattrs"),
        ]
        .into_iter()
        .filter_map(|(b, n)| b.then_some(n))
        .collect()
    }
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffEntry {
    /// Added, removed or modified.
    pub change: Change,
    /// Path relative to the compared directories, starting with `/`.
    pub path: String,
    /// File type (in the second tree, except for removals).
    pub kind: FileType,
    /// For modifications, what differs.
    pub what: Modification,
    /// Size in the second tree minus size in the first (0 for directories).
    pub size_delta: i64,
}

/// The entries of a diff, in path order.
#[derive(Debug)]
pub struct Diff {
    entries: std::vec::IntoIter<DiffEntry>,
}

impl Iterator for Diff {
    type Item = DiffEntry;
    fn next(&mut self) -> Option<DiffEntry> {
        self.entries.next()
    }
}

/// A path's state in one view.
struct Side {
    ino: u64,
    inode: Inode,
}

impl Fs {
    /// Compares directory trees `a` and `b` (volume paths; either may be a snapshot tree
    /// under `/.nokv/snapshots/`) and lists the paths that differ, relative to each.
    pub async fn diff(&self, a: &str, b: &str) -> Result<Diff> {
        let ida = self.resolve(a)?;
        let idb = self.resolve(b)?;
        self.flush_view(ida.workspace()).await?;
        self.flush_view(idb.workspace()).await?;
        let entries = self.diff_ids(ida, idb)?;
        Ok(Diff {
            entries: entries.into_iter(),
        })
    }

    pub(crate) fn diff_ids(&self, ida: FileId, idb: FileId) -> Result<Vec<DiffEntry>> {
        let ca = self.ctx(ida.workspace())?;
        let cb = self.ctx(idb.workspace())?;
        let mut roots = Vec::with_capacity(2);
        for (c, id) in [(&ca, ida), (&cb, idb)] {
            let (d, _) = self.load(c, id.ino())?;
            if d.kind != FileType::Dir {
                return Err(FsError::new(ErrorKind::NotDir, "diff compares directories"));
            }
            roots.push(Side {
                ino: id.ino(),
                inode: d,
            });
        }
        let (ra, rb) = (ida.ino(), idb.ino());
        // path -> (side a, side b)
        let mut paths: BTreeMap<String, (Option<Side>, Option<Side>)> = BTreeMap::new();
        // Change logs relate versions of one directory; different directories are walked.
        let related = if ra == rb {
            self.candidates(&ca, &cb)?
        } else {
            None
        };
        match related {
            Some(cands) => {
                for ino in cands {
                    let pa = self.rel_path(&ca, ino, ra)?;
                    let pb = self.rel_path(&cb, ino, rb)?;
                    if let (Some((x, _)), Some((y, _))) = (&pa, &pb) {
                        if x == y {
                            let (pa, pb) = (pa.unwrap(), pb.unwrap());
                            let e = paths.entry(pa.0).or_default();
                            e.0 = Some(Side { ino, inode: pa.1 });
                            e.1 = Some(Side { ino, inode: pb.1 });
                            continue;
                        }
                    }
                    if let Some((p, inode)) = pa {
                        self.add_subtree(&ca, &mut paths, p, ino, inode, true)?;
                    }
                    if let Some((p, inode)) = pb {
                        self.add_subtree(&cb, &mut paths, p, ino, inode, false)?;
                    }
                }
                // A path may have been seen on one side only through its own inode while
                // the other side holds another inode there: resolve the other side.
                let keys: Vec<String> = paths.keys().cloned().collect();
                for p in keys {
                    let e = paths.get_mut(&p).expect("key");
                    if e.0.is_none() {
                        e.0 = self.lookup_rel(&ca, ra, &p)?;
                    }
                    if e.1.is_none() {
                        e.1 = self.lookup_rel(&cb, rb, &p)?;
                    }
                }
            }
            None => {
                let mut wa = BTreeMap::new();
                self.walk(&ca, ra, "", &mut wa)?;
                let mut wb = BTreeMap::new();
                self.walk(&cb, rb, "", &mut wb)?;
                for (p, s) in wa {
                    paths.entry(p).or_default().0 = Some(s);
                }
                for (p, s) in wb {
                    paths.entry(p).or_default().1 = Some(s);
                }
                // The walks list what is under the roots; the roots themselves (mode,
                // owner, xattrs) are compared too, as the change logs would have.
                let rb_side = roots.pop();
                paths.insert("/".to_string(), (roots.pop(), rb_side));
            }
        }
        let mut out = Vec::new();
        for (path, (a, b)) in paths {
            let entry = match (a, b) {
                (None, None) => continue,
                (Some(a), None) => DiffEntry {
                    change: Change::Removed,
                    path,
                    kind: a.inode.kind,
                    what: Modification::default(),
                    size_delta: -(file_size(&a.inode) as i64),
                },
                (None, Some(b)) => DiffEntry {
                    change: Change::Added,
                    path,
                    kind: b.inode.kind,
                    what: Modification::default(),
                    size_delta: file_size(&b.inode) as i64,
                },
                (Some(a), Some(b)) => {
                    let what = self.compare(&ca, &a, &cb, &b)?;
                    if !what.any() {
                        continue;
                    }
                    DiffEntry {
                        change: Change::Modified,
                        path,
                        kind: b.inode.kind,
                        what,
                        size_delta: file_size(&b.inode) as i64 - file_size(&a.inode) as i64,
                    }
                }
            };
            out.push(entry);
        }
        Ok(out)
    }

    /// The inodes that may differ between the two views, from the change logs above their
    /// common read point; `None` when the views share no layer.
    fn candidates(&self, a: &Ctx, b: &Ctx) -> Result<Option<BTreeSet<u64>>> {
        let meta = &self.inner.meta;
        let Some((i, j)) = a.chain.iter().enumerate().find_map(|(i, rp)| {
            b.chain
                .iter()
                .position(|q| q.layer == rp.layer)
                .map(|j| (i, j))
        }) else {
            return Ok(None);
        };
        let mut out = BTreeSet::new();
        let own = |chain: &[ReadPoint], n: usize, out: &mut BTreeSet<u64>| -> Result<()> {
            for rp in &chain[..n] {
                out.extend(meta.changes(rp.layer, 0, rp.version)?);
            }
            Ok(())
        };
        own(&a.chain, i, &mut out)?;
        own(&b.chain, j, &mut out)?;
        let (va, vb) = (a.chain[i].version, b.chain[j].version);
        out.extend(meta.changes(a.chain[i].layer, va.min(vb), va.max(vb))?);
        Ok(Some(out))
    }

    /// Records `ino` at `path` on one side, and everything under it if it is a directory.
    fn add_subtree(
        &self,
        ctx: &Ctx,
        paths: &mut BTreeMap<String, (Option<Side>, Option<Side>)>,
        path: String,
        ino: u64,
        inode: Inode,
        first: bool,
    ) -> Result<()> {
        let is_dir = inode.kind == FileType::Dir;
        let e = paths.entry(path.clone()).or_default();
        let side = Some(Side { ino, inode });
        if first {
            e.0 = side;
        } else {
            e.1 = side;
        }
        if is_dir && path != "/" {
            let mut under = BTreeMap::new();
            self.walk(ctx, ino, &path, &mut under)?;
            for (p, s) in under {
                let e = paths.entry(p).or_default();
                if first {
                    e.0 = Some(s);
                } else {
                    e.1 = Some(s);
                }
            }
        }
        Ok(())
    }

    /// Every path under directory `dir` (whose path is `prefix`) in view `ctx`, excluding
    /// nested workspaces.
    fn walk(
        &self,
        ctx: &Ctx,
        dir: u64,
        prefix: &str,
        out: &mut BTreeMap<String, Side>,
    ) -> Result<()> {
        let mut stack = vec![(dir, prefix.to_string())];
        while let Some((d, p)) = stack.pop() {
            for (name, dentry) in self.entries(ctx, d, false)? {
                let Dentry::Child { ino, kind } = dentry else {
                    continue;
                };
                let path = format!("{p}/{}", String::from_utf8_lossy(&name));
                let Some((inode, _)) = self.inner.meta.inode(&ctx.chain, ino)? else {
                    return Err(FsError::new(
                        ErrorKind::Corrupt,
                        format!("entry {path} points at a missing inode"),
                    ));
                };
                if kind == FileType::Dir {
                    stack.push((ino, path.clone()));
                }
                out.insert(path, Side { ino, inode });
            }
        }
        Ok(())
    }

    /// The entry at relative `path` under `root` in view `ctx`, if any (not following
    /// junctions).
    fn lookup_rel(&self, ctx: &Ctx, root: u64, path: &str) -> Result<Option<Side>> {
        let mut cur = root;
        for name in path.split('/').filter(|c| !c.is_empty()) {
            match self.inner.meta.dentry(&ctx.chain, cur, name.as_bytes())? {
                Some((Dentry::Child { ino, .. }, _)) => cur = ino,
                _ => return Ok(None),
            }
        }
        Ok(self
            .inner
            .meta
            .inode(&ctx.chain, cur)?
            .map(|(inode, _)| Side { ino: cur, inode }))
    }

    /// What differs between two records of one path.
    fn compare(&self, ca: &Ctx, a: &Side, cb: &Ctx, b: &Side) -> Result<Modification> {
        let (x, y) = (&a.inode, &b.inode);
        let mut m = Modification {
            kind: x.kind != y.kind,
            mode: x.perm != y.perm,
            owner: x.uid != y.uid || x.gid != y.gid,
            ..Default::default()
        };
        if m.kind {
            return Ok(m);
        }
        match x.kind {
            FileType::Symlink => m.target = x.data != y.data,
            FileType::File => m.content = !self.same_content(ca, a, cb, b)?,
            FileType::CharDevice | FileType::BlockDevice => m.content = x.rdev != y.rdev,
            _ => {}
        }
        m.xattrs = self.xattr_map(ca, a.ino)? != self.xattr_map(cb, b.ino)?;
        Ok(m)
    }

    /// Whether two file records have the same data: same bytes inline, or the same chunk
    /// manifest records (the same blocks) for every chunk.
    fn same_content(&self, ca: &Ctx, a: &Side, cb: &Ctx, b: &Side) -> Result<bool> {
        let (x, y) = (&a.inode, &b.inode);
        if x.size != y.size {
            return Ok(false);
        }
        match (&x.data, &y.data) {
            (Data::Inline(p), Data::Inline(q)) => return Ok(p == q),
            (Data::Blocks, Data::Blocks) => {}
            _ => return Ok(x.size == 0),
        }
        if x.size == 0 {
            return Ok(true);
        }
        if a.ino != b.ino {
            return Ok(false);
        }
        let meta = &self.inner.meta;
        let chunks = x.size.div_ceil(crate::data::CHUNK_SIZE);
        for c in 0..chunks {
            let p = meta.chunk(&ca.chain, a.ino, c, x.data_epoch)?;
            let q = meta.chunk(&cb.chain, b.ino, c, y.data_epoch)?;
            let same = match (p, q) {
                (None, None) => true,
                (Some((m, f)), Some((n, g))) => {
                    (f.layer, f.version) == (g.layer, g.version) || m == n
                }
                _ => false,
            };
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn xattr_map(&self, ctx: &Ctx, ino: u64) -> Result<BTreeMap<Vec<u8>, Vec<u8>>> {
        let mut out = BTreeMap::new();
        for name in self.xattr_names(ctx, ino)? {
            if let Some((v, _)) = self.inner.meta.xattr(&ctx.chain, ino, &name)? {
                out.insert(name, v);
            }
        }
        Ok(out)
    }
}

fn file_size(i: &Inode) -> u64 {
    if i.kind == FileType::Dir {
        0
    } else {
        i.size
    }
}
