//! The control namespace as files: attributes, lookup, listing, open, read and write of
//! [`Node`]s. The `Fs` entry points route every control file id here.

use bytes::Bytes;

use super::command::{parse, Op};
use super::results::valid_token;
use super::{Node, CONTROL_DIR};
use crate::error::{ErrorKind, FsError, Result};
use crate::fs::{Fs, OpenFlags};
use crate::types::{Attr, DirEntry, FileId, FileType, SetAttr, Timestamp};

/// Cookies of a control listing: entry `i` (after `.` and `..`) has cookie `FIRST + i`.
const FIRST: u64 = 3;

/// The fixed names of `/.nokv` besides the session files.
const TOP: [(&str, Node); 3] = [
    ("snapshots", Node::Snapshots),
    ("sessions", Node::Sessions),
    ("workspaces", Node::Workspaces),
];

pub(crate) fn not_permitted(what: &str) -> FsError {
    FsError::new(
        ErrorKind::NotPermitted,
        format!("{what}: /.nokv/ changes only through its control files"),
    )
}

fn gone() -> FsError {
    FsError::new(ErrorKind::Stale, "control session no longer exists")
}

impl Fs {
    /// The node of control file id `id`, or `Stale` for an id of a forgotten session.
    fn node(&self, id: FileId) -> Result<Node> {
        let node = Node::of(id).ok_or_else(gone)?;
        if let Some(slot) = node.slot() {
            if self.inner.control.get(slot).is_none() {
                return Err(gone());
            }
        }
        Ok(node)
    }

    /// The bytes a read of `node` returns (outside a scope).
    fn content(&self, node: Node) -> Result<Bytes> {
        let results = &self.inner.control;
        let session = |slot| results.get(slot).ok_or_else(gone);
        Ok(match node {
            Node::OpFile(slot, op) => session(slot)?.output(op).clone(),
            Node::Result(slot) => session(slot)?.last,
            Node::LastError(slot) => session(slot)?.last_error,
            Node::Workspaces => Bytes::from(self.workspaces_text()?),
            _ => return Err(FsError::of(ErrorKind::IsDir)),
        })
    }

    /// Attributes of a control node.
    pub(crate) fn control_getattr(&self, id: FileId) -> Result<Attr> {
        let node = self.node(id)?;
        let root = self.root_owner();
        let results = &self.inner.control;
        let (kind, perm, size, mtime, generation) = match node {
            n if n.is_dir() => {
                // Listings that change without a write (snapshots, sessions) carry the
                // current time, so clients that cache directories by mtime reread them.
                let t = match n {
                    Node::Snapshots | Node::Sessions => Timestamp::now(),
                    _ => results.started,
                };
                (FileType::Dir, 0o555, 0, t, n.slot().unwrap_or(0) + 1)
            }
            Node::Workspaces => {
                let size = self.workspaces_text()?.len() as u64;
                (FileType::File, 0o444, size, Timestamp::now(), 1)
            }
            n => {
                let slot = n.slot().unwrap_or(0);
                let session = results.get(slot).ok_or_else(gone)?;
                let perm = if matches!(n, Node::OpFile(..)) {
                    0o666
                } else {
                    0o444
                };
                let size = self.content(n)?.len() as u64;
                (FileType::File, perm, size, session.mtime, slot + 1)
            }
        };
        Ok(Attr {
            id,
            kind,
            perm,
            nlink: if kind == FileType::Dir { 2 } else { 1 },
            uid: root.0,
            gid: root.1,
            size,
            blocks: size.div_ceil(512),
            atime: mtime,
            mtime,
            ctime: mtime,
            btime: results.started,
            rdev: 0,
            generation,
        })
    }

    fn root_owner(&self) -> (u32, u32) {
        let ctx = self.ctx(0);
        match ctx.and_then(|c| self.load(&c, c.root)) {
            Ok((inode, _)) => (inode.uid, inode.gid),
            Err(_) => self.inner.opts.root_owner,
        }
    }

    /// Looks up `name` in control directory `parent`.
    pub(crate) async fn control_lookup(&self, parent: FileId, name: &[u8]) -> Result<Attr> {
        let dir = self.node(parent)?;
        let nf = || FsError::of(ErrorKind::NotFound);
        match name {
            b"." => return self.control_getattr(parent),
            b".." => {
                return match dir {
                    Node::Dir => self.getattr(FileId::ROOT).await,
                    Node::SessionDir(_) => self.control_getattr(Node::Sessions.id()),
                    _ => self.control_getattr(CONTROL_DIR),
                }
            }
            _ => {}
        }
        let child = match dir {
            Node::Snapshots => {
                let name = std::str::from_utf8(name).map_err(|_| nf())?;
                let (id, snap) = self.inner.meta.snapshot_by_name(name).ok_or_else(nf)?;
                return self.getattr(FileId::new(id, snap.root)).await;
            }
            Node::Sessions => {
                if !valid_token(name) {
                    return Err(nf());
                }
                let token = std::str::from_utf8(name).map_err(|_| nf())?;
                Node::SessionDir(self.inner.control.session(token))
            }
            Node::Dir | Node::SessionDir(_) => {
                let slot = dir.slot().unwrap_or(0);
                let top = TOP
                    .iter()
                    .find(|(n, _)| dir == Node::Dir && n.as_bytes() == name)
                    .map(|(_, node)| *node);
                match top {
                    Some(node) => node,
                    None => session_file(slot, name).ok_or_else(nf)?,
                }
            }
            _ => return Err(FsError::of(ErrorKind::NotDir)),
        };
        self.control_getattr(child.id())
    }

    /// Lists control directory `dir` after `cookie`.
    pub(crate) fn control_readdir(
        &self,
        dir: FileId,
        cookie: u64,
        limit: usize,
    ) -> Result<(Vec<DirEntry>, bool)> {
        let node = self.node(dir)?;
        let parent = match node {
            Node::Dir => FileId::ROOT,
            Node::SessionDir(_) => Node::Sessions.id(),
            Node::Snapshots | Node::Sessions => CONTROL_DIR,
            _ => return Err(FsError::of(ErrorKind::NotDir)),
        };
        // Every entry with its cookie; cookies stay fixed while entries come and go.
        let mut all: Vec<(Vec<u8>, FileId, FileType, u64)> = vec![
            (b".".to_vec(), dir, FileType::Dir, 1),
            (b"..".to_vec(), parent, FileType::Dir, 2),
        ];
        match node {
            Node::Snapshots => {
                for s in self.snapshots() {
                    all.push((s.name.into_bytes(), s.root, FileType::Dir, FIRST + s.id));
                }
            }
            Node::Sessions => {
                for (slot, token) in self.inner.control.list() {
                    let id = Node::SessionDir(slot).id();
                    all.push((token.into_bytes(), id, FileType::Dir, FIRST + slot));
                }
            }
            _ => {
                let slot = node.slot().unwrap_or(0);
                let mut names: Vec<(&str, Node)> = Vec::new();
                if node == Node::Dir {
                    names.extend(TOP);
                }
                for op in Op::ALL {
                    names.push((op.name(), Node::OpFile(slot, op)));
                }
                names.push(("result", Node::Result(slot)));
                names.push(("last-error", Node::LastError(slot)));
                for (i, (name, n)) in names.into_iter().enumerate() {
                    let kind = if n.is_dir() {
                        FileType::Dir
                    } else {
                        FileType::File
                    };
                    all.push((name.as_bytes().to_vec(), n.id(), kind, FIRST + i as u64));
                }
            }
        }
        let rest: Vec<DirEntry> = all
            .into_iter()
            .filter(|e| e.3 > cookie)
            .map(|(name, id, kind, cookie)| DirEntry {
                name,
                id,
                kind,
                cookie,
            })
            .collect();
        let limit = limit.max(1);
        let eof = rest.len() <= limit;
        Ok((rest.into_iter().take(limit).collect(), eof))
    }

    /// Checks an open of a control node.
    pub(crate) fn control_open(&self, id: FileId, flags: OpenFlags) -> Result<Attr> {
        let node = self.node(id)?;
        let writes = flags.write || flags.truncate;
        if node.is_dir() && writes {
            return Err(FsError::of(ErrorKind::IsDir));
        }
        if writes && !matches!(node, Node::OpFile(..)) {
            return Err(FsError::new(
                ErrorKind::PermissionDenied,
                "only the command files of /.nokv/ can be written",
            ));
        }
        self.control_getattr(id)
    }

    /// Checks `mask` on a control node (everyone may read; only command files are writable).
    pub(crate) fn control_access(&self, id: FileId, mask: u32) -> Result<()> {
        let attr = self.control_getattr(id)?;
        let allowed = attr.perm & 7;
        if mask & 7 & !allowed != 0 {
            return Err(FsError::of(ErrorKind::PermissionDenied));
        }
        Ok(())
    }

    /// `setattr` of a control node: only a size change of a command file is accepted, and
    /// ignored (`>` truncates before writing); anything else is `EPERM`.
    pub(crate) fn control_setattr(&self, id: FileId, set: &SetAttr) -> Result<Attr> {
        let node = self.node(id)?;
        let size_only = SetAttr {
            size: set.size,
            atime: set.atime,
            mtime: set.mtime,
            ..Default::default()
        } == *set;
        if matches!(node, Node::OpFile(..)) && size_only {
            return self.control_getattr(id);
        }
        Err(not_permitted("setattr"))
    }

    /// Reads a control file.
    pub(crate) fn control_read(
        &self,
        id: FileId,
        scope: Option<u64>,
        off: u64,
        len: u32,
    ) -> Result<Bytes> {
        let node = self.node(id)?;
        if let (Some(sc), Node::OpFile(slot, _)) = (scope, node) {
            if let Some(out) = self.inner.control.scope_read(sc, slot, len as usize) {
                return Ok(out);
            }
        }
        let content = self.content(node)?;
        let start = (off.min(content.len() as u64)) as usize;
        let end = (start + len as usize).min(content.len());
        Ok(content.slice(start..end))
    }

    /// Writes a command to a command file: parses and runs it, records the outcome in the
    /// session (and `scope`), and fails with the command's error.
    pub(crate) async fn control_write(
        &self,
        id: FileId,
        scope: Option<u64>,
        data: &[u8],
    ) -> Result<u32> {
        let node = self.node(id)?;
        if data.is_empty() {
            return Ok(0);
        }
        let Node::OpFile(slot, op) = node else {
            return Err(match node {
                n if n.is_dir() => FsError::of(ErrorKind::IsDir),
                _ => FsError::new(
                    ErrorKind::PermissionDenied,
                    "only the command files of /.nokv/ can be written",
                ),
            });
        };
        let outcome = match parse(op, data) {
            Ok(cmd) => self.run_command(&cmd).await,
            Err(e) => Err(e),
        };
        let results = &self.inner.control;
        match outcome {
            Ok(out) => {
                results.record(slot, scope, op, Ok(Bytes::from(out)));
                Ok(data.len() as u32)
            }
            Err(e) => {
                let msg = format!("{}: {}", op.name(), e).replace(['\n', '\r'], " ");
                tracing::debug!(%msg, "control command failed");
                results.record(slot, scope, op, Err(msg));
                Err(e)
            }
        }
    }

    /// Opens a private result scope on control file `id` for a frontend with open state
    /// (FUSE): commands written through [`Fs::write_scoped`] with it leave their output
    /// there, and [`Fs::read_scoped`] with it returns that output. `None` for anything but
    /// a session file. Release it with [`Fs::release_scope`].
    pub fn control_scope(&self, id: FileId) -> Option<u64> {
        let slot = Node::of(id)?.slot()?;
        match Node::of(id)? {
            Node::OpFile(..) | Node::Result(_) | Node::LastError(_) => {
                Some(self.inner.control.open_scope(slot))
            }
            _ => None,
        }
    }

    /// Forgets a scope from [`Fs::control_scope`].
    pub fn release_scope(&self, scope: u64) {
        self.inner.control.close_scope(scope);
    }

    /// [`Fs::read`] through result scope `scope` (see [`Fs::control_scope`]).
    pub async fn read_scoped(&self, id: FileId, scope: u64, off: u64, len: u32) -> Result<Bytes> {
        if Node::of(id).is_some() {
            return self.control_read(id, Some(scope), off, len);
        }
        self.read(id, off, len).await
    }

    /// [`Fs::write`] through result scope `scope` (see [`Fs::control_scope`]).
    pub async fn write_scoped(&self, id: FileId, scope: u64, off: u64, data: &[u8]) -> Result<u32> {
        if Node::of(id).is_some() {
            return self.control_write(id, Some(scope), data).await;
        }
        self.write(id, off, data).await
    }
}

/// The session file `name` of session `slot`.
fn session_file(slot: u64, name: &[u8]) -> Option<Node> {
    match name {
        b"result" => Some(Node::Result(slot)),
        b"last-error" => Some(Node::LastError(slot)),
        _ => Op::ALL
            .iter()
            .find(|op| op.name().as_bytes() == name)
            .map(|op| Node::OpFile(slot, *op)),
    }
}
