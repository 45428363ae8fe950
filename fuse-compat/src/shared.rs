//! The state one mount's request handlers share, and the replies they build from core
//! results: entry and attribute replies (with the mount's TTLs and lookup counting) and
//! errno replies.

use std::sync::Arc;
use std::time::Duration;

use fuser::{FileAttr, Generation, INodeNo, ReplyAttr, ReplyEmpty, ReplyEntry, Request};
use nokv_core::{Attr, Caller, FileId, Fs, FsError, Result};

use crate::config::MountConfig;
use crate::convert::{self, errno, Inos};
use crate::handles::{Handles, Lookups};

/// Shared by every handler of one mount (cheap to clone).
pub(crate) type Shared = Arc<State>;

/// Per-mount state.
pub(crate) struct State {
    pub fs: Fs,
    pub inos: Inos,
    pub handles: Handles,
    pub lookups: Lookups,
    pub read_only: bool,
    pub attr_ttl: Duration,
    pub entry_ttl: Duration,
    pub negative_ttl: Duration,
}

impl State {
    pub(crate) fn new(fs: Fs, root: FileId, cfg: &MountConfig) -> Self {
        State {
            fs,
            inos: Inos::new(root),
            handles: Handles::default(),
            lookups: Lookups::default(),
            read_only: cfg.read_only,
            attr_ttl: convert::ttl(cfg.attr_timeout),
            entry_ttl: convert::ttl(cfg.entry_timeout),
            negative_ttl: convert::ttl(cfg.negative_timeout),
        }
    }

    pub(crate) fn id(&self, ino: INodeNo) -> FileId {
        self.inos.id(ino)
    }

    pub(crate) fn attr(&self, a: &Attr) -> FileAttr {
        convert::attr(a, &self.inos)
    }

    /// Fails with `EROFS` on a read-only mount.
    pub(crate) fn writable(&self) -> Result<()> {
        if self.read_only {
            Err(FsError::new(
                nokv_core::ErrorKind::ReadOnly,
                "read-only mount",
            ))
        } else {
            Ok(())
        }
    }

    /// Replies with an entry the kernel will hold a reference to (counted until `forget`).
    pub(crate) fn entry(&self, reply: ReplyEntry, r: Result<Attr>) {
        match r {
            Ok(a) => {
                let fa = self.attr(&a);
                self.lookups.add(fa.ino.0);
                reply.entry_with_ttls(
                    &self.attr_ttl,
                    &self.entry_ttl,
                    &fa,
                    Generation(a.generation),
                );
            }
            Err(e)
                if e.kind() == nokv_core::ErrorKind::NotFound && !self.negative_ttl.is_zero() =>
            {
                // A negative entry: the kernel caches the absence for `negative_ttl`.
                let mut fa = negative_attr();
                fa.ino = INodeNo(0);
                reply.entry_with_ttls(&self.negative_ttl, &self.negative_ttl, &fa, Generation(0));
            }
            Err(e) => reply.error(errno(&e)),
        }
    }

    pub(crate) fn reply_attr(&self, reply: ReplyAttr, r: Result<Attr>) {
        match r {
            Ok(a) => reply.attr(&self.attr_ttl, &self.attr(&a)),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

/// The caller of a request.
pub(crate) fn caller(req: &Request) -> Caller {
    Caller {
        uid: req.uid(),
        gid: req.gid(),
    }
}

pub(crate) fn empty(reply: ReplyEmpty, r: Result<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

fn negative_attr() -> FileAttr {
    let t = std::time::UNIX_EPOCH;
    FileAttr {
        ino: INodeNo(0),
        size: 0,
        blocks: 0,
        atime: t,
        mtime: t,
        ctime: t,
        crtime: t,
        kind: fuser::FileType::RegularFile,
        perm: 0,
        nlink: 0,
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: convert::BLKSIZE,
        flags: 0,
    }
}
