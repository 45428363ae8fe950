//! The NFS program (100003, version 3): one handler per procedure, each "decode, call the
//! core, encode".
//!
//! [`Nfs`] holds what the handlers share: the core's [`Fs`], the volume tag that goes into
//! handles and `fsid`, the write verifier of this server start, and the set of files with
//! UNSTABLE writes not yet committed (for the idle flush, see `write`).
//!
//! Every handle is resolved through [`Nfs::resolve`]: bytes that are not a handle of this
//! volume are `BADHANDLE`; a handle whose file is gone or whose creation generation differs
//! (the id now names another file) is `STALE`. Failure replies carry the attributes the
//! protocol asks for where the handler has them. No semantics live here: permissions, names
//! and every rule are the core's; the exceptions NFS itself imposes (no open/close, owner
//! override on READ/WRITE, the EXCLUSIVE create verifier) are documented in
//! `docs/semantics.md`.
//!
//! Submodules: `read` (GETATTR, LOOKUP, ACCESS, READLINK, READ, FSSTAT, FSINFO, PATHCONF),
//! `dir` (READDIR, READDIRPLUS), `write` (SETATTR, WRITE, COMMIT, idle flush), `create`
//! (CREATE, MKDIR, SYMLINK, MKNOD, LINK, REMOVE, RMDIR, RENAME).

mod create;
mod dir;
mod read;
mod write;

use std::collections::HashMap;
use std::time::Instant;

use nfs3_types::nfs3::{nfs_fh3, post_op_attr, post_op_fh3, wcc_data};
use nfs3_types::xdr_codec::{Opaque, Pack};
use nokv_core::{Attr, Caller, ErrorKind, FileId, Fs};
use parking_lot::Mutex;

use crate::attr::{fattr, wcc};
use crate::error::{NfsError, NfsResult};
use crate::handle::Handle;
use crate::xdr::{Decoder, Garbage};

/// NFS program number.
pub const PROGRAM: u32 = 100_003;
/// NFS version served.
pub const VERSION: u32 = 3;
/// Largest READ and WRITE (`rtmax`, `wtmax`).
pub const IO_MAX: u32 = 1 << 20;

/// Why a call got no procedure result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Arguments did not decode (`GARBAGE_ARGS`).
    Garbage,
    /// No such procedure (`PROC_UNAVAIL`).
    NoProc,
    /// The reply could not be encoded (`SYSTEM_ERR`).
    System,
}

impl From<Garbage> for Fault {
    fn from(_: Garbage) -> Self {
        Fault::Garbage
    }
}

/// What a handler returns: its result was appended to the reply, or a fault.
pub type Out = Result<(), Fault>;

/// Appends `v`'s XDR encoding to `out`.
pub fn pack<T: Pack>(out: &mut Vec<u8>, v: &T) -> Out {
    v.pack(out).map(|_| ()).map_err(|_| Fault::System)
}

/// State shared by every NFS and MOUNT handler.
pub struct Nfs {
    pub(crate) fs: Fs,
    /// Volume tag: in every handle, and the `fsid` of every file.
    pub(crate) volume: u64,
    /// Write verifier of this server start.
    pub(crate) verf: [u8; 8],
    /// Files with UNSTABLE writes since their last COMMIT or flush, and when last written.
    pub(crate) dirty: Mutex<HashMap<FileId, Instant>>,
}

impl Nfs {
    /// Adapter state over `fs` for volume tag `volume` with write verifier `verf`.
    pub fn new(fs: Fs, volume: u64, verf: [u8; 8]) -> Self {
        Nfs {
            fs,
            volume,
            verf,
            dirty: Mutex::new(HashMap::new()),
        }
    }

    /// The handle of the file `a` describes.
    pub fn fh(&self, a: &Attr) -> nfs_fh3 {
        let h = Handle {
            id: a.id,
            generation: a.generation,
        };
        nfs_fh3 {
            data: Opaque::owned(h.encode(self.volume).to_vec()),
        }
    }

    /// The current attributes of the file `bytes` is a handle of (see the module docs).
    pub async fn resolve(&self, bytes: &[u8]) -> NfsResult<Attr> {
        let h = Handle::decode(bytes, self.volume)?;
        let a = self.fs.getattr(h.id).await.map_err(|e| match e.kind() {
            ErrorKind::Stale | ErrorKind::NotFound => NfsError::Stale,
            _ => NfsError::Core(e),
        })?;
        if a.generation != h.generation {
            return Err(NfsError::Stale);
        }
        Ok(a)
    }

    /// `fattr3` of `a`.
    pub fn fattr(&self, a: &Attr) -> nfs3_types::nfs3::fattr3 {
        fattr(a, self.volume)
    }

    /// Post-operation attributes of `a`.
    pub fn post(&self, a: &Attr) -> post_op_attr {
        post_op_attr::Some(self.fattr(a))
    }

    /// Post-operation attributes of `id`, read now (none if that fails).
    pub async fn post_of(&self, id: FileId) -> post_op_attr {
        match self.fs.getattr(id).await {
            Ok(a) => self.post(&a),
            Err(_) => post_op_attr::None,
        }
    }

    /// Weak cache consistency data: `before` as resolved, after read now.
    pub async fn wcc(&self, before: &Attr) -> wcc_data {
        wcc_data {
            before: nfs3_types::nfs3::pre_op_attr::Some(wcc(before)),
            after: self.post_of(before.id).await,
        }
    }

    /// The handle of a new or found object, for CREATE/MKDIR/SYMLINK replies.
    pub fn post_fh(&self, a: &Attr) -> post_op_fh3 {
        post_op_fh3::Some(self.fh(a))
    }

    /// Runs procedure `proc_` with arguments `args` for `caller`, appending its result to
    /// `out`; READ leaves its data in `tail` (sent after `out`, not copied into it, see
    /// [`crate::rpc::Reply`]).
    pub async fn dispatch(
        &self,
        proc_: u32,
        args: &[u8],
        caller: Caller,
        out: &mut Vec<u8>,
        tail: &mut bytes::Bytes,
    ) -> Out {
        let mut d = Decoder::new(args);
        let d = &mut d;
        match proc_ {
            0 => Ok(()),
            1 => self.getattr(d, out).await,
            2 => self.setattr(d, &caller, out).await,
            3 => self.lookup(d, &caller, out).await,
            4 => self.access(d, &caller, out).await,
            5 => self.readlink(d, out).await,
            6 => self.read(d, &caller, out, tail).await,
            7 => self.write(d, &caller, out).await,
            8 => self.create(d, &caller, out).await,
            9 => self.mkdir(d, &caller, out).await,
            10 => self.symlink(d, &caller, out).await,
            11 => self.mknod(out),
            12 => self.remove(d, &caller, out, false).await,
            13 => self.remove(d, &caller, out, true).await,
            14 => self.rename(d, &caller, out).await,
            15 => self.link(out),
            16 => self.readdir(d, &caller, out).await,
            17 => self.readdirplus(d, &caller, out).await,
            18 => self.fsstat(d, out).await,
            19 => self.fsinfo(d, out).await,
            20 => self.pathconf(d, out).await,
            21 => self.commit(d, out).await,
            _ => Err(Fault::NoProc),
        }
    }
}

/// Logs a failed procedure: client errors at debug, server-side failures at warn.
pub(crate) fn log_failure(op: &str, e: &NfsError) {
    match e {
        NfsError::Core(c)
            if matches!(
                c.kind(),
                ErrorKind::Io | ErrorKind::Corrupt | ErrorKind::NoSpace
            ) =>
        {
            tracing::warn!(op, error = %e, "NFS procedure failed")
        }
        _ => tracing::debug!(op, error = %e, "NFS procedure refused"),
    }
}
