//! READDIR and READDIRPLUS.
//!
//! Cookies are the core's readdir cookies (1 for `.`, 2 for `..`, then 63-bit name hashes):
//! stable across calls, restarts and concurrent changes, so a listing resumed from any cookie
//! neither loops nor repeats nor loses entries that were there throughout. Because every
//! cookie stays valid, the cookie verifier is always zero and the client's is not checked
//! (RFC 1813 allows this for servers whose cookies never go bad): no `BAD_COOKIE`.
//!
//! A reply holds as many entries as fit in the client's byte budget (`count` for READDIR;
//! `maxcount` for the whole READDIRPLUS reply and `dircount` for its names, cookies and ids).
//! Entries read from the core beyond the budget are dropped and read again by the next call.

use nfs3_types::nfs3::{
    cookieverf3, dirlist3, dirlistplus3, entry3, entryplus3, filename3, nfsstat3, post_op_attr,
    post_op_fh3, Nfs3Result, READDIR3res, READDIR3resfail, READDIR3resok, READDIRPLUS3res,
    READDIRPLUS3resfail, READDIRPLUS3resok,
};
use nfs3_types::xdr_codec::{List, Opaque, Pack};
use nokv_core::{Attr, Caller, DirEntry};

use super::{log_failure, pack, Nfs, Out};
use crate::error::NfsError;
use crate::xdr::Decoder;

/// Most entries asked of the core per call.
const CORE_LIMIT: usize = 4096;
/// Bytes of a reply around its entries: status, directory attributes, verifier, list end
/// marker, eof.
fn overhead(dir_attributes: &post_op_attr) -> usize {
    4 + dir_attributes.packed_size() + 8 + 4 + 4
}

/// Bytes of an entry's directory part (fileid, name, cookie) plus its list marker.
fn dir_part(name: &[u8]) -> usize {
    4 + 8 + 4 + name.len().div_ceil(4) * 4 + 8
}

impl Nfs {
    pub(super) async fn readdir(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let fh = d.fh()?;
        let cookie = d.u64()?;
        let _verf = d.fixed8()?;
        let count = d.u32()? as usize;
        let dir = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => {
                return pack(
                    out,
                    &READDIR3res::Err((e.status(), READDIR3resfail::default())),
                )
            }
        };
        let dir_attributes = self.post(&dir);
        let budget = count.saturating_sub(overhead(&dir_attributes));
        let limit = (budget / 24).clamp(1, CORE_LIMIT);
        let (entries, done) = match self.fs.readdir(dir.id, cookie, limit, caller).await {
            Ok(r) => r,
            Err(e) => {
                let e = NfsError::from(e);
                log_failure("READDIR", &e);
                let fail = READDIR3resfail { dir_attributes };
                return pack(out, &READDIR3res::Err((e.status(), fail)));
            }
        };
        let (mut used, mut list, mut eof) = (0, Vec::new(), done);
        for e in entries {
            let size = dir_part(&e.name);
            if used + size > budget {
                eof = false;
                break;
            }
            used += size;
            list.push(entry3 {
                fileid: e.id.0,
                name: filename3(Opaque::owned(e.name)),
                cookie: e.cookie,
            });
        }
        if list.is_empty() && !eof {
            let fail = READDIR3resfail { dir_attributes };
            return pack(out, &READDIR3res::Err((nfsstat3::NFS3ERR_TOOSMALL, fail)));
        }
        let res: READDIR3res<'_> = Nfs3Result::Ok(READDIR3resok {
            dir_attributes,
            cookieverf: cookieverf3::default(),
            reply: dirlist3 {
                entries: List(list),
                eof,
            },
        });
        pack(out, &res)
    }

    pub(super) async fn readdirplus(
        &self,
        d: &mut Decoder<'_>,
        caller: &Caller,
        out: &mut Vec<u8>,
    ) -> Out {
        let fh = d.fh()?;
        let cookie = d.u64()?;
        let _verf = d.fixed8()?;
        let dircount = d.u32()? as usize;
        let maxcount = d.u32()? as usize;
        let dir = match self.resolve(fh).await {
            Ok(a) => a,
            Err(e) => {
                let fail = READDIRPLUS3resfail::default();
                return pack(out, &READDIRPLUS3res::Err((e.status(), fail)));
            }
        };
        let dir_attributes = self.post(&dir);
        let budget = maxcount.saturating_sub(overhead(&dir_attributes));
        let limit = (budget / 128).clamp(1, CORE_LIMIT);
        let (entries, done) = match self.fs.readdir(dir.id, cookie, limit, caller).await {
            Ok(r) => r,
            Err(e) => {
                let e = NfsError::from(e);
                log_failure("READDIRPLUS", &e);
                let fail = READDIRPLUS3resfail { dir_attributes };
                return pack(out, &READDIRPLUS3res::Err((e.status(), fail)));
            }
        };
        let (mut used, mut dir_used, mut list, mut eof) = (0, 0, Vec::new(), done);
        for e in entries {
            let dir_size = dir_part(&e.name);
            let entry = self.entry_plus(&dir, e).await;
            let size = entry.packed_size() + 4;
            if used + size > budget || (!list.is_empty() && dir_used + dir_size > dircount) {
                eof = false;
                break;
            }
            used += size;
            dir_used += dir_size;
            list.push(entry);
        }
        if list.is_empty() && !eof {
            let fail = READDIRPLUS3resfail { dir_attributes };
            return pack(
                out,
                &READDIRPLUS3res::Err((nfsstat3::NFS3ERR_TOOSMALL, fail)),
            );
        }
        let res: READDIRPLUS3res<'_> = Nfs3Result::Ok(READDIRPLUS3resok {
            dir_attributes,
            cookieverf: cookieverf3::default(),
            reply: dirlistplus3 {
                entries: List(list),
                eof,
            },
        });
        pack(out, &res)
    }

    /// An entry with its attributes and handle (both omitted if the entry vanished since the
    /// listing read it).
    async fn entry_plus(&self, dir: &Attr, e: DirEntry) -> entryplus3<'static> {
        let attrs = if e.id == dir.id {
            Some(dir.clone())
        } else {
            self.fs.getattr(e.id).await.ok()
        };
        let (name_attributes, name_handle) = match attrs {
            Some(a) => (self.post(&a), post_op_fh3::Some(self.fh(&a))),
            None => (post_op_attr::None, post_op_fh3::None),
        };
        entryplus3 {
            fileid: e.id.0,
            name: filename3(Opaque::owned(e.name)),
            cookie: e.cookie,
            name_attributes,
            name_handle,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_part_matches_the_encoding() {
        for name in [&b"a"[..], b"abcd", b"abcde", b""] {
            let e = entry3 {
                fileid: 1,
                name: filename3(Opaque::borrowed(name)),
                cookie: 2,
            };
            assert_eq!(dir_part(name), e.packed_size() + 4);
        }
    }
}
