//! SETATTR, WRITE, COMMIT, and the idle flush of uncommitted writes.
//!
//! Write sessions without open/close: NFS has no open, and the core's `write` needs none (it
//! opens a write session for the file on first write). So:
//! - WRITE UNSTABLE writes into the core's write session and answers UNSTABLE with this
//!   server start's verifier; the file is remembered as dirty.
//! - WRITE DATA_SYNC / FILE_SYNC, and COMMIT, call `Fs::fsync`: the session is published and
//!   all metadata made durable before the reply, which says FILE_SYNC.
//! - Files written UNSTABLE and then left alone (a client that never commits) are published
//!   (`Fs::flush`, not durable until the next group commit) once idle for the configured
//!   time, so staging space and the loss window stay bounded.
//! - Shutdown closes the volume, which publishes every session and makes it durable.
//!
//! The verifier is random per server start: after a restart, a client holding uncommitted
//! data sees a new verifier at its COMMIT and sends the data again (RFC 1813, 3.3.7).
//!
//! WRITE allows the file's owner even without write permission (as the Linux server does),
//! because the client checked permission when it opened the file and a file created
//! read-only by its owner must still take the data written through that open.

use std::time::{Duration, Instant};

use nfs3_types::nfs3::{
    nfsstat3, pre_op_attr, stable_how, wcc_data, writeverf3, COMMIT3res, COMMIT3resfail,
    COMMIT3resok, Nfs3Result, SETATTR3res, SETATTR3resfail, SETATTR3resok, WRITE3res,
    WRITE3resfail, WRITE3resok,
};
use nokv_core::{Attr, Caller, FileId};

use super::{log_failure, pack, Nfs, Out};
use crate::attr::{nfstime, wcc};
use crate::error::{NfsError, NfsResult};
use crate::xdr::Decoder;

impl Nfs {
    pub(super) async fn setattr(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let fh = d.fh()?;
        let set = d.sattr()?;
        let guard = if d.bool()? { Some(d.time()?) } else { None };
        let a = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &SETATTR3res::Err((e.status(), SETATTR3resfail::default())),
                )
            }
        };
        let before = pre_op_attr::Some(wcc(&a));
        // The guard: the client's idea of the ctime must be current (RFC 1813, 3.3.2).
        if let Some(g) = guard {
            if nfstime(g) != nfstime(a.ctime) {
                let fail = SETATTR3resfail {
                    obj_wcc: wcc_data {
                        before,
                        after: self.post(&a),
                    },
                };
                return pack(out, &SETATTR3res::Err((nfsstat3::NFS3ERR_NOT_SYNC, fail)));
            }
        }
        let res: SETATTR3res = match self.fs.setattr(a.id, &set, caller).await {
            Ok(after) => Nfs3Result::Ok(SETATTR3resok {
                obj_wcc: wcc_data {
                    before,
                    after: self.post(&after),
                },
            }),
            Err(e) => {
                let e = NfsError::from(e);
                log_failure("SETATTR", &e);
                let obj_wcc = wcc_data {
                    before,
                    after: self.post_of(a.id).await,
                };
                Nfs3Result::Err((e.status(), SETATTR3resfail { obj_wcc }))
            }
        };
        pack(out, &res)
    }

    pub(super) async fn write(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let fh = d.fh()?;
        let off = d.u64()?;
        let count = d.u32()? as usize;
        let stable = d.u32()?;
        let data = d.string()?;
        let a = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => return pack(out, &WRITE3res::Err((e.status(), WRITE3resfail::default()))),
        };
        let res = match self.write_at(&a, off, count, stable, data, caller).await {
            Ok((n, committed)) => WRITE3res::Ok(WRITE3resok {
                file_wcc: self.wcc(&a).await,
                count: n,
                committed,
                verf: writeverf3(self.verf),
            }),
            Err(e) => {
                log_failure("WRITE", &e);
                let file_wcc = self.wcc(&a).await;
                WRITE3res::Err((e.status(), WRITE3resfail { file_wcc }))
            }
        };
        pack(out, &res)
    }

    async fn write_at(
        &self,
        a: &Attr,
        off: u64,
        count: usize,
        stable: u32,
        data: &[u8],
        caller: &Caller,
    ) -> NfsResult<(u32, stable_how)> {
        let data = data.get(..count).ok_or(NfsError::Protocol(
            nfsstat3::NFS3ERR_INVAL,
            "WRITE count larger than its data",
        ))?;
        if stable > 2 {
            return Err(NfsError::Protocol(
                nfsstat3::NFS3ERR_INVAL,
                "bad stable_how",
            ));
        }
        if caller.uid != a.uid && !self.may(a, 2, caller).await? {
            return Err(NfsError::Protocol(
                nfsstat3::NFS3ERR_ACCES,
                "no write permission",
            ));
        }
        // As a local filesystem under knfsd: a write by anyone but root clears setuid/setgid;
        // any write removes file capabilities.
        self.fs.before_write(a.id, caller.uid == 0).await?;
        let n = self.fs.write(a.id, off, data).await?;
        if stable == stable_how::UNSTABLE as u32 {
            self.dirty.lock().insert(a.id, Instant::now());
            return Ok((n, stable_how::UNSTABLE));
        }
        self.fs.fsync(a.id).await?;
        self.dirty.lock().remove(&a.id);
        Ok((n, stable_how::FILE_SYNC))
    }

    pub(super) async fn commit(&self, d: &mut Decoder<'_>, out: &mut Vec<u8>) -> Out {
        let fh = d.fh()?;
        let _offset = d.u64()?;
        let _count = d.u32()?;
        let a = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => {
                let fail = COMMIT3resfail {
                    file_wcc: wcc_data::default(),
                };
                return pack(out, &COMMIT3res::Err((e.status(), fail)));
            }
        };
        // The whole file is committed whatever range is asked: sessions publish whole.
        let written_before = self.dirty.lock().get(&a.id).copied();
        let res = match self.fs.fsync(a.id).await {
            Ok(()) => {
                self.forget_if_unchanged(a.id, written_before);
                COMMIT3res::Ok(COMMIT3resok {
                    file_wcc: self.wcc(&a).await,
                    verf: writeverf3(self.verf),
                })
            }
            Err(e) => {
                let e = NfsError::from(e);
                log_failure("COMMIT", &e);
                let file_wcc = self.wcc(&a).await;
                COMMIT3res::Err((e.status(), COMMIT3resfail { file_wcc }))
            }
        };
        pack(out, &res)
    }

    /// Drops `id` from the dirty set unless it was written again since `seen`.
    fn forget_if_unchanged(&self, id: FileId, seen: Option<Instant>) {
        let mut dirty = self.dirty.lock();
        if dirty.get(&id).copied() == seen {
            dirty.remove(&id);
        }
    }

    /// Publishes the files written UNSTABLE and not written for `idle`; returns how many
    /// were published. A failure leaves the file dirty, to be retried next time.
    pub async fn flush_idle(&self, idle: Duration) -> usize {
        let now = Instant::now();
        let due: Vec<(FileId, Instant)> = self
            .dirty
            .lock()
            .iter()
            .filter(|(_, t)| now.duration_since(**t) >= idle)
            .map(|(id, t)| (*id, *t))
            .collect();
        let mut flushed = 0;
        for (id, t) in due {
            match self.fs.flush(id).await {
                Ok(()) => {
                    self.forget_if_unchanged(id, Some(t));
                    flushed += 1;
                }
                Err(e) => tracing::warn!(file = id.0, error = %e, "idle flush failed"),
            }
        }
        flushed
    }
}
