//! Procedures that change nothing: GETATTR, LOOKUP, ACCESS, READLINK, READ, FSSTAT, FSINFO,
//! PATHCONF.
//!
//! ACCESS answers from the core's permission check ([`Fs::access`](nokv_core::Fs::access)),
//! bit by bit. READ allows the file's owner even without read permission, and anyone with
//! execute permission (a client reads an executable to run it), as the Linux server does:
//! NFS has no open, so the client checked permissions at its open and the server must not
//! refuse the owner's reads of a file it created read-only.

use nfs3_types::nfs3::{
    nfspath3, nfsstat3, nfstime3, post_op_attr, ACCESS3res, ACCESS3resfail, ACCESS3resok,
    FSINFO3res, FSINFO3resfail, FSINFO3resok, FSSTAT3res, FSSTAT3resfail, FSSTAT3resok,
    GETATTR3res, GETATTR3resok, LOOKUP3res, LOOKUP3resfail, LOOKUP3resok, Nfs3Result, PATHCONF3res,
    PATHCONF3resfail, PATHCONF3resok, READ3res, READ3resfail, READ3resok, READLINK3res,
    READLINK3resfail, READLINK3resok, ACCESS3_DELETE, ACCESS3_EXECUTE, ACCESS3_EXTEND,
    ACCESS3_LOOKUP, ACCESS3_MODIFY, ACCESS3_READ, FSF3_CANSETTIME, FSF3_HOMOGENEOUS, FSF3_SYMLINK,
};
use nfs3_types::xdr_codec::{Opaque, Void};
use nokv_core::{Attr, Caller, ErrorKind, FileType, FILE_SIZE_MAX, LINK_MAX, NAME_MAX};

use super::{log_failure, pack, Nfs, Out, IO_MAX};
use crate::error::{NfsError, NfsResult};
use crate::xdr::Decoder;

const R: u32 = 4;
const W: u32 = 2;
const X: u32 = 1;

impl Nfs {
    /// Whether `caller` has `mask` on `a` (a refusal is `false`, other failures errors).
    pub(super) async fn may(&self, a: &Attr, mask: u32, caller: &Caller) -> NfsResult<bool> {
        match self.fs.access(a.id, mask, caller).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn getattr(&self, d: &mut Decoder<'_>, out: &mut Vec<u8>) -> Out {
        let fh = d.fh()?;
        let res: GETATTR3res = match self.resolve(fh).await {
            Ok(a) => Nfs3Result::Ok(GETATTR3resok {
                obj_attributes: self.fattr(&a),
            }),
            Err(e) => {
                log_failure("GETATTR", &e);
                Nfs3Result::Err((e.status(), Void))
            }
        };
        pack(out, &res)
    }

    pub(super) async fn lookup(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let op = d.dirop()?;
        let dir = match self.resolve(op.dir).await {
            Ok(a) => a,
            Err(e) => {
                let fail = LOOKUP3resfail::default();
                return pack(out, &LOOKUP3res::Err((e.status(), fail)));
            }
        };
        let res: LOOKUP3res = match self.fs.lookup(dir.id, op.name, caller).await {
            Ok(a) => Nfs3Result::Ok(LOOKUP3resok {
                object: self.fh(&a),
                obj_attributes: self.post(&a),
                dir_attributes: self.post_of(dir.id).await,
            }),
            Err(e) => {
                let e = NfsError::from(e);
                log_failure("LOOKUP", &e);
                let fail = LOOKUP3resfail {
                    dir_attributes: self.post(&dir),
                };
                Nfs3Result::Err((e.status(), fail))
            }
        };
        pack(out, &res)
    }

    pub(super) async fn access(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let fh = d.fh()?;
        let want = d.u32()?;
        let res: ACCESS3res = match self.resolve(fh).await {
            Ok(a) => match self.granted(&a, want, caller).await {
                Ok(access) => Nfs3Result::Ok(ACCESS3resok {
                    obj_attributes: self.post(&a),
                    access,
                }),
                Err(e) => Nfs3Result::Err((
                    e.status(),
                    ACCESS3resfail {
                        obj_attributes: self.post(&a),
                    },
                )),
            },
            Err(e) => Nfs3Result::Err((e.status(), ACCESS3resfail::default())),
        };
        pack(out, &res)
    }

    /// The ACCESS bits of `want` that the mode bits grant `caller` on `a`.
    async fn granted(&self, a: &Attr, want: u32, caller: &Caller) -> NfsResult<u32> {
        let is_dir = a.kind == FileType::Dir;
        let mut got = 0;
        if want & ACCESS3_READ != 0 && self.may(a, R, caller).await? {
            got |= ACCESS3_READ;
        }
        let exec_bit = if is_dir {
            ACCESS3_LOOKUP
        } else {
            ACCESS3_EXECUTE
        };
        if want & exec_bit != 0 && self.may(a, X, caller).await? {
            got |= exec_bit;
        }
        let mut write_bits = ACCESS3_MODIFY | ACCESS3_EXTEND;
        if is_dir {
            write_bits |= ACCESS3_DELETE;
        }
        // A read-only tree (a snapshot) grants no write bits; ACCESS itself succeeds.
        let writable = match self.may(a, W, caller).await {
            Err(NfsError::Core(e)) if e.kind() == ErrorKind::ReadOnly => false,
            r => r?,
        };
        if want & write_bits != 0 && writable {
            got |= want & write_bits;
        }
        Ok(got)
    }

    pub(super) async fn readlink(&self, d: &mut Decoder<'_>, out: &mut Vec<u8>) -> Out {
        let fh = d.fh()?;
        let a = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &READLINK3res::Err((e.status(), READLINK3resfail::default())),
                )
            }
        };
        let res: READLINK3res = match self.fs.readlink(a.id).await {
            Ok(target) => Nfs3Result::Ok(READLINK3resok {
                symlink_attributes: self.post(&a),
                data: nfspath3(Opaque::owned(target)),
            }),
            Err(e) => Nfs3Result::Err((
                NfsError::from(e).status(),
                READLINK3resfail {
                    symlink_attributes: self.post(&a),
                },
            )),
        };
        pack(out, &res)
    }

    /// READ. The data is not encoded into `out`: the result is packed with empty data, its
    /// length word (the last word of `out`) is set to the data's length, and the data itself
    /// is left in `tail` for the writer to send after `out`, then its XDR padding.
    pub(super) async fn read(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
        tail: &mut bytes::Bytes,
    ) -> Out {
        let fh = d.fh()?;
        let off = d.u64()?;
        let count = d.u32()?.min(IO_MAX);
        let a = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => return pack(out, &READ3res::Err((e.status(), READ3resfail::default()))),
        };
        let fail = |e: NfsError, attrs: post_op_attr| {
            log_failure("READ", &e);
            READ3res::Err((
                e.status(),
                READ3resfail {
                    file_attributes: attrs,
                },
            ))
        };
        match self.may_read(&a, caller).await {
            Ok(true) => {}
            Ok(false) => {
                let e = NfsError::Protocol(nfsstat3::NFS3ERR_ACCES, "no read permission");
                return pack(out, &fail(e, self.post(&a)));
            }
            Err(e) => return pack(out, &fail(e, self.post(&a))),
        }
        let data = match self.fs.read(a.id, off, count).await {
            Ok(data) => data,
            Err(e) => return pack(out, &fail(e.into(), self.post(&a))),
        };
        let after = self.fs.getattr(a.id).await.unwrap_or(a);
        let res: READ3res<'_> = Nfs3Result::Ok(READ3resok {
            file_attributes: self.post(&after),
            count: data.len() as u32,
            eof: off.saturating_add(data.len() as u64) >= after.size,
            data: Opaque::borrowed(&[]),
        });
        pack(out, &res)?;
        // `data<>` is the last field: its length word ends `out`.
        let at = out.len() - 4;
        out[at..].copy_from_slice(&(data.len() as u32).to_be_bytes());
        *tail = data;
        Ok(())
    }

    /// READ permission: owner, read or execute (see the module docs).
    async fn may_read(&self, a: &Attr, caller: &Caller) -> NfsResult<bool> {
        Ok(caller.uid == a.uid || self.may(a, R, caller).await? || self.may(a, X, caller).await?)
    }

    pub(super) async fn fsstat(&self, d: &mut Decoder<'_>, out: &mut Vec<u8>) -> Out {
        let fh = d.fh()?;
        let a = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &FSSTAT3res::Err((e.status(), FSSTAT3resfail::default())),
                )
            }
        };
        let res: FSSTAT3res = match self.fs.statfs().await {
            Ok(s) => {
                let bs = u64::from(s.block_size);
                Nfs3Result::Ok(FSSTAT3resok {
                    obj_attributes: self.post(&a),
                    tbytes: s.blocks.saturating_mul(bs),
                    fbytes: s.blocks_free.saturating_mul(bs),
                    abytes: s.blocks_available.saturating_mul(bs),
                    tfiles: s.files,
                    ffiles: s.files_free,
                    afiles: s.files_free,
                    invarsec: 0,
                })
            }
            Err(e) => Nfs3Result::Err((
                NfsError::from(e).status(),
                FSSTAT3resfail {
                    obj_attributes: self.post(&a),
                },
            )),
        };
        pack(out, &res)
    }

    pub(super) async fn fsinfo(&self, d: &mut Decoder<'_>, out: &mut Vec<u8>) -> Out {
        let fh = d.fh()?;
        let res: FSINFO3res = match self.resolve(fh).await {
            Ok(a) => Nfs3Result::Ok(FSINFO3resok {
                obj_attributes: self.post(&a),
                rtmax: IO_MAX,
                rtpref: IO_MAX,
                rtmult: 4096,
                wtmax: IO_MAX,
                wtpref: IO_MAX,
                wtmult: 4096,
                dtpref: 64 * 1024,
                maxfilesize: FILE_SIZE_MAX,
                time_delta: nfstime3 {
                    seconds: 0,
                    nseconds: 1,
                },
                // No FSF3_LINK: LINK answers NOTSUPP.
                properties: FSF3_SYMLINK | FSF3_HOMOGENEOUS | FSF3_CANSETTIME,
            }),
            Err(e) => Nfs3Result::Err((e.status(), FSINFO3resfail::default())),
        };
        pack(out, &res)
    }

    pub(super) async fn pathconf(&self, d: &mut Decoder<'_>, out: &mut Vec<u8>) -> Out {
        let fh = d.fh()?;
        let res: PATHCONF3res = match self.resolve(fh).await {
            Ok(a) => Nfs3Result::Ok(PATHCONF3resok {
                obj_attributes: self.post(&a),
                linkmax: LINK_MAX,
                name_max: NAME_MAX as u32,
                no_trunc: true,
                chown_restricted: true,
                case_insensitive: false,
                case_preserving: true,
            }),
            Err(e) => Nfs3Result::Err((e.status(), PATHCONF3resfail::default())),
        };
        pack(out, &res)
    }
}
