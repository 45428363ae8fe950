//! Decoding of call arguments: a bounded, borrowing XDR reader.
//!
//! Replies are encoded with `nfs3_types` (`Pack`). Arguments are decoded here instead, because
//! `nfs3_types`' `Unpack` allocates whatever length a client declares before reading it and
//! copies every opaque (a WRITE payload included). This reader borrows from the received
//! record and checks every length against what is left, so no client input can make it
//! allocate, panic or read out of bounds: a short or malformed argument is [`Garbage`], which
//! the dispatcher answers with `GARBAGE_ARGS`.
//!
//! The argument layouts are those of RFC 1813 (NFSv3) and its MOUNT appendix.

use nokv_core::{SetAttr, SetTime, Timestamp};

/// Malformed arguments (answered `GARBAGE_ARGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed call arguments")]
pub struct Garbage;

/// Longest file handle a client may send (`NFS3_FHSIZE`).
pub const FHSIZE: usize = 64;

/// A cursor over one received record.
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// `diropargs3`: a directory handle and a name in it.
pub struct DirOp<'a> {
    /// The directory's handle bytes.
    pub dir: &'a [u8],
    /// The name (not validated here; the core checks names).
    pub name: &'a [u8],
}

/// `sattr3`, decoded into the core's terms (`ctime` is never set by a client).
pub type Sattr = SetAttr;

impl<'a> Decoder<'a> {
    /// A decoder over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Garbage> {
        let end = self.pos.checked_add(n).ok_or(Garbage)?;
        let s = self.buf.get(self.pos..end).ok_or(Garbage)?;
        self.pos = end;
        Ok(s)
    }

    /// A big-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, Garbage> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A big-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, Garbage> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    /// An XDR bool (only 0 and 1 are valid).
    pub fn bool(&mut self) -> Result<bool, Garbage> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Garbage),
        }
    }

    /// Fixed-size opaque of 8 bytes (verifiers).
    pub fn fixed8(&mut self) -> Result<[u8; 8], Garbage> {
        let b = self.take(8)?;
        let mut out = [0u8; 8];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// Variable-length opaque of at most `max` bytes, plus its padding.
    pub fn opaque(&mut self, max: usize) -> Result<&'a [u8], Garbage> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Garbage);
        }
        let data = self.take(len)?;
        self.take((4 - len % 4) % 4)?;
        Ok(data)
    }

    /// A file handle (`nfs_fh3`): its bytes, checked only for length here.
    pub fn fh(&mut self) -> Result<&'a [u8], Garbage> {
        self.opaque(FHSIZE)
    }

    /// A name or path: bounded by the record itself, so that an over-long name reaches the
    /// core and gets `NAMETOOLONG` instead of `GARBAGE_ARGS`.
    pub fn string(&mut self) -> Result<&'a [u8], Garbage> {
        self.opaque(usize::MAX)
    }

    /// `diropargs3`.
    pub fn dirop(&mut self) -> Result<DirOp<'a>, Garbage> {
        Ok(DirOp {
            dir: self.fh()?,
            name: self.string()?,
        })
    }

    /// `nfstime3`.
    pub fn time(&mut self) -> Result<Timestamp, Garbage> {
        let secs = self.u32()?;
        let nanos = self.u32()?;
        if nanos >= 1_000_000_000 {
            return Err(Garbage);
        }
        Ok(Timestamp {
            secs: i64::from(secs),
            nanos,
        })
    }

    fn set_time(&mut self) -> Result<Option<SetTime>, Garbage> {
        match self.u32()? {
            0 => Ok(None),
            1 => Ok(Some(SetTime::Now)),
            2 => Ok(Some(SetTime::At(self.time()?))),
            _ => Err(Garbage),
        }
    }

    /// `sattr3`.
    pub fn sattr(&mut self) -> Result<Sattr, Garbage> {
        let mode = if self.bool()? {
            Some(self.u32()?)
        } else {
            None
        };
        let uid = if self.bool()? {
            Some(self.u32()?)
        } else {
            None
        };
        let gid = if self.bool()? {
            Some(self.u32()?)
        } else {
            None
        };
        let size = if self.bool()? {
            Some(self.u64()?)
        } else {
            None
        };
        let atime = self.set_time()?;
        let mtime = self.set_time()?;
        Ok(SetAttr {
            mode,
            uid,
            gid,
            size,
            atime,
            mtime,
            ctime: None,
            opened_for_write: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    #[test]
    fn opaque_reads_padding_and_bounds_lengths() {
        let mut buf = words(&[3]);
        buf.extend_from_slice(b"abc\0");
        buf.extend_from_slice(&words(&[7]));
        let mut d = Decoder::new(&buf);
        assert_eq!(d.opaque(10).unwrap(), b"abc");
        assert_eq!(d.position(), 8);
        // A declared length past the end is garbage, not a panic or an allocation.
        assert_eq!(d.opaque(10), Err(Garbage));
        let huge = words(&[u32::MAX]);
        assert_eq!(Decoder::new(&huge).string(), Err(Garbage));
        assert_eq!(Decoder::new(&huge).fh(), Err(Garbage));
    }

    #[test]
    fn sattr_decodes_every_field() {
        let buf = words(&[
            1, 0o640, 1, 10, 0, 1, 0, 42, 2, 5, 6, // mode uid (no gid) size atime(client)
            1, // mtime = server
        ]);
        let s = Decoder::new(&buf).sattr().unwrap();
        assert_eq!(s.mode, Some(0o640));
        assert_eq!(s.uid, Some(10));
        assert_eq!(s.gid, None);
        assert_eq!(s.size, Some(42));
        assert_eq!(s.atime, Some(SetTime::At(Timestamp { secs: 5, nanos: 6 })));
        assert_eq!(s.mtime, Some(SetTime::Now));
    }

    #[test]
    fn bad_discriminants_are_garbage() {
        assert_eq!(Decoder::new(&words(&[2])).bool(), Err(Garbage));
        let bad_time = words(&[0, 0, 0, 0, 3]);
        assert_eq!(Decoder::new(&bad_time).sattr(), Err(Garbage));
        let bad_nanos = words(&[1, 2_000_000_000]);
        assert_eq!(Decoder::new(&bad_nanos).time(), Err(Garbage));
    }
}
