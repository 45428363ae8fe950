//! The `fuser::Filesystem` implementation: each kernel request is decoded here, run against
//! the core on the reader thread (a data request that has to wait on I/O moves to the async
//! runtime), and answered from there. No filesystem
//! semantics live here: permission rules, link counts, times and data all come from
//! `nokv-core`; this module only translates arguments, handles and replies.

use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Waker};
use std::time::SystemTime;

use fuser::{
    AccessFlags, BsdFileFlags, CopyFileRangeFlags, Errno, FileHandle, Filesystem, FopenFlags,
    INodeNo, InitFlags, IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags,
    ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyIoctl, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow,
    WriteFlags,
};
use nokv_core::{ErrorKind, FsError, SetAttr, XattrMode};
use tokio::runtime::Handle as Runtime;

use crate::convert::{self, errno, kind_of_mode};
use crate::handles::Handle;
use crate::shared::{caller, empty, Shared};

/// Largest write the kernel sends (and the read size it asks for).
pub(crate) const MAX_WRITE: u32 = 1 << 20;

/// One mount's request handler.
pub(crate) struct NokvFuse {
    pub(crate) s: Shared,
    pub(crate) rt: Runtime,
}

impl NokvFuse {
    /// Runs a request that may wait on I/O (data, publishing, durability): it starts on the
    /// reader thread and, if it completes without waiting (a buffered write, a cached read,
    /// a publish that only submits), is answered from there; only a request that has to wait
    /// moves to the runtime, so the reader thread goes back to the kernel at once. On this
    /// class of machine every hop to another thread costs a wake-up of the other CPU, which
    /// is most of a small request's latency (docs/benchmarks.md, FUSE round trips).
    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        let mut f: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(f);
        let first = {
            let _in_runtime = self.rt.enter();
            f.as_mut().poll(&mut Context::from_waker(Waker::noop()))
        };
        if first.is_pending() {
            // The runtime polls the task again at once, which registers its own waker in
            // place of the no-op one (a future wakes only the waker of its latest poll).
            self.rt.spawn(f);
        }
    }

    /// Runs a metadata request on the reader thread itself: these complete without waiting
    /// on I/O (metadata reads and group-committed changes), and skipping the hop to a
    /// runtime thread roughly halves their latency.
    fn inline<F: Future<Output = ()>>(&self, f: F) {
        self.rt.block_on(f);
    }
}

fn name(n: &OsStr) -> Vec<u8> {
    n.as_bytes().to_vec()
}

fn err(kind: ErrorKind, what: &str) -> FsError {
    FsError::new(kind, what)
}

impl Filesystem for NokvFuse {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let want = InitFlags::FUSE_ASYNC_READ
            | InitFlags::FUSE_BIG_WRITES
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_AUTO_INVAL_DATA
            | InitFlags::FUSE_CACHE_SYMLINKS
            | InitFlags::FUSE_EXPORT_SUPPORT
            // The core clears setuid/setgid and capabilities on write, truncate and chown
            // (`privileges`), so the kernel skips its `security.capability` GETXATTR
            // before every write and its GETATTR before every chown.
            | InitFlags::FUSE_HANDLE_KILLPRIV_V2;
        let _ = config.add_capabilities(want & config.capabilities());
        let _ = config.set_max_write(MAX_WRITE);
        let _ = config.set_max_readahead(MAX_WRITE);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        self.inline(async move {
            let r = s.fs.lookup(p, &n, &c).await;
            s.entry(reply, r);
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.s.lookups.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.inline(async move {
            let r = s.fs.getattr(id).await;
            s.reply_attr(reply, r);
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        let set = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(convert::set_time),
            mtime: mtime.map(convert::set_time),
            ctime: ctime.map(convert::timestamp),
            // ftruncate through a handle opened for writing needs no further permission
            // (the open checked it), as on a local filesystem.
            opened_for_write: size.is_some()
                && fh
                    .and_then(|fh| self.s.handles.get(fh.0))
                    .is_some_and(|h| h.write),
        };
        self.spawn(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.setattr(id, &set, &c).await,
                Err(e) => Err(e),
            };
            s.reply_attr(reply, r);
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.inline(async move {
            match s.fs.readlink(id).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        _umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        self.inline(async move {
            let r = match (s.writable(), kind_of_mode(mode)) {
                (Err(e), _) => Err(e),
                (Ok(()), None) => Err(err(ErrorKind::InvalidArgument, "unknown file type")),
                (Ok(()), Some(k)) => s.fs.mknod(p, &n, k, mode & 0o7777, rdev as u64, &c).await,
            };
            s.entry(reply, r);
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        self.inline(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.mkdir(p, &n, mode & 0o7777, &c).await,
                Err(e) => Err(e),
            };
            s.entry(reply, r);
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        self.inline(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.unlink(p, &n, &c).await,
                Err(e) => Err(e),
            };
            empty(reply, r);
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        self.inline(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.rmdir(p, &n, &c).await,
                Err(e) => Err(e),
            };
            empty(reply, r);
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (s, c, p, n) = (
            self.s.clone(),
            caller(req),
            self.s.id(parent),
            name(link_name),
        );
        let target = target.as_os_str().as_bytes().to_vec();
        self.inline(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.symlink(p, &n, &target, &c).await,
                Err(e) => Err(e),
            };
            s.entry(reply, r);
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        let (np, nn) = (self.s.id(newparent), name(newname));
        self.inline(async move {
            let r = if flags.contains(RenameFlags::RENAME_WHITEOUT) {
                Err(err(ErrorKind::InvalidArgument, "RENAME_WHITEOUT"))
            } else if let Err(e) = s.writable() {
                Err(e)
            } else {
                let f = nokv_core::RenameFlags {
                    noreplace: flags.contains(RenameFlags::RENAME_NOREPLACE),
                    exchange: flags.contains(RenameFlags::RENAME_EXCHANGE),
                };
                s.fs.rename(p, &n, np, &nn, f, &c).await
            };
            empty(reply, r);
        });
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        let (np, nn) = (self.s.id(newparent), name(newname));
        self.inline(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.link(id, np, &nn, &c).await,
                Err(e) => Err(e),
            };
            s.entry(reply, r);
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        self.spawn(async move {
            match crate::file::open(&s, id, flags.0, &c).await {
                Ok((fh, f)) => reply.opened(FileHandle(fh), f),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.spawn(async move {
            match crate::file::read(&s, id, fh.0, offset, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let (s, id, data) = (self.s.clone(), self.s.id(ino), data.to_vec());
        self.spawn(async move {
            let r = match s.writable() {
                Ok(()) => {
                    // The kernel sets this flag when the writer may not keep setuid/setgid
                    // (no CAP_FSETID); FUSE_HANDLE_KILLPRIV_V2 leaves clearing them to us.
                    let keep = !write_flags.contains(WriteFlags::FUSE_WRITE_KILL_SUIDGID);
                    match s.fs.before_write(id, keep).await {
                        Ok(()) => crate::file::write(&s, id, fh.0, offset, &data).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.spawn(async move { empty(reply, s.fs.flush(id).await) });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let s = self.s.clone();
        self.spawn(async move { empty(reply, crate::file::release(&s, fh.0).await) });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.spawn(async move { empty(reply, s.fs.fsync(id).await) });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        self.inline(async move {
            match crate::dir::opendir(&s, id, &c).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        self.inline(async move { crate::dir::readdir(&s, id, offset, &c, reply).await });
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        self.inline(async move { crate::dir::readdirplus(&s, id, offset, &c, reply).await });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.s.handles.close(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.spawn(async move { empty(reply, s.fs.fsync_dir(id).await) });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.s.clone();
        self.inline(async move {
            match s.fs.statfs().await {
                Ok(st) => reply.statfs(
                    st.blocks,
                    st.blocks_free,
                    st.blocks_available,
                    st.files,
                    st.files_free,
                    st.block_size,
                    st.name_max,
                    st.block_size,
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        n: &OsStr,
        value: &[u8],
        flags: i32,
        position: u32,
        reply: ReplyEmpty,
    ) {
        let (s, c, id, n) = (self.s.clone(), caller(req), self.s.id(ino), name(n));
        let value = value.to_vec();
        self.inline(async move {
            let mode = match flags {
                0 => Ok(XattrMode::Any),
                libc::XATTR_CREATE => Ok(XattrMode::Create),
                libc::XATTR_REPLACE => Ok(XattrMode::Replace),
                _ => Err(err(ErrorKind::InvalidArgument, "xattr flags")),
            };
            let r = match (mode, s.writable()) {
                (Err(e), _) | (_, Err(e)) => Err(e),
                _ if position != 0 => Err(err(ErrorKind::InvalidArgument, "xattr position")),
                (Ok(m), Ok(())) => s.fs.setxattr(id, &n, &value, m, &c).await,
            };
            empty(reply, r);
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, n: &OsStr, size: u32, reply: ReplyXattr) {
        let (s, c, id, n) = (self.s.clone(), caller(req), self.s.id(ino), name(n));
        self.inline(async move { xattr_reply(reply, size, s.fs.getxattr(id, &n, &c).await) });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.inline(async move {
            let r = s.fs.listxattr(id).await.map(|names| {
                let mut out = Vec::new();
                for n in names {
                    out.extend_from_slice(&n);
                    out.push(0);
                }
                out
            });
            xattr_reply(reply, size, r)
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (s, c, id, n) = (self.s.clone(), caller(req), self.s.id(ino), name(n));
        self.inline(async move {
            let r = match s.writable() {
                Ok(()) => s.fs.removexattr(id, &n, &c).await,
                Err(e) => Err(e),
            };
            empty(reply, r);
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        let (s, c, id) = (self.s.clone(), caller(req), self.s.id(ino));
        self.inline(async move {
            let mask = mask.bits() as u32;
            let r = if mask & libc::W_OK as u32 != 0 && s.read_only {
                s.writable()
            } else {
                s.fs.access(id, mask, &c).await
            };
            empty(reply, r);
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (s, c, p, n) = (self.s.clone(), caller(req), self.s.id(parent), name(n));
        self.inline(async move {
            match crate::file::create(&s, p, &n, mode & 0o7777, flags, &c).await {
                Ok((a, fh, f)) => {
                    let fa = s.attr(&a);
                    s.lookups.add(fa.ino.0);
                    reply.created(
                        &s.entry_ttl,
                        &fa,
                        fuser::Generation(a.generation),
                        FileHandle(fh),
                        f,
                    );
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.spawn(async move {
            let r = match s.writable() {
                Ok(()) => crate::file::fallocate(&s, id, offset, length, mode).await,
                Err(e) => Err(e),
            };
            empty(reply, r);
        });
    }

    fn lseek(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: i64,
        whence: i32,
        reply: ReplyLseek,
    ) {
        let (s, id) = (self.s.clone(), self.s.id(ino));
        self.spawn(async move {
            match crate::file::lseek(&s, id, offset, whence).await {
                Ok(off) => reply.offset(off),
                Err(e) => reply.error(e),
            }
        });
    }

    /// No file supports an ioctl. Answered here rather than by fuser's default, which logs a
    /// warning for each one: every `isatty` check of a file (Python's `open`) asks `TCGETS`.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        ino_in: INodeNo,
        _fh_in: FileHandle,
        offset_in: u64,
        ino_out: INodeNo,
        _fh_out: FileHandle,
        offset_out: u64,
        len: u64,
        _flags: CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        let (s, src, dst) = (self.s.clone(), self.s.id(ino_in), self.s.id(ino_out));
        self.spawn(async move {
            let r = match s.writable() {
                Ok(()) => crate::file::copy_range(&s, src, offset_in, dst, offset_out, len).await,
                Err(e) => Err(e),
            };
            match r {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}

/// Replies to getxattr/listxattr: the size when asked for it, `ERANGE` when too small.
fn xattr_reply(reply: ReplyXattr, size: u32, r: nokv_core::Result<Vec<u8>>) {
    match r {
        Ok(v) if size == 0 => reply.size(v.len() as u32),
        Ok(v) if v.len() > size as usize => reply.error(Errno::ERANGE),
        Ok(v) => reply.data(&v),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Whether `flags` open for writing.
pub(crate) fn writes(flags: i32) -> bool {
    !matches!(OpenFlags(flags).acc_mode(), OpenAccMode::O_RDONLY)
}

/// Whether `flags` open for reading.
pub(crate) fn reads(flags: i32) -> bool {
    !matches!(OpenFlags(flags).acc_mode(), OpenAccMode::O_WRONLY)
}

pub(crate) fn file_handle(id: nokv_core::FileId, flags: i32) -> Handle {
    Handle {
        id,
        dir: false,
        write: writes(flags),
        scope: None,
    }
}
