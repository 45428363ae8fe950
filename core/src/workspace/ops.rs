//! clone, snapshot, snapshot deletion, rollback, discard and promote.
//!
//! Each builds one transaction under the writer lock (so it validates against the current
//! state) and waits until it is durable. The O(1) ones write a layer record, a workspace or
//! snapshot record and at most one junction entry with its directory (plus the same per
//! nested workspace); promote additionally replays the base's own changes since the fork.

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::{Ctx, Fs};
use crate::invalidate::Invalidation;
use crate::meta::records::{Base, Dentry, Inode, Mount, SnapshotRecord, WorkspaceRecord};
use crate::meta::{keys, ReadPoint, Txn, HEAD};
use crate::types::{FileId, FileType, Timestamp};

use super::{components, normalize, SnapshotInfo, WorkspaceInfo};

/// Longest snapshot label accepted (bytes).
const LABEL_MAX: usize = 128;

impl Fs {
    /// Clones directory `src` (a workspace directory or a snapshot tree) to the new path
    /// `dst`: a writable workspace that sees all of `src` as of now and shares every record
    /// and block with it; writes on either side are invisible to the other. Workspaces
    /// nested inside `src` are cloned too. `dst` must not exist, its parent must, and it
    /// must not lie inside `src`. O(1) metadata (per workspace cloned).
    pub async fn clone_tree(&self, src: &str, dst: &str) -> Result<WorkspaceInfo> {
        let src_id = self.resolve(src)?;
        let (parent_path, name) = split_last(dst)?;
        let parent = self.resolve(&parent_path)?;
        self.flush_view(src_id.workspace()).await?;
        let ws = {
            let _w = self.inner.writer.lock();
            self.clone_locked(src_id, parent, name.as_bytes())?
        };
        self.invalidate(&[Invalidation::Entry {
            parent,
            name: name.into_bytes(),
        }]);
        self.sync_metadata().await?;
        self.workspace_info(ws)
    }

    fn clone_locked(&self, src: FileId, parent: FileId, name: &[u8]) -> Result<u64> {
        let meta = &self.inner.meta;
        let sctx = self.ctx(src.workspace())?;
        let (sdir, _) = self.load(&sctx, src.ino())?;
        if sdir.kind != FileType::Dir {
            return Err(FsError::new(
                ErrorKind::NotDir,
                "clone source is not a directory",
            ));
        }
        let pctx = self.ctx_mut(parent.workspace())?;
        let (mut pdir, pfound) = self.load(&pctx, parent.ino())?;
        if pdir.kind != FileType::Dir || pdir.nlink == 0 {
            return Err(FsError::new(
                ErrorKind::NotDir,
                "clone destination's parent is not a directory",
            ));
        }
        if pctx.ws == sctx.ws && self.is_under(&pctx, parent.ino(), src.ino())? {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                "clone destination lies inside the source",
            ));
        }
        let prev = self.vacant_entry(&pctx, parent.ino(), name)?;
        let mut txn = meta.txn(pctx.head);
        let (at, base_ws, nested) = match meta.snapshot(sctx.ws) {
            Some(s) => (s.at, s.ws, false),
            None => (
                ReadPoint {
                    layer: sctx.head,
                    version: txn.version - 1,
                },
                sctx.ws,
                true,
            ),
        };
        let mount = Mount {
            ws: pctx.ws,
            dir: parent.ino(),
            name: name.to_vec(),
        };
        let ws = self.fork_into(
            &mut txn,
            at,
            base_ws,
            src.ino(),
            mount,
            nested.then_some(&sctx),
        )?;
        txn.set_layer(pctx.head);
        txn.put_dentry(
            parent.ino(),
            name,
            Dentry::Junction {
                ws,
                root: src.ino(),
            },
            prev.as_ref(),
        );
        let now = Timestamp::now();
        pdir.mtime = now;
        pdir.ctime = now;
        pdir.nlink = pdir
            .nlink
            .checked_add(1)
            .ok_or_else(|| FsError::of(ErrorKind::TooManyLinks))?;
        txn.put_inode(parent.ino(), &pdir, Some(&pfound));
        txn.commit()?;
        Ok(ws)
    }

    /// Adds to `txn` a workspace reading through `at`, rooted at `root`, mounted at
    /// `mount`; with `nested_src`, also clones the workspaces mounted under `root` in that
    /// view and grafts them into the new layer.
    fn fork_into(
        &self,
        txn: &mut Txn<'_>,
        at: ReadPoint,
        base_ws: u64,
        root: u64,
        mount: Mount,
        nested_src: Option<&Ctx>,
    ) -> Result<u64> {
        let meta = &self.inner.meta;
        let layer = txn.create_layer(Some(at))?;
        let ws = meta.alloc_workspace(txn)?;
        let created = txn.version;
        meta.put_workspace(
            txn,
            ws,
            WorkspaceRecord {
                head: layer,
                root,
                created,
                mount: Some(mount),
                base: Some(Base { ws: base_ws, at }),
            },
        );
        let Some(sctx) = nested_src else {
            return Ok(ws);
        };
        for (nid, nrec) in meta.workspaces() {
            let Some(m) = nrec.mount.clone() else {
                continue;
            };
            if m.ws != sctx.ws || nid == ws || !self.is_under(sctx, m.dir, root)? {
                continue;
            }
            let nctx = self.ctx(nid)?;
            let nat = ReadPoint {
                layer: nrec.head,
                version: txn.version - 1,
            };
            let nmount = Mount {
                ws,
                dir: m.dir,
                name: m.name.clone(),
            };
            let nws = self.fork_into(txn, nat, nid, nrec.root, nmount, Some(&nctx))?;
            // Graft the nested clone into the new layer, with a copy-up of its directory (M1).
            txn.set_layer(layer);
            let chain = meta.chain(layer, HEAD)?;
            let (dir, dfound) = meta.inode(&chain, m.dir)?.ok_or_else(|| {
                FsError::new(
                    ErrorKind::Corrupt,
                    "nested workspace's directory is missing",
                )
            })?;
            let prev = meta.dentry_record(&chain, m.dir, &m.name)?;
            txn.put_dentry(
                m.dir,
                &m.name,
                Dentry::Junction {
                    ws: nws,
                    root: nrec.root,
                },
                prev.as_ref(),
            );
            txn.put_inode(m.dir, &dir, Some(&dfound));
        }
        Ok(ws)
    }

    /// Takes a read-only snapshot of directory `path`, named `BASENAME@LABEL` where
    /// BASENAME is the last component of `path` (`root` for `/`) and LABEL is `label` or
    /// the next free number. O(1): one record.
    pub async fn snapshot(&self, path: &str, label: Option<&str>) -> Result<SnapshotInfo> {
        let id = self.resolve(path)?;
        let path = normalize(path)?;
        let base = components(&path)?
            .last()
            .copied()
            .unwrap_or("root")
            .to_string();
        if let Some(l) = label {
            check_label(l)?;
        }
        self.flush_view(id.workspace()).await?;
        let sid = {
            let meta = &self.inner.meta;
            let _w = self.inner.writer.lock();
            let ctx = self.ctx(id.workspace())?;
            let (dir, _) = self.load(&ctx, id.ino())?;
            if dir.kind != FileType::Dir {
                return Err(FsError::new(
                    ErrorKind::NotDir,
                    "only directories are snapshotted",
                ));
            }
            let name = match label {
                Some(l) => format!("{base}@{l}"),
                None => {
                    let next = meta
                        .snapshots()
                        .iter()
                        .filter_map(|(_, s)| {
                            s.name
                                .strip_prefix(&format!("{base}@"))?
                                .parse::<u64>()
                                .ok()
                        })
                        .max()
                        .unwrap_or(0)
                        + 1;
                    format!("{base}@{next}")
                }
            };
            if meta.snapshot_by_name(&name).is_some() {
                return Err(FsError::new(
                    ErrorKind::Exists,
                    format!("a snapshot named {name:?} exists"),
                ));
            }
            let mut txn = meta.txn(ctx.head);
            let (at, ws) = match meta.snapshot(ctx.ws) {
                Some(s) => (s.at, s.ws),
                None => (
                    ReadPoint {
                        layer: ctx.head,
                        version: txn.version - 1,
                    },
                    ctx.ws,
                ),
            };
            let sid = meta.alloc_workspace(&mut txn)?;
            meta.put_snapshot(
                &mut txn,
                sid,
                SnapshotRecord {
                    name,
                    ws,
                    at,
                    root: id.ino(),
                    path,
                    created: Timestamp::now(),
                },
            )?;
            txn.commit()?;
            sid
        };
        if let Some(s) = self.inner.meta.snapshot(sid) {
            self.invalidate(&[Invalidation::Entry {
                parent: crate::control::Node::Snapshots.id(),
                name: s.name.into_bytes(),
            }]);
        }
        self.sync_metadata().await?;
        self.snapshots()
            .into_iter()
            .find(|s| s.id == sid)
            .ok_or_else(|| FsError::new(ErrorKind::Stale, "snapshot vanished"))
    }

    /// Deletes (unpins) snapshot `name`; what only it could read becomes garbage for
    /// [`Fs::gc`]. File ids inside it become stale.
    pub async fn delete_snapshot(&self, name: &str) -> Result<()> {
        let id = {
            let meta = &self.inner.meta;
            let _w = self.inner.writer.lock();
            let (id, snap) = meta.snapshot_by_name(name).ok_or_else(|| {
                FsError::new(ErrorKind::NotFound, format!("no snapshot named {name:?}"))
            })?;
            let mut txn = meta.txn(snap.at.layer);
            meta.delete_snapshot(&mut txn, id);
            txn.commit()?;
            meta.recompute_pins();
            id
        };
        // Outside the writer lock: a frontend's invalidation may wait for its own calls.
        self.invalidate(&[
            Invalidation::Entry {
                parent: crate::control::Node::Snapshots.id(),
                name: name.as_bytes().to_vec(),
            },
            Invalidation::View(id),
        ]);
        self.sync_metadata().await
    }

    /// Rolls workspace `path` back to snapshot `snapshot`: its content becomes the
    /// snapshot's, with the same file ids for the files the snapshot has. Allowed for
    /// snapshots of the workspace's root directory taken in the workspace itself or in a
    /// workspace it was (transitively) cloned from. Unflushed writes in the workspace are
    /// abandoned; workspaces nested in it whose junction the snapshot does not have are
    /// discarded. O(1).
    pub async fn rollback(&self, path: &str, snapshot: &str) -> Result<()> {
        let id = self.resolve(path)?;
        let ws = {
            let meta = &self.inner.meta;
            let _w = self.inner.writer.lock();
            let (ws, mut rec) = self.workspace_root(id, path)?;
            let (_, snap) = meta.snapshot_by_name(snapshot).ok_or_else(|| {
                FsError::new(
                    ErrorKind::NotFound,
                    format!("no snapshot named {snapshot:?}"),
                )
            })?;
            if snap.root != rec.root {
                return Err(FsError::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "snapshot {snapshot:?} is of {}, not of the directory workspace {path} was created from",
                        snap.path
                    ),
                ));
            }
            if !self.in_lineage(ws, snap.ws) {
                return Err(FsError::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "snapshot {snapshot:?} belongs to a workspace {path} was not cloned from"
                    ),
                ));
            }
            self.drop_sessions(ws);
            let mut txn = meta.txn(rec.head);
            let layer = txn.create_layer(Some(snap.at))?;
            rec.head = layer;
            meta.put_workspace(&mut txn, ws, rec);
            // Nested workspaces keep their content, but only where the snapshot has their
            // junction (W1).
            let chain = meta.chain(layer, HEAD)?;
            for (nid, nrec) in meta.workspaces() {
                let Some(m) = &nrec.mount else { continue };
                if m.ws != ws {
                    continue;
                }
                let visible = matches!(
                    meta.dentry(&chain, m.dir, &m.name)?,
                    Some((Dentry::Junction { ws: j, .. }, _)) if j == nid
                );
                if !visible {
                    self.drop_workspace(&mut txn, nid);
                }
            }
            txn.commit()?;
            ws
        };
        self.invalidate(&[Invalidation::View(ws)]);
        self.sync_metadata().await
    }

    /// Discards workspace `path` (not the root workspace): removes its junction and its
    /// record, and those of workspaces nested in it. Its layers and blocks become garbage
    /// unless a snapshot still pins them. O(1) (per nested workspace).
    pub async fn discard(&self, path: &str) -> Result<()> {
        let id = self.resolve(path)?;
        let (ws, m) = {
            let meta = &self.inner.meta;
            let _w = self.inner.writer.lock();
            let (ws, rec) = self.workspace_root(id, path)?;
            let m = rec.mount.ok_or_else(|| {
                FsError::new(
                    ErrorKind::InvalidArgument,
                    "the root workspace cannot be discarded",
                )
            })?;
            let mut txn = meta.txn(self.ctx_mut(m.ws)?.head);
            self.discard_in(&mut txn, ws)?;
            txn.commit()?;
            (ws, m)
        };
        self.invalidate(&[
            Invalidation::Entry {
                parent: FileId::new(m.ws, m.dir),
                name: m.name,
            },
            Invalidation::View(ws),
        ]);
        self.sync_metadata().await
    }

    /// Adds the discard of workspace `ws` to `txn`: its junction is removed from its
    /// parent directory, then its records (recursively).
    pub(crate) fn discard_in(&self, txn: &mut Txn<'_>, ws: u64) -> Result<()> {
        let rec = self.inner.meta.workspace(ws)?;
        let m = rec.mount.ok_or_else(|| {
            FsError::new(
                ErrorKind::InvalidArgument,
                "the root workspace cannot be discarded",
            )
        })?;
        self.unmount_in(txn, ws, &m)?;
        self.drop_workspace(txn, ws);
        Ok(())
    }

    /// Removes the junction of `ws` at `m` (in `m.ws`'s head layer) inside `txn`.
    fn unmount_in(&self, txn: &mut Txn<'_>, ws: u64, m: &Mount) -> Result<()> {
        let meta = &self.inner.meta;
        let pctx = self.ctx_mut(m.ws)?;
        txn.set_layer(pctx.head);
        let (d, found) = meta
            .dentry(&pctx.chain, m.dir, &m.name)?
            .ok_or_else(|| FsError::new(ErrorKind::Corrupt, "workspace junction is missing"))?;
        if !matches!(d, Dentry::Junction { ws: j, .. } if j == ws) {
            return Err(FsError::new(
                ErrorKind::Corrupt,
                "workspace junction points elsewhere",
            ));
        }
        txn.delete_dentry(m.dir, &m.name, &found);
        let (mut dir, dfound) = self.load(&pctx, m.dir)?;
        let now = Timestamp::now();
        dir.mtime = now;
        dir.ctime = now;
        dir.nlink = dir.nlink.saturating_sub(1).max(2);
        txn.put_inode(m.dir, &dir, Some(&dfound));
        Ok(())
    }

    /// Deletes the record of `ws` and of the workspaces mounted in it (recursively), and
    /// drops their write sessions and orphan entries.
    fn drop_workspace(&self, txn: &mut Txn<'_>, ws: u64) {
        let meta = &self.inner.meta;
        for (nid, nrec) in meta.workspaces() {
            if nrec.mount.as_ref().is_some_and(|m| m.ws == ws) && nid != ws {
                self.drop_workspace(txn, nid);
            }
        }
        if let Ok(orphans) = meta.scan_all(&keys::orphan_ws_prefix(ws)) {
            for (k, _) in orphans {
                txn.delete_raw(k);
            }
        }
        meta.delete_workspace(txn, ws);
        self.drop_sessions(ws);
    }

    /// Promotes fork `path`: its base workspace's content becomes the fork's (a pointer
    /// swap: the base gets a new head layer reading through the fork's), and the fork is
    /// removed. Changes the base made since the fork outside the forked directory are
    /// kept (replayed onto the new head: O(those changes)); a change inside it is a
    /// conflict and fails with `Busy`, changing nothing. Fails with `InvalidArgument` when
    /// the base was rolled back or promoted since the fork.
    pub async fn promote(&self, path: &str) -> Result<()> {
        let id = self.resolve(path)?;
        let frec0 = self.workspace_root(id, path)?.1;
        let base = frec0.base.ok_or_else(|| {
            FsError::new(ErrorKind::InvalidArgument, "the root workspace has no base")
        })?;
        self.flush_view(id.workspace()).await?;
        self.flush_view(base.ws).await?;
        {
            let _w = self.inner.writer.lock();
            self.promote_locked(id, path)?;
        }
        let mut changed = vec![
            Invalidation::View(base.ws),
            Invalidation::View(id.workspace()),
        ];
        if let Some(m) = frec0.mount {
            changed.push(Invalidation::Entry {
                parent: FileId::new(m.ws, m.dir),
                name: m.name,
            });
        }
        self.invalidate(&changed);
        self.sync_metadata().await
    }

    fn promote_locked(&self, id: FileId, path: &str) -> Result<()> {
        let meta = &self.inner.meta;
        let (f, frec) = self.workspace_root(id, path)?;
        let base = frec.base.ok_or_else(|| {
            FsError::new(ErrorKind::InvalidArgument, "the root workspace has no base")
        })?;
        let mut brec = meta.workspace(base.ws).map_err(|_| {
            FsError::new(
                ErrorKind::InvalidArgument,
                "the fork's base workspace no longer exists",
            )
        })?;
        // Where the fork's lineage reads the base's head layer: everything outside the
        // forked directory is, in the fork, the base as of that version (a rollback of the
        // fork to a later snapshot of the base moves it).
        let fchain = meta.chain(frec.head, HEAD)?;
        let v = fchain
            .iter()
            .find(|rp| rp.layer == brec.head)
            .map(|rp| rp.version)
            .ok_or_else(|| {
                FsError::new(
                    ErrorKind::InvalidArgument,
                    "the base was rolled back or promoted since the fork; promote needs the base's lineage unchanged",
                )
            })?;
        let b = base.ws;
        let bctx = self.ctx(b)?;
        let then = Ctx {
            chain: meta.chain(brec.head, v)?,
            ..self.ctx(b)?
        };
        let changed = meta.changes(brec.head, v, HEAD)?;
        for &ino in &changed {
            if self.is_under(&bctx, ino, frec.root)? || self.is_under(&then, ino, frec.root)? {
                let at = self
                    .rel_path(&bctx, ino, frec.root)?
                    .or(self.rel_path(&then, ino, frec.root)?)
                    .map_or_else(String::new, |(p, _)| p);
                return Err(FsError::new(
                    ErrorKind::Busy,
                    format!("the base changed {at} inside the forked directory since the fork"),
                ));
            }
        }
        let mut txn = meta.txn(brec.head);
        let at = ReadPoint {
            layer: frec.head,
            version: txn.version - 1,
        };
        let layer = txn.create_layer(Some(at))?;
        txn.set_layer(layer);
        let own = frec.mount.as_ref().filter(|m| m.ws == b);
        let own_junction = own.map(|m| keys::dentry_prefix(brec.head, m.dir, &m.name));
        let own_dir = own.map(|m| m.dir);
        let dir_inode_prefix = own_dir.map(|d| keys::inode_prefix(brec.head, d));
        let replayed_junction = std::cell::Cell::new(false);
        let replayed_dir = std::cell::Cell::new(false);
        for &ino in &changed {
            meta.copy_newer(&mut txn, brec.head, layer, ino, v, |prefix, value| {
                if own_junction.as_deref() == Some(prefix) {
                    replayed_junction.set(true);
                    return None;
                }
                if dir_inode_prefix.as_deref() == Some(prefix) {
                    // The fork's junction goes away: its directory loses a link.
                    replayed_dir.set(true);
                    if let Ok(Some(mut d)) = Inode::decode(value) {
                        d.nlink = d.nlink.saturating_sub(1).max(2);
                        return Some(d.encode());
                    }
                }
                Some(value.to_vec())
            })?;
        }
        if let Some(m) = own {
            // The fork's junction may also be part of the fork's own view of the base (when
            // the fork was rolled back to a snapshot taken after it was cloned): hide it.
            txn.set_layer(layer);
            if !replayed_junction.get() {
                if let Some(f0) = meta.dentry_record(&fchain, m.dir, &m.name)? {
                    txn.delete_dentry(m.dir, &m.name, &f0);
                }
            }
            if !replayed_dir.get() {
                let (mut d, _) = meta.inode(&fchain, m.dir)?.ok_or_else(|| {
                    FsError::new(ErrorKind::Corrupt, "the fork's mount directory is missing")
                })?;
                d.nlink = d.nlink.saturating_sub(1).max(2);
                txn.put_inode(m.dir, &d, None);
            }
        }
        if let Some(m) = frec.mount.as_ref().filter(|m| m.ws != b) {
            self.unmount_in(&mut txn, f, m)?;
        }
        // Nested workspaces: the fork's move to the base; the base's own ones inside the
        // forked directory stay only where the fork still has their junction (W1).
        let fctx = self.ctx(f)?;
        for (nid, mut nrec) in meta.workspaces() {
            let Some(m) = nrec.mount.clone() else {
                continue;
            };
            if m.ws == f {
                nrec.mount = Some(Mount { ws: b, ..m });
                meta.put_workspace(&mut txn, nid, nrec);
            } else if m.ws == b && nid != f && self.is_under(&fctx, m.dir, frec.root)? {
                let visible = matches!(
                    meta.dentry(&fchain, m.dir, &m.name)?,
                    Some((Dentry::Junction { ws: j, .. }, _)) if j == nid
                );
                if !visible {
                    self.drop_workspace(&mut txn, nid);
                }
            }
        }
        meta.delete_workspace(&mut txn, f);
        self.drop_sessions(f);
        brec.head = layer;
        meta.put_workspace(&mut txn, b, brec);
        txn.commit()?;
        Ok(())
    }

    /// `(workspace id, record)` of the workspace whose root `id` is; `InvalidArgument`
    /// for any other directory, `ReadOnly` inside a snapshot.
    fn workspace_root(&self, id: FileId, path: &str) -> Result<(u64, WorkspaceRecord)> {
        let ws = id.workspace();
        if self.inner.meta.snapshot(ws).is_some() {
            return Err(FsError::new(ErrorKind::ReadOnly, "snapshots are read-only"));
        }
        let rec = self.inner.meta.workspace(ws)?;
        if rec.root != id.ino() {
            return Err(FsError::new(
                ErrorKind::InvalidArgument,
                format!("{path} is not a workspace (clone a directory to make one)"),
            ));
        }
        Ok((ws, rec))
    }

    /// Whether `ancestor` is `ws` or a workspace `ws` was (transitively) cloned from.
    fn in_lineage(&self, ws: u64, ancestor: u64) -> bool {
        let mut cur = ws;
        for _ in 0..crate::types::MAX_WORKSPACE {
            if cur == ancestor {
                return true;
            }
            match self.inner.meta.workspace(cur).ok().and_then(|r| r.base) {
                Some(b) => cur = b.ws,
                None => return false,
            }
        }
        false
    }
}

/// Splits a volume path into its normalized parent path and last name.
fn split_last(path: &str) -> Result<(String, String)> {
    let mut c = components(path)?;
    let name = c.pop().ok_or_else(|| {
        FsError::new(ErrorKind::Exists, "the volume root cannot be a destination")
    })?;
    Ok((format!("/{}", c.join("/")), name.to_string()))
}

/// Validates a snapshot label: printable, no `/` or whitespace, not starting with `.`.
fn check_label(l: &str) -> Result<()> {
    let bad = l.is_empty()
        || l.len() > LABEL_MAX
        || l.starts_with('.')
        || l.chars()
            .any(|c| c == '/' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(FsError::new(
            ErrorKind::InvalidArgument,
            format!(
                "invalid snapshot label {l:?}: 1-{LABEL_MAX} bytes, no '/', whitespace or control characters, not starting with '.'"
            ),
        ));
    }
    Ok(())
}
