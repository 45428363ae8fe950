//! The POSIX operation set: the one API both frontends call.
//!
//! [`Fs`] is a cheap-to-clone handle. Every method takes file ids ([`FileId`]) and returns
//! neutral types and [`FsError`]s. Metadata mutations run under one writer lock: each
//! validates against the current state (including not-yet-durable transactions, see
//! `meta::commit`), builds one transaction and submits it, so every operation is atomic.
//! Operations return once their effect is visible; [`Fs::fsync`], [`Fs::fsync_dir`] and
//! [`Fs::sync_metadata`] additionally wait until it is durable (the group-commit window
//! makes everything durable within milliseconds anyway; see `docs/semantics.md`).
//!
//! Submodules: `namespace` (lookup, create, link, unlink, rename), `attr` (getattr,
//! setattr, access, statfs), `dir` (readdir), `xattr`, `file` (open/read/write/flush/fsync),
//! `range` (allocate, punch hole, seek data/hole, copy range), `privileges` (what a write,
//! truncation or chown takes away: setuid/setgid, capabilities).

mod attr;
mod dir;
mod file;
mod namespace;
mod privileges;
mod range;
mod xattr;

pub use file::OpenFlags;

use std::path::PathBuf;
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::data::{BlockCache, DataPath, DirtyBudget, ObjectLayout, Session};
use crate::error::{ErrorKind, FsError, Result};
use crate::meta::records::Inode;
use crate::meta::{Found, Meta, ReadPoint, HEAD};
use crate::object::ObjectStore;
use crate::store::MetaStore;
use crate::types::{Attr, Caller, FileId, FileType, Timestamp, NAME_MAX};

/// Options for opening an [`Fs`] over already-opened stores.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Volume id: names this volume's objects (`blocks/{volume}/...`).
    pub volume_id: String,
    /// Directory for write-session staging files (created if missing).
    pub staging_dir: PathBuf,
    /// Block cache capacity in bytes.
    pub cache_bytes: usize,
    /// Owner of the root directory of a new volume.
    pub root_owner: (u32, u32),
    /// Directory whose filesystem `statfs` reports capacity for (the data directory).
    pub statfs_path: Option<PathBuf>,
    /// Most concurrent background block uploads.
    pub upload_concurrency: usize,
    /// Memory for unpublished written blocks, across all files; beyond it they go to the
    /// staging directory.
    pub dirty_bytes: usize,
    /// GC grace period for `/.nokv/gc` and background GC: unreferenced objects younger
    /// than this are kept, because an upload in flight is unreferenced until its commit.
    pub gc_grace: std::time::Duration,
}

impl FsOptions {
    /// Defaults with the given volume id and staging directory.
    pub fn new(volume_id: impl Into<String>, staging_dir: impl Into<PathBuf>) -> Self {
        FsOptions {
            volume_id: volume_id.into(),
            staging_dir: staging_dir.into(),
            cache_bytes: 256 << 20,
            root_owner: (0, 0),
            statfs_path: None,
            upload_concurrency: 16,
            dirty_bytes: 256 << 20,
            gc_grace: crate::workspace::GcOptions::default().grace,
        }
    }
}

/// A handle to a mounted volume's filesystem. Clone freely.
#[derive(Clone)]
pub struct Fs {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) meta: Meta,
    pub(crate) data: Arc<DataPath>,
    /// Serializes metadata mutations (validate + build + submit).
    pub(crate) writer: Mutex<()>,
    pub(crate) sessions: DashMap<FileId, Arc<Session>>,
    /// Open handles per file id (for unlinked-but-open files).
    pub(crate) open: DashMap<FileId, u32>,
    /// End offset of the last read per file id, for sequential read-ahead.
    pub(crate) last_read: DashMap<FileId, u64>,
    pub(crate) opts: FsOptions,
    /// Outputs of `/.nokv/` commands (see `control`).
    pub(crate) control: crate::control::Results,
    /// Frontends' cache invalidation callbacks (see `invalidate`).
    pub(crate) invalidators: Mutex<Vec<(u64, crate::invalidate::Invalidator)>>,
}

/// D1 without a wait in the data path: the committer makes every object put so far durable
/// before each metadata commit (commit invariant C5).
struct ObjectsBarrier(Arc<dyn ObjectStore>);

impl crate::meta::ObjectBarrier for ObjectsBarrier {
    fn sync(&self) -> std::result::Result<(), crate::store::StoreError> {
        self.0.sync().map_err(|e| {
            let msg = format!("object store: {e}");
            match e.kind() {
                crate::object::ObjectErrorKind::NoSpace => crate::store::StoreError::NoSpace(msg),
                _ => crate::store::StoreError::Io(msg),
            }
        })
    }

    fn is_clear(&self) -> bool {
        !self.0.has_unsynced()
    }
}

/// Where an operation happens: the view (a workspace, or a read-only snapshot), the layer
/// it writes into and the chain it reads through.
pub(crate) struct Ctx {
    /// View id: the workspace or snapshot id of the file ids involved.
    pub ws: u64,
    pub head: u64,
    pub chain: Vec<ReadPoint>,
    /// Root directory inode of the view.
    pub root: u64,
    /// Snapshots are read-only.
    pub readonly: bool,
    /// Where `..` of the root leads: the directory holding the junction, in its view.
    pub up: Option<FileId>,
}

impl Fs {
    /// Opens the filesystem over a metadata store and an object store, formatting the store
    /// if it is empty.
    pub fn new(
        store: Arc<dyn MetaStore>,
        objects: Arc<dyn ObjectStore>,
        opts: FsOptions,
    ) -> Result<Fs> {
        std::fs::create_dir_all(&opts.staging_dir).map_err(|e| {
            FsError::new(
                ErrorKind::Io,
                format!("staging dir {}: {e}", opts.staging_dir.display()),
            )
        })?;
        // Staging files of a previous run are unpublished writes nobody acknowledged.
        if let Ok(rd) = std::fs::read_dir(&opts.staging_dir) {
            for e in rd.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
        }
        let barrier: crate::meta::Barrier = Box::new(ObjectsBarrier(Arc::clone(&objects)));
        let meta = Meta::open(
            store,
            Timestamp::now(),
            opts.root_owner,
            barrier,
            ObjectLayout::Flat.number(),
        )?;
        let recorded = meta.object_layout()?;
        let layout = ObjectLayout::from_number(recorded).ok_or_else(|| {
            FsError::new(
                ErrorKind::Corrupt,
                format!("unknown object layout {recorded} (written by a newer nokv?)"),
            )
        })?;
        let data = Arc::new(DataPath {
            objects,
            volume: opts.volume_id.clone(),
            layout,
            cache: BlockCache::new(opts.cache_bytes),
            staging: opts.staging_dir.clone(),
            dirty: DirtyBudget::new(opts.dirty_bytes, crate::data::BLOCK_SIZE),
            uploads: Arc::new(tokio::sync::Semaphore::new(opts.upload_concurrency.max(1))),
        });
        let fs = Fs {
            inner: Arc::new(Inner {
                meta,
                data,
                writer: Mutex::new(()),
                sessions: DashMap::new(),
                open: DashMap::new(),
                last_read: DashMap::new(),
                opts,
                control: crate::control::Results::new(),
                invalidators: Mutex::new(Vec::new()),
            }),
        };
        fs.reap_orphans()?;
        Ok(fs)
    }

    /// A handle that does not keep the filesystem open (for background tasks).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    /// The filesystem behind `weak`, if it is still open.
    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Fs> {
        weak.upgrade().map(|inner| Fs { inner })
    }

    /// The root directory's file id.
    pub fn root(&self) -> FileId {
        FileId::ROOT
    }

    /// Waits until every metadata change made so far is durable.
    pub async fn sync_metadata(&self) -> Result<()> {
        let seq = self.inner.meta.commit.last_submitted();
        Ok(self.inner.meta.commit.wait_durable(seq).await?)
    }

    /// Number of metadata store commits so far (one WAL fsync each on a durable store);
    /// compared with the number of operations it shows how well group commit batches.
    pub fn metadata_commits(&self) -> u64 {
        self.inner.meta.commit.store_commits()
    }

    /// Publishes every open write session and makes everything durable (clean shutdown).
    pub async fn shutdown(&self) -> Result<()> {
        let ids: Vec<FileId> = self.inner.sessions.iter().map(|e| *e.key()).collect();
        let mut first_err = None;
        for id in ids {
            if let Err(e) = self.flush(id).await {
                first_err.get_or_insert(e);
            }
        }
        self.sync_metadata().await?;
        self.inner.meta.commit.store().checkpoint()?;
        first_err.map_or(Ok(()), Err)
    }

    /// The context of view `ws` (a workspace or a snapshot).
    pub(crate) fn ctx(&self, ws: u64) -> Result<Ctx> {
        let meta = &self.inner.meta;
        if ws == crate::control::CONTROL_WS {
            return Err(crate::control::not_permitted("change"));
        }
        if let Some(snap) = meta.snapshot(ws) {
            return Ok(Ctx {
                ws,
                head: snap.at.layer,
                chain: meta.chain(snap.at.layer, snap.at.version)?,
                root: snap.root,
                readonly: true,
                up: Some(crate::control::Node::Snapshots.id()),
            });
        }
        let rec = meta.workspace(ws)?;
        let chain = meta.chain(rec.head, HEAD)?;
        Ok(Ctx {
            ws,
            head: rec.head,
            chain,
            root: rec.root,
            readonly: false,
            up: rec.mount.map(|m| FileId::new(m.ws, m.dir)),
        })
    }

    /// The context of view `ws` for a change: snapshots answer `ReadOnly` (EROFS).
    pub(crate) fn ctx_mut(&self, ws: u64) -> Result<Ctx> {
        let ctx = self.ctx(ws)?;
        if ctx.readonly {
            return Err(FsError::new(ErrorKind::ReadOnly, "snapshots are read-only"));
        }
        Ok(ctx)
    }

    /// What a junction entry of view `ctx` leads to: the root of workspace `ws`, or `None`
    /// when it is hidden (the workspace was discarded, or `ctx` is a snapshot: snapshots do
    /// not show nested workspaces, like btrfs subvolume snapshots).
    pub(crate) fn junction_target(&self, ctx: &Ctx, ws: u64, root: u64) -> Option<FileId> {
        if ctx.readonly {
            return None;
        }
        match self.inner.meta.workspace(ws) {
            Ok(rec) if rec.root == root => Some(FileId::new(ws, root)),
            _ => None,
        }
    }

    /// The `..` of directory `ino` (whose record is `inode`) in view `ctx`: the root of a
    /// workspace leads to the directory holding its junction; the volume root and snapshot
    /// roots lead to themselves.
    pub(crate) fn dotdot(&self, ctx: &Ctx, ino: u64, inode: &Inode) -> FileId {
        if ino == ctx.root {
            ctx.up.unwrap_or(FileId::new(ctx.ws, ino))
        } else {
            FileId::new(ctx.ws, inode.parent)
        }
    }

    /// Loads inode `id` or fails with `Stale`/`NotFound`.
    pub(crate) fn load(&self, ctx: &Ctx, ino: u64) -> Result<(Inode, Found)> {
        self.inner
            .meta
            .inode(&ctx.chain, ino)?
            .ok_or_else(|| FsError::new(ErrorKind::Stale, format!("inode {ino} no longer exists")))
    }

    pub(crate) fn attr_of(&self, id: FileId, inode: &Inode) -> Attr {
        let (mut size, mut mtime, mut ctime) = (inode.size, inode.mtime, inode.ctime);
        if let Some(s) = self.inner.sessions.get(&id) {
            if let Some((psize, pmtime)) = *s.pending.lock() {
                size = psize;
                mtime = pmtime;
                ctime = pmtime.max(ctime);
            }
        }
        Attr {
            id,
            kind: inode.kind,
            perm: inode.perm,
            nlink: inode.nlink,
            uid: inode.uid,
            gid: inode.gid,
            size,
            blocks: size.div_ceil(512),
            atime: inode.atime,
            mtime,
            ctime,
            btime: inode.btime,
            rdev: inode.rdev,
            generation: inode.generation,
        }
    }
}

/// Validates a name for creation or lookup.
pub(crate) fn check_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        return Err(FsError::new(
            ErrorKind::InvalidArgument,
            format!("invalid name {:?}", String::from_utf8_lossy(name)),
        ));
    }
    if name.len() > NAME_MAX {
        return Err(FsError::of(ErrorKind::NameTooLong));
    }
    Ok(())
}

/// Access bits for [`check_access`].
pub(crate) const R_OK: u32 = 4;
pub(crate) const W_OK: u32 = 2;
pub(crate) const X_OK: u32 = 1;

/// POSIX permission check of `mask` (R/W/X bits) for `caller` on `inode`.
pub(crate) fn check_access(inode: &Inode, caller: &Caller, mask: u32) -> Result<()> {
    if caller.uid == 0 {
        // Root may do anything except execute a file with no execute bit at all.
        if mask & X_OK != 0 && inode.kind != FileType::Dir && inode.perm & 0o111 == 0 {
            return Err(FsError::of(ErrorKind::PermissionDenied));
        }
        return Ok(());
    }
    let bits = if caller.uid == inode.uid {
        (inode.perm >> 6) & 7
    } else if caller.gid == inode.gid {
        (inode.perm >> 3) & 7
    } else {
        inode.perm & 7
    };
    if bits & mask == mask {
        Ok(())
    } else {
        Err(FsError::of(ErrorKind::PermissionDenied))
    }
}

/// Whether `caller` may remove or rename entry `child` of sticky directory `dir`.
pub(crate) fn check_sticky(dir: &Inode, child: &Inode, caller: &Caller) -> Result<()> {
    if dir.perm & 0o1000 != 0 && caller.uid != 0 && caller.uid != dir.uid && caller.uid != child.uid
    {
        return Err(FsError::of(ErrorKind::NotPermitted));
    }
    Ok(())
}

impl Fs {
    /// Low-level fork: a new workspace whose head is a new layer reading through `dir`'s
    /// workspace as of now, rooted at `dir`. O(1): one layer record and one workspace
    /// record, nothing copied. No junction is created, so the fork is reachable only by the
    /// returned id (`clone` adds the junction). Used by tests and benchmarks of lineage reads.
    #[doc(hidden)]
    pub fn layer_fork(&self, dir: FileId) -> Result<FileId> {
        let meta = &self.inner.meta;
        let _w = self.inner.writer.lock();
        let ctx = self.ctx_mut(dir.workspace())?;
        let (inode, _) = self.load(&ctx, dir.ino())?;
        if inode.kind != FileType::Dir {
            return Err(FsError::of(ErrorKind::NotDir));
        }
        let at = ReadPoint {
            layer: ctx.head,
            version: meta.current_version(),
        };
        let mut txn = meta.txn(ctx.head);
        let layer = txn.create_layer(Some(at))?;
        let ws = meta.alloc_workspace(&mut txn)?;
        let created = txn.version;
        meta.put_workspace(
            &mut txn,
            ws,
            crate::meta::records::WorkspaceRecord {
                head: layer,
                root: dir.ino(),
                created,
                mount: None,
                base: Some(crate::meta::records::Base { ws: ctx.ws, at }),
            },
        );
        txn.commit()?;
        Ok(FileId::new(ws, dir.ino()))
    }
}

#[cfg(test)]
mod tests;
