//! Procedures that change a directory: CREATE, MKDIR, SYMLINK, REMOVE, RMDIR, RENAME; and
//! MKNOD and LINK, which answer `NFS3ERR_NOTSUPP`.
//!
//! CREATE modes:
//! - UNCHECKED: a new file gets the client's mode (0644 if none) and other attributes; an
//!   existing regular file is kept, only its size is applied (truncation); an existing
//!   non-file is `EXIST`.
//! - GUARDED: an existing name is `EXIST`.
//! - EXCLUSIVE: the client's 8-byte verifier is stored in the new file's atime and mtime
//!   seconds (4 bytes each, as the Linux server does) and the file gets mode 0600; the client
//!   then sets the real mode and times with SETATTR. A retransmitted CREATE finds the file
//!   with those times and succeeds with it; a different verifier gets `EXIST`.
//!
//! Attributes other than the mode given to CREATE, MKDIR or SYMLINK are applied with one
//! `setattr` after the object is made (the object stays if that fails, as with the Linux
//! server).

use nfs3_types::nfs3::{
    nfsstat3, post_op_attr, wcc_data, CREATE3res, CREATE3resfail, CREATE3resok, LINK3res,
    LINK3resfail, MKDIR3res, MKDIR3resfail, MKDIR3resok, MKNOD3res, MKNOD3resfail, REMOVE3res,
    REMOVE3resfail, REMOVE3resok, RENAME3res, RENAME3resfail, RENAME3resok, SYMLINK3res,
    SYMLINK3resfail, SYMLINK3resok,
};
use nokv_core::{Attr, Caller, ErrorKind, FileType, RenameFlags, SetAttr, SetTime, Timestamp};

use super::{log_failure, pack, Nfs, Out};
use crate::error::{NfsError, NfsResult};
use crate::xdr::{Decoder, Sattr};

/// Mode of a file created without one.
const DEFAULT_FILE_MODE: u32 = 0o644;
/// Mode of a directory created without one.
const DEFAULT_DIR_MODE: u32 = 0o755;
/// Mode of an EXCLUSIVE-created file until the client's SETATTR.
const EXCLUSIVE_MODE: u32 = 0o600;

/// How CREATE was asked to behave.
enum How {
    Unchecked(Sattr),
    Guarded(Sattr),
    Exclusive([u8; 8]),
}

/// The verifier as the (atime, mtime) it is stored as.
fn verifier_times(v: [u8; 8]) -> (Timestamp, Timestamp) {
    let secs = |b: &[u8]| i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    (
        Timestamp {
            secs: secs(&v[0..4]),
            nanos: 0,
        },
        Timestamp {
            secs: secs(&v[4..8]),
            nanos: 0,
        },
    )
}

/// `set` without the fields already used at creation (`mode`), or `None` if nothing is left.
fn rest(set: &Sattr, keep_size: bool) -> Option<SetAttr> {
    let r = SetAttr {
        mode: None,
        size: if keep_size { set.size } else { None },
        ..set.clone()
    };
    (r != SetAttr::default()).then_some(r)
}

impl Nfs {
    /// A failure reply's directory wcc: `before` if the directory was resolved.
    async fn dir_wcc(&self, dir: &Attr) -> wcc_data {
        self.wcc(dir).await
    }

    /// Applies `set` to the new object `a` if it has anything to apply.
    async fn apply(&self, a: Attr, set: Option<SetAttr>, caller: &Caller) -> NfsResult<Attr> {
        match set {
            Some(set) => Ok(self.fs.setattr(a.id, &set, caller).await?),
            None => Ok(a),
        }
    }

    pub(super) async fn create(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let op = d.dirop()?;
        let how = match d.u32()? {
            0 => How::Unchecked(d.sattr()?),
            1 => How::Guarded(d.sattr()?),
            2 => How::Exclusive(d.fixed8()?),
            _ => return Err(crate::xdr::Garbage.into()),
        };
        let dir = match self.resolve(op.dir).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &CREATE3res::Err((e.status(), CREATE3resfail::default())),
                )
            }
        };
        let res = match self.create_in(&dir, op.name, how, caller).await {
            Ok(a) => CREATE3res::Ok(CREATE3resok {
                obj: self.post_fh(&a),
                obj_attributes: self.post(&a),
                dir_wcc: self.dir_wcc(&dir).await,
            }),
            Err(e) => {
                log_failure("CREATE", &e);
                let dir_wcc = self.dir_wcc(&dir).await;
                CREATE3res::Err((e.status(), CREATE3resfail { dir_wcc }))
            }
        };
        pack(out, &res)
    }

    async fn create_in(
        &self,
        dir: &Attr,
        name: &[u8],
        how: How,
        caller: &Caller,
    ) -> NfsResult<Attr> {
        let fs = &self.fs;
        let mode = match &how {
            How::Unchecked(s) | How::Guarded(s) => s.mode.unwrap_or(DEFAULT_FILE_MODE),
            How::Exclusive(_) => EXCLUSIVE_MODE,
        };
        let made = fs.create(dir.id, name, mode, caller, true).await;
        match (how, made) {
            (How::Unchecked(s) | How::Guarded(s), Ok(a)) => {
                self.apply(a, rest(&s, true), caller).await
            }
            (How::Exclusive(v), Ok(a)) => {
                let (atime, mtime) = verifier_times(v);
                let set = SetAttr {
                    atime: Some(SetTime::At(atime)),
                    mtime: Some(SetTime::At(mtime)),
                    ..SetAttr::default()
                };
                Ok(fs.setattr(a.id, &set, caller).await?)
            }
            (How::Unchecked(s), Err(e)) if e.kind() == ErrorKind::Exists => {
                let a = fs.lookup(dir.id, name, caller).await?;
                if a.kind != FileType::File {
                    return Err(e.into());
                }
                let size = s.size.map(|size| SetAttr {
                    size: Some(size),
                    ..SetAttr::default()
                });
                self.apply(a, size, caller).await
            }
            (How::Exclusive(v), Err(e)) if e.kind() == ErrorKind::Exists => {
                // A retransmission of the CREATE that made this file succeeds with it.
                let a = fs.lookup(dir.id, name, caller).await?;
                let (atime, mtime) = verifier_times(v);
                if a.kind == FileType::File && a.atime == atime && a.mtime == mtime {
                    Ok(a)
                } else {
                    Err(e.into())
                }
            }
            (_, Err(e)) => Err(e.into()),
        }
    }

    pub(super) async fn mkdir(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let op = d.dirop()?;
        let set = d.sattr()?;
        let dir = match self.resolve(op.dir).await {
            Ok(a) => a,
            Err(e) => return pack(out, &MKDIR3res::Err((e.status(), MKDIR3resfail::default()))),
        };
        let mode = set.mode.unwrap_or(DEFAULT_DIR_MODE);
        let made = match self.fs.mkdir(dir.id, op.name, mode, caller).await {
            Ok(a) => self.apply(a, rest(&set, false), caller).await,
            Err(e) => Err(e.into()),
        };
        let res = match made {
            Ok(a) => MKDIR3res::Ok(MKDIR3resok {
                obj: self.post_fh(&a),
                obj_attributes: self.post(&a),
                dir_wcc: self.dir_wcc(&dir).await,
            }),
            Err(e) => {
                log_failure("MKDIR", &e);
                let dir_wcc = self.dir_wcc(&dir).await;
                MKDIR3res::Err((e.status(), MKDIR3resfail { dir_wcc }))
            }
        };
        pack(out, &res)
    }

    pub(super) async fn symlink(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let op = d.dirop()?;
        let set = d.sattr()?;
        let target = d.string()?;
        let dir = match self.resolve(op.dir).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &SYMLINK3res::Err((e.status(), SYMLINK3resfail::default())),
                )
            }
        };
        let made = match self.fs.symlink(dir.id, op.name, target, caller).await {
            Ok(a) => self.apply(a, rest(&set, false), caller).await,
            Err(e) => Err(e.into()),
        };
        let res = match made {
            Ok(a) => SYMLINK3res::Ok(SYMLINK3resok {
                obj: self.post_fh(&a),
                obj_attributes: self.post(&a),
                dir_wcc: self.dir_wcc(&dir).await,
            }),
            Err(e) => {
                log_failure("SYMLINK", &e);
                let dir_wcc = self.dir_wcc(&dir).await;
                SYMLINK3res::Err((e.status(), SYMLINK3resfail { dir_wcc }))
            }
        };
        pack(out, &res)
    }

    /// MKNOD is not supported over NFS (decision 0002; documented in semantics.md).
    pub(super) fn mknod(&self, out: &mut Vec<u8>) -> Out {
        let fail = MKNOD3resfail {
            dir_wcc: wcc_data::default(),
        };
        pack(out, &MKNOD3res::Err((nfsstat3::NFS3ERR_NOTSUPP, fail)))
    }

    /// LINK is not supported over NFS (decision 0002; documented in semantics.md).
    pub(super) fn link(&self, out: &mut Vec<u8>) -> Out {
        let fail = LINK3resfail {
            file_attributes: post_op_attr::None,
            linkdir_wcc: wcc_data::default(),
        };
        pack(out, &LINK3res::Err((nfsstat3::NFS3ERR_NOTSUPP, fail)))
    }

    /// REMOVE (`dir == false`) or RMDIR (`dir == true`); their results encode alike.
    pub(super) async fn remove(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
        rmdir: bool,
    ) -> Out {
        let op = d.dirop()?;
        let dir = match self.resolve(op.dir).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &REMOVE3res::Err((e.status(), REMOVE3resfail::default())),
                )
            }
        };
        let done = if rmdir {
            self.fs.rmdir(dir.id, op.name, caller).await
        } else {
            self.fs.unlink(dir.id, op.name, caller).await
        };
        let dir_wcc = self.dir_wcc(&dir).await;
        let res = match done {
            Ok(()) => REMOVE3res::Ok(REMOVE3resok { dir_wcc }),
            Err(e) => {
                let e = NfsError::from(e);
                log_failure(if rmdir { "RMDIR" } else { "REMOVE" }, &e);
                REMOVE3res::Err((e.status(), REMOVE3resfail { dir_wcc }))
            }
        };
        pack(out, &res)
    }

    pub(super) async fn rename(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let from = d.dirop()?;
        let to = d.dirop()?;
        let (src, dst) = match (self.resolve(from.dir).await, self.resolve(to.dir).await) {
            (Ok(s), Ok(t)) => (s, t),
            (Err(e), _) | (_, Err(e)) => {
                return pack(
                    out,
                    &RENAME3res::Err((e.status(), RENAME3resfail::default())),
                )
            }
        };
        let done = self
            .fs
            .rename(
                src.id,
                from.name,
                dst.id,
                to.name,
                RenameFlags::default(),
                caller,
            )
            .await;
        let fromdir_wcc = self.dir_wcc(&src).await;
        let todir_wcc = self.dir_wcc(&dst).await;
        let res = match done {
            Ok(()) => RENAME3res::Ok(RENAME3resok {
                fromdir_wcc,
                todir_wcc,
            }),
            Err(e) => {
                let e = NfsError::from(e);
                log_failure("RENAME", &e);
                RENAME3res::Err((
                    e.status(),
                    RENAME3resfail {
                        fromdir_wcc,
                        todir_wcc,
                    },
                ))
            }
        };
        pack(out, &res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_halves_become_whole_seconds() {
        let (a, m) = verifier_times([0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(a, Timestamp { secs: 1, nanos: 0 });
        assert_eq!(
            m,
            Timestamp {
                secs: i64::from(u32::MAX),
                nanos: 0
            }
        );
    }

    #[test]
    fn rest_drops_mode_and_optionally_size() {
        let s = SetAttr {
            mode: Some(0o600),
            size: Some(0),
            ..SetAttr::default()
        };
        assert_eq!(rest(&s, false), None);
        assert_eq!(rest(&s, true).unwrap().size, Some(0));
    }
}
