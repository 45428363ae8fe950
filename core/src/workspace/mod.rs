//! Workspace operations: clone, snapshot, rollback, discard, promote, diff, gc and fsck.
//!
//! Owns: the public API that the CLI and the control files call, addressed by *volume
//! paths* (`/base`, `/forks/a1`; `/.nokv/snapshots/NAME/...` names a snapshot's tree), and
//! path resolution. Every operation is one atomic metadata transaction built under the
//! core's writer lock and made durable before it returns; see `docs/design.md`
//! ("Workspace operations") for the algorithms and their costs.
//!
//! Invariants kept here (numbered in `docs/design.md`):
//! - W1. Every workspace but the root is grafted by exactly one visible junction, at the
//!   location its record's `mount` names; discard, rollback and promote keep this by
//!   removing the records of workspaces whose junction disappears.
//! - W2. clone, snapshot and rollback write O(1) records (plus O(1) per nested workspace);
//!   promote writes O(changes of the base since the fork); diff reads O(changes since the
//!   common read point).
//! - W3. A snapshot or a child layer's read point pins what it reads (M2): no write and no
//!   GC removes a record version or block it can see.

mod diff;
mod fsck;
mod gc;
mod ops;
#[cfg(test)]
mod tests;

pub use diff::{Change, Diff, DiffEntry, Modification};
pub use fsck::{FsckReport, Violation};
pub use gc::{GcOptions, GcReport};

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::{Ctx, Fs};
use crate::meta::records::{Dentry, Inode};
use crate::types::{FileId, FileType, Timestamp};

/// The directory under the volume root where snapshots are addressed by name.
pub const SNAPSHOTS_DIR: &str = "/.nokv/snapshots";

/// Longest volume path accepted (bytes).
pub const PATH_MAX: usize = 4096;

/// Bound on parent-pointer walks (a corrupt cycle must not hang a call).
const WALK_LIMIT: usize = 100_000;

/// A workspace, as listed by [`Fs::workspaces`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceInfo {
    /// Workspace id (the high bits of its file ids).
    pub id: u64,
    /// Volume path of its root directory.
    pub path: String,
    /// File id of its root directory.
    pub root: FileId,
    /// The workspace it was cloned from (`None` for the root workspace).
    pub base: Option<u64>,
    /// Volume path of the directory it was cloned from, while that still exists (else of
    /// the base workspace's root, while the base exists).
    pub base_path: Option<String>,
    /// Names of the snapshots taken of directories of this workspace.
    pub snapshots: Vec<String>,
}

/// A snapshot, as listed by [`Fs::snapshots`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Volume-unique name, `BASENAME@LABEL` (e.g. `base@v1`, `base@3`).
    pub name: String,
    /// View id (the high bits of the snapshot tree's file ids).
    pub id: u64,
    /// Volume path of the directory when the snapshot was taken.
    pub path: String,
    /// The workspace the directory belonged to.
    pub workspace: u64,
    /// File id of the snapshot's root directory (read-only).
    pub root: FileId,
    /// When it was taken.
    pub created: Timestamp,
}

/// Splits a volume path into normalized components, rejecting relative paths, `..`, empty
/// or over-long names and NUL bytes with `InvalidArgument`.
pub(crate) fn components(path: &str) -> Result<Vec<&str>> {
    if !path.starts_with('/') {
        return Err(FsError::new(
            ErrorKind::InvalidArgument,
            format!("{path:?} is not a volume path (it must start with /)"),
        ));
    }
    if path.len() > PATH_MAX {
        return Err(FsError::of(ErrorKind::NameTooLong));
    }
    let mut out = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(FsError::new(
                    ErrorKind::InvalidArgument,
                    format!("{path:?}: '..' is not allowed in volume paths"),
                ))
            }
            c => {
                crate::fs::check_name(c.as_bytes())?;
                out.push(c);
            }
        }
    }
    Ok(out)
}

/// The normalized form of a volume path (`/a/b`, `/` for the root).
pub(crate) fn normalize(path: &str) -> Result<String> {
    let c = components(path)?;
    Ok(format!("/{}", c.join("/")))
}

impl Fs {
    /// Resolves a volume path to a file id, following workspace junctions but not symbolic
    /// links. `/.nokv/snapshots/NAME[/...]` resolves inside snapshot `NAME`.
    pub fn resolve(&self, path: &str) -> Result<FileId> {
        let comps = components(path)?;
        let mut cur = FileId::ROOT;
        let mut rest = &comps[..];
        if comps.len() >= 2 && comps[0] == ".nokv" && comps[1] == "snapshots" {
            let name = comps.get(2).ok_or_else(|| {
                FsError::new(
                    ErrorKind::InvalidArgument,
                    "the snapshots directory itself is not a tree",
                )
            })?;
            let (id, snap) = self.inner.meta.snapshot_by_name(name).ok_or_else(|| {
                FsError::new(ErrorKind::NotFound, format!("no snapshot named {name:?}"))
            })?;
            cur = FileId::new(id, snap.root);
            rest = &comps[3..];
        } else if comps.first() == Some(&".nokv") {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                format!("{path:?}: inside /.nokv/ only snapshot trees are volume paths"),
            ));
        }
        for (i, name) in rest.iter().enumerate() {
            let ctx = self.ctx(cur.workspace())?;
            let (dir, _) = self.load(&ctx, cur.ino())?;
            if dir.kind != FileType::Dir {
                return Err(FsError::new(
                    ErrorKind::NotDir,
                    format!("{path:?}: a component before {name:?} is not a directory"),
                ));
            }
            let (d, _) = self
                .visible_entry(&ctx, cur.ino(), name.as_bytes())?
                .ok_or_else(|| FsError::new(ErrorKind::NotFound, format!("{path:?} not found")))?;
            cur = match d {
                Dentry::Child { ino, kind } => {
                    if kind == FileType::Symlink && i + 1 < rest.len() {
                        return Err(FsError::new(
                            ErrorKind::InvalidArgument,
                            format!("{path:?}: symbolic links are not followed in volume paths"),
                        ));
                    }
                    FileId::new(ctx.ws, ino)
                }
                Dentry::Junction { ws, root } => FileId::new(ws, root),
                Dentry::Whiteout => return Err(FsError::of(ErrorKind::NotFound)),
            };
        }
        Ok(cur)
    }

    /// The volume path of `id` (through junctions up to the volume root, or
    /// `/.nokv/snapshots/NAME/...` inside a snapshot).
    pub fn path_of(&self, id: FileId) -> Result<String> {
        let mut parts: Vec<Vec<u8>> = Vec::new();
        let mut cur = id;
        for _ in 0..WALK_LIMIT {
            let ctx = self.ctx(cur.workspace())?;
            if cur.ino() == ctx.root {
                if let Some(snap) = self.inner.meta.snapshot(ctx.ws) {
                    parts.push(snap.name.into_bytes());
                    parts.push(b"snapshots".to_vec());
                    parts.push(b".nokv".to_vec());
                    break;
                }
                let rec = self.inner.meta.workspace(ctx.ws)?;
                match rec.mount {
                    None => break,
                    Some(m) => {
                        parts.push(m.name);
                        cur = FileId::new(m.ws, m.dir);
                        continue;
                    }
                }
            }
            let (inode, _) = self.load(&ctx, cur.ino())?;
            parts.push(inode.name.clone());
            cur = FileId::new(ctx.ws, inode.parent);
        }
        parts.reverse();
        let mut s = String::new();
        for p in &parts {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(p));
        }
        Ok(if s.is_empty() { "/".to_string() } else { s })
    }

    /// Every workspace, root first.
    pub fn workspaces(&self) -> Result<Vec<WorkspaceInfo>> {
        let snaps = self.inner.meta.snapshots();
        self.inner
            .meta
            .workspaces()
            .into_iter()
            .map(|(id, rec)| self.info_of(id, &rec, &snaps))
            .collect()
    }

    /// The listing entry of workspace `ws`.
    pub fn workspace_info(&self, ws: u64) -> Result<WorkspaceInfo> {
        let rec = self.inner.meta.workspace(ws)?;
        self.info_of(ws, &rec, &self.inner.meta.snapshots())
    }

    fn info_of(
        &self,
        id: u64,
        rec: &crate::meta::records::WorkspaceRecord,
        snaps: &[(u64, crate::meta::records::SnapshotRecord)],
    ) -> Result<WorkspaceInfo> {
        let meta = &self.inner.meta;
        let root = FileId::new(id, rec.root);
        let base = rec.base.map(|b| b.ws);
        // The fork's root directory has the same inode as the directory it was cloned from.
        let base_path = base.and_then(|b| {
            let from = FileId::new(b, rec.root);
            let exists = self.ctx(b).is_ok_and(|c| self.load(&c, rec.root).is_ok());
            match exists {
                true => self.path_of(from).ok(),
                false => meta
                    .workspace(b)
                    .ok()
                    .and_then(|r| self.path_of(FileId::new(b, r.root)).ok()),
            }
        });
        Ok(WorkspaceInfo {
            id,
            path: self.path_of(root)?,
            root,
            base,
            base_path,
            snapshots: snaps
                .iter()
                .filter(|(_, s)| s.ws == id)
                .map(|(_, s)| s.name.clone())
                .collect(),
        })
    }

    /// Number of metadata records (all versions) in the head layer of workspace `ws`:
    /// what the workspace added on top of what it shares. Diagnostic; O(that number).
    pub fn workspace_records(&self, ws: u64) -> Result<u64> {
        let head = self.inner.meta.workspace(ws)?.head;
        let mut n = 0;
        for tag in [
            crate::meta::keys::tag::INODE,
            crate::meta::keys::tag::DENTRY,
            crate::meta::keys::tag::CHUNK,
            crate::meta::keys::tag::XATTR,
            crate::meta::keys::tag::CHANGE,
        ] {
            let mut prefix = vec![tag];
            prefix.extend_from_slice(&head.to_be_bytes());
            n += self.inner.meta.scan_all(&prefix)?.len() as u64;
        }
        Ok(n)
    }

    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        self.inner
            .meta
            .snapshots()
            .into_iter()
            .map(|(id, s)| SnapshotInfo {
                root: FileId::new(id, s.root),
                name: s.name,
                id,
                path: s.path,
                workspace: s.ws,
                created: s.created,
            })
            .collect()
    }

    /// Publishes every open write session of view `ws`, so a workspace operation sees
    /// what was written (as a local filesystem snapshot would).
    pub(crate) async fn flush_view(&self, ws: u64) -> Result<()> {
        let ids: Vec<FileId> = self
            .inner
            .sessions
            .iter()
            .map(|e| *e.key())
            .filter(|id| id.workspace() == ws)
            .collect();
        for id in ids {
            self.flush(id).await?;
        }
        Ok(())
    }

    /// Drops the write sessions of view `ws` (its unpublished writes are abandoned: the
    /// workspace was rolled back or discarded).
    pub(crate) fn drop_sessions(&self, ws: u64) {
        self.inner.sessions.retain(|id, _| id.workspace() != ws);
    }

    /// Whether `ino` is `root` or lies under it in view `ctx` (walking parent pointers).
    /// An inode that no longer exists in the view is not under anything.
    pub(crate) fn is_under(&self, ctx: &Ctx, ino: u64, root: u64) -> Result<bool> {
        let mut cur = ino;
        for _ in 0..WALK_LIMIT {
            if cur == root {
                return Ok(true);
            }
            if cur == ctx.root || cur == crate::types::ROOT_INO {
                return Ok(false);
            }
            let Some((inode, _)) = self.inner.meta.inode(&ctx.chain, cur)? else {
                return Ok(false);
            };
            if inode.parent == cur {
                return Ok(false);
            }
            cur = inode.parent;
        }
        Err(FsError::new(
            ErrorKind::Corrupt,
            "directory parent pointers form a cycle",
        ))
    }

    /// The path of `ino` relative to directory `root` in view `ctx` (`/` for `root`
    /// itself), with its inode; `None` when it does not exist there, is not linked, or is
    /// not under `root`. The first hop is checked against the directory entry, because
    /// the parent pointer of a hard-linked file names only its newest link.
    pub(crate) fn rel_path(
        &self,
        ctx: &Ctx,
        ino: u64,
        root: u64,
    ) -> Result<Option<(String, Inode)>> {
        let meta = &self.inner.meta;
        let Some((inode, _)) = meta.inode(&ctx.chain, ino)? else {
            return Ok(None);
        };
        if ino == root {
            return Ok(Some(("/".to_string(), inode)));
        }
        if inode.nlink == 0 {
            return Ok(None);
        }
        match meta.dentry(&ctx.chain, inode.parent, &inode.name)? {
            Some((Dentry::Child { ino: i, .. }, _)) if i == ino => {}
            _ => return Ok(None),
        }
        let mut parts = vec![inode.name.clone()];
        let mut cur = inode.parent;
        for _ in 0..WALK_LIMIT {
            if cur == root {
                parts.reverse();
                let mut s = String::new();
                for p in &parts {
                    s.push('/');
                    s.push_str(&String::from_utf8_lossy(p));
                }
                return Ok(Some((s, inode)));
            }
            if cur == ctx.root || cur == crate::types::ROOT_INO {
                return Ok(None);
            }
            let Some((d, _)) = meta.inode(&ctx.chain, cur)? else {
                return Ok(None);
            };
            if d.nlink == 0 || d.parent == cur {
                return Ok(None);
            }
            parts.push(d.name.clone());
            cur = d.parent;
        }
        Err(FsError::new(
            ErrorKind::Corrupt,
            "directory parent pointers form a cycle",
        ))
    }
}
