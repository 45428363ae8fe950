//! ONC RPC over TCP (RFC 5531): record marking, call headers, credentials, reply headers.
//!
//! A call is parsed by hand, with every length bounded, so that any credential flavor (not
//! only those `nfs3_types` knows) gets a proper `AUTH_ERROR` instead of being dropped, and
//! no client input can make the server allocate more than one record.
//!
//! Replies are built in one buffer that starts with a 4-byte record mark, filled in by
//! [`Reply::finish`], so each reply is written as a single last fragment. A READ reply's
//! data is not copied into that buffer: it travels as the [`Reply`]'s tail (the core's
//! bytes, shared) and is written after the head with one vectored write.

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::xdr::{Decoder, Garbage};

/// Largest record accepted (a 1 MiB WRITE plus headers, with room to spare).
pub const MAX_RECORD: usize = 2 << 20;
/// Largest credential or verifier body (RFC 5531).
const MAX_AUTH: usize = 400;

const CALL: u32 = 0;
const REPLY: u32 = 1;
const MSG_ACCEPTED: u32 = 0;
const MSG_DENIED: u32 = 1;
const RPC_MISMATCH: u32 = 0;
const AUTH_ERROR: u32 = 1;
/// `AUTH_NULL` flavor.
pub const AUTH_NULL: u32 = 0;
/// `AUTH_UNIX` (`AUTH_SYS`) flavor.
pub const AUTH_UNIX: u32 = 1;

/// `accept_stat` values used in replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// The procedure ran; its result follows.
    Success,
    /// Program not served here.
    ProgUnavail,
    /// Program served, version not (lowest and highest served).
    ProgMismatch(u32, u32),
    /// Procedure number unknown.
    ProcUnavail,
    /// The arguments could not be decoded.
    GarbageArgs,
    /// The server failed to build a reply.
    SystemErr,
}

/// `auth_stat` values used in `AUTH_ERROR` replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStat {
    /// Malformed credential.
    BadCred = 1,
    /// The credential's user is not served.
    RejectedCred = 2,
    /// The flavor is not accepted.
    TooWeak = 5,
}

/// The AUTH_UNIX credential's identity (supplementary groups are not used by the core).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixCred {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
}

/// The credential of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cred {
    /// `AUTH_UNIX` with its identity.
    Unix(UnixCred),
    /// `AUTH_UNIX` whose body does not decode.
    BadUnix,
    /// Any other flavor (`AUTH_NULL` included).
    Other(u32),
}

/// A decoded call header; the procedure's arguments start at `args_at` in the record.
#[derive(Debug, Clone, Copy)]
pub struct Call {
    /// Transaction id, echoed in the reply.
    pub xid: u32,
    /// RPC version (must be 2).
    pub rpcvers: u32,
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number.
    pub proc_: u32,
    /// Who is calling.
    pub cred: Cred,
    /// Offset of the arguments in the record.
    pub args_at: usize,
}

/// Parses the call header of `record`. `None`: not a call at all (or too short to answer),
/// which is dropped.
pub fn parse_call(record: &[u8]) -> Option<Call> {
    let mut d = Decoder::new(record);
    let xid = d.u32().ok()?;
    if d.u32().ok()? != CALL {
        return None;
    }
    let header = (|| -> Result<Call, Garbage> {
        let rpcvers = d.u32()?;
        let prog = d.u32()?;
        let vers = d.u32()?;
        let proc_ = d.u32()?;
        let flavor = d.u32()?;
        let body = d.opaque(MAX_AUTH)?;
        let _verf_flavor = d.u32()?;
        let _verf = d.opaque(MAX_AUTH)?;
        let cred = match flavor {
            AUTH_UNIX => parse_unix(body).map_or(Cred::BadUnix, Cred::Unix),
            f => Cred::Other(f),
        };
        Ok(Call {
            xid,
            rpcvers,
            prog,
            vers,
            proc_,
            cred,
            args_at: d.position(),
        })
    })();
    header.ok()
}

fn parse_unix(body: &[u8]) -> Option<UnixCred> {
    let mut d = Decoder::new(body);
    let _stamp = d.u32().ok()?;
    let _machine = d.opaque(255).ok()?;
    let uid = d.u32().ok()?;
    let gid = d.u32().ok()?;
    let ngids = d.u32().ok()?;
    if ngids > 16 {
        return None;
    }
    for _ in 0..ngids {
        d.u32().ok()?;
    }
    Some(UnixCred { uid, gid })
}

/// A reply buffer with room for the record mark.
pub fn new_record() -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&[0; 4]);
    out
}

fn put(out: &mut Vec<u8>, words: &[u32]) {
    for w in words {
        out.extend_from_slice(&w.to_be_bytes());
    }
}

/// Appends an accepted-reply header (null verifier) with `accept`; for
/// [`Accept::Success`] the procedure's result is appended next by the caller.
pub fn accepted(out: &mut Vec<u8>, xid: u32, accept: Accept) {
    put(out, &[xid, REPLY, MSG_ACCEPTED, AUTH_NULL, 0]);
    match accept {
        Accept::Success => put(out, &[0]),
        Accept::ProgUnavail => put(out, &[1]),
        Accept::ProgMismatch(lo, hi) => put(out, &[2, lo, hi]),
        Accept::ProcUnavail => put(out, &[3]),
        Accept::GarbageArgs => put(out, &[4]),
        Accept::SystemErr => put(out, &[5]),
    }
}

/// Appends a denied reply: RPC version mismatch (only version 2 is served).
pub fn rpc_mismatch(out: &mut Vec<u8>, xid: u32) {
    put(out, &[xid, REPLY, MSG_DENIED, RPC_MISMATCH, 2, 2]);
}

/// Appends a denied reply: authentication error.
pub fn auth_error(out: &mut Vec<u8>, xid: u32, stat: AuthStat) {
    put(out, &[xid, REPLY, MSG_DENIED, AUTH_ERROR, stat as u32]);
}

/// Zero bytes that pad XDR opaque data to a multiple of four.
const PAD: [u8; 3] = [0; 3];

/// One reply record as written: `head` (record mark, headers, result), then `tail` (the
/// bytes of a variable-length opaque that ends the result, whose length word is the last
/// word of `head`), then the XDR padding of `tail`.
#[derive(Debug, Default)]
pub struct Reply {
    /// Record mark, reply header and the encoded result up to the tail's length word.
    pub head: Vec<u8>,
    /// The opaque data that ends the result (empty for most replies).
    pub tail: Bytes,
}

impl Reply {
    /// Padding after the tail.
    pub fn pad(&self) -> &'static [u8] {
        &PAD[..(4 - self.tail.len() % 4) % 4]
    }

    /// Fills in the record mark (one last fragment), once head and tail are final.
    pub fn finish(&mut self) {
        let len = (self.head.len() - 4 + self.tail.len() + self.pad().len()) as u32;
        let mark = (len & 0x7fff_ffff) | 0x8000_0000;
        self.head[0..4].copy_from_slice(&mark.to_be_bytes());
    }
}

/// Why reading a record stopped.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The peer closed the connection between records.
    #[error("connection closed")]
    Closed,
    /// A record larger than [`MAX_RECORD`].
    #[error("record of more than {MAX_RECORD} bytes")]
    TooLarge,
    /// The socket failed (or closed inside a record).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one record (all its fragments) into `buf`, which is cleared first.
pub async fn read_record<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
) -> Result<(), RecordError> {
    buf.clear();
    loop {
        let mut mark = [0u8; 4];
        match r.read_exact(&mut mark).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && buf.is_empty() => {
                return Err(RecordError::Closed)
            }
            Err(e) => return Err(e.into()),
        }
        let mark = u32::from_be_bytes(mark);
        let len = (mark & 0x7fff_ffff) as usize;
        if buf.len() + len > MAX_RECORD {
            return Err(RecordError::TooLarge);
        }
        // Read straight into spare capacity: no zero-filling of up to a megabyte per WRITE.
        let want = buf.len() + len;
        buf.reserve_exact(len);
        while buf.len() < want {
            let n = (&mut *r)
                .take((want - buf.len()) as u64)
                .read_buf(buf)
                .await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
        if mark & 0x8000_0000 != 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| w.to_be_bytes()).collect()
    }

    fn unix_body(uid: u32, gid: u32) -> Vec<u8> {
        let mut b = words(&[0, 4]);
        b.extend_from_slice(b"host");
        b.extend_from_slice(&words(&[uid, gid, 1, 7]));
        b
    }

    #[test]
    fn parses_an_auth_unix_call() {
        let body = unix_body(1000, 100);
        let mut rec = words(&[9, CALL, 2, 100_003, 3, 1, AUTH_UNIX, body.len() as u32]);
        rec.extend_from_slice(&body);
        rec.extend_from_slice(&words(&[0, 0, 0xdead]));
        let c = parse_call(&rec).unwrap();
        assert_eq!((c.xid, c.prog, c.vers, c.proc_), (9, 100_003, 3, 1));
        assert_eq!(
            c.cred,
            Cred::Unix(UnixCred {
                uid: 1000,
                gid: 100
            })
        );
        assert_eq!(&rec[c.args_at..], &words(&[0xdead])[..]);
    }

    #[test]
    fn unknown_flavors_and_bad_bodies_are_reported_not_dropped() {
        let rec = words(&[1, CALL, 2, 100_003, 3, 0, 6, 0, 0, 0]);
        assert_eq!(parse_call(&rec).unwrap().cred, Cred::Other(6));
        let rec = words(&[1, CALL, 2, 100_003, 3, 0, AUTH_UNIX, 4, 0, 0, 0]);
        assert_eq!(parse_call(&rec).unwrap().cred, Cred::BadUnix);
    }

    #[test]
    fn truncated_or_non_call_records_are_dropped() {
        assert!(parse_call(&[]).is_none());
        assert!(parse_call(&words(&[1, REPLY])).is_none());
        for n in 0..40 {
            let rec = words(&[1, CALL, 2, 100_003, 3, 0, AUTH_UNIX, 4, 0, 0]);
            let _ = parse_call(&rec[..n.min(rec.len())]);
        }
    }

    #[tokio::test]
    async fn records_are_reassembled_and_bounded() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&3u32.to_be_bytes());
        wire.extend_from_slice(b"abc");
        wire.extend_from_slice(&(0x8000_0002u32).to_be_bytes());
        wire.extend_from_slice(b"de");
        let mut buf = Vec::new();
        read_record(&mut &wire[..], &mut buf).await.unwrap();
        assert_eq!(buf, b"abcde");
        assert!(matches!(
            read_record(&mut &[][..], &mut buf).await,
            Err(RecordError::Closed)
        ));
        let huge = 0xffff_ffffu32.to_be_bytes();
        assert!(matches!(
            read_record(&mut &huge[..], &mut buf).await,
            Err(RecordError::TooLarge)
        ));
        // The connection closing inside a record is an I/O error, not a short record.
        let mut cut = (0x8000_0010u32).to_be_bytes().to_vec();
        cut.extend_from_slice(b"only ten b");
        assert!(matches!(
            read_record(&mut &cut[..], &mut buf).await,
            Err(RecordError::Io(_))
        ));
    }
}
