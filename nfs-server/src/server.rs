//! The TCP server: one listener for NFS and MOUNT, a task per connection, a task per call,
//! and a clean stop.
//!
//! Per connection, a reader takes records off the socket (through a buffer, so that a small
//! call costs one `recv`) and runs each call in its own task (clients pipeline many calls);
//! at most [`MAX_IN_FLIGHT`] run at once per connection. Each call task writes its own reply,
//! whole, under the connection's write lock, in completion order (RPC matches them by xid):
//! no hand-off to a writer task, which cost a task wake-up per call.
//!
//! [`NfsServer::shutdown`] stops accepting, stops reading new calls on every connection,
//! waits until every call already read has been answered (bounded by [`DRAIN_TIMEOUT`]),
//! then closes the connections and stops the idle flusher. The caller closes the volume
//! afterwards, which publishes every buffered write.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nokv_core::{Caller, Fs};
use tokio::io::{AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};

use crate::auth::AuthPolicy;
use crate::handle::volume_tag;
use crate::nfs::{Fault, Nfs};
use crate::rpc::{self, Accept, RecordError, Reply};
use crate::{mount, nfs};

/// Most calls of one connection running at once.
pub const MAX_IN_FLIGHT: usize = 64;
/// Longest wait for in-flight calls at shutdown.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0: any free port).
    pub listen: SocketAddr,
    /// Who may call.
    pub auth: AuthPolicy,
    /// Files written UNSTABLE and idle this long are published.
    pub idle_flush: Duration,
}

impl ServerConfig {
    /// Listen on `listen`, serve `auth`, publish idle writes after 5 seconds.
    pub fn new(listen: SocketAddr, auth: AuthPolicy) -> Self {
        ServerConfig {
            listen,
            auth,
            idle_flush: Duration::from_secs(5),
        }
    }
}

struct Shared {
    nfs: Nfs,
    auth: AuthPolicy,
}

/// A running server.
pub struct NfsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    acceptor: JoinHandle<()>,
    flusher: JoinHandle<()>,
}

/// A verifier that differs between server starts (random keys of std's hasher, the time and
/// the pid), so clients re-send unstable writes after a restart.
fn new_verifier() -> [u8; 8] {
    let mut h = RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(now.as_nanos());
    h.write_u32(std::process::id());
    h.finish().to_be_bytes()
}

impl NfsServer {
    /// Binds `cfg.listen` and starts serving `fs`, the filesystem of volume `volume_id`.
    pub async fn start(fs: Fs, volume_id: &str, cfg: ServerConfig) -> std::io::Result<NfsServer> {
        let listener = TcpListener::bind(cfg.listen).await?;
        Self::start_on(listener, fs, volume_id, cfg)
    }

    /// Starts serving `fs` on an already bound `listener` (`cfg.listen` is not used), so a
    /// caller can fail on a busy port before opening the volume.
    pub fn start_on(
        listener: TcpListener,
        fs: Fs,
        volume_id: &str,
        cfg: ServerConfig,
    ) -> std::io::Result<NfsServer> {
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            nfs: Nfs::new(fs, volume_tag(volume_id), new_verifier()),
            auth: cfg.auth.clone(),
        });
        let (stop, stopped) = watch::channel(false);
        let acceptor = tokio::spawn(accept_loop(listener, Arc::clone(&shared), stopped.clone()));
        let flusher = tokio::spawn(flush_loop(Arc::clone(&shared), cfg.idle_flush, stopped));
        info!(%addr, uids = ?cfg.auth.uids(), "NFS server listening");
        Ok(NfsServer {
            addr,
            shared,
            stop,
            acceptor,
            flusher,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The write verifier of this server start.
    pub fn write_verifier(&self) -> [u8; 8] {
        self.shared.nfs.verf
    }

    /// Stops the server: no new connections or calls, in-flight calls answered, connections
    /// closed. Buffered writes stay in the core for `Volume::close` to publish.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        if let Err(e) = self.acceptor.await {
            warn!(error = %e, "NFS acceptor ended abnormally");
        }
        let _ = self.flusher.await;
        info!("NFS server stopped");
    }
}

async fn flush_loop(shared: Arc<Shared>, idle: Duration, mut stop: watch::Receiver<bool>) {
    let tick = (idle / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(tick) => {
                let n = shared.nfs.flush_idle(idle).await;
                if n > 0 {
                    debug!(files = n, "published idle unstable writes");
                }
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((sock, peer)) => {
                    debug!(%peer, "NFS connection");
                    let _ = sock.set_nodelay(true);
                    conns.spawn(connection(sock, Arc::clone(&shared), stop.clone()));
                }
                Err(e) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(error = %e, "accepting an NFS connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = conns.len(),
            "NFS calls still running after {DRAIN_TIMEOUT:?}: abandoning them"
        );
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }
}

/// Serves one connection until the peer closes it or the server stops.
async fn connection(sock: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let peer = sock.peer_addr().ok();
    let (rd, wr) = sock.into_split();
    let mut rd = BufReader::with_capacity(READ_BUFFER, rd);
    let wr = Arc::new(ReplyWriter {
        sock: tokio::sync::Mutex::new(wr),
        broken: AtomicBool::new(false),
    });
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut calls = JoinSet::new();
    let mut buf = Vec::new();
    loop {
        while calls.try_join_next().is_some() {}
        if *stop.borrow() || wr.broken.load(Ordering::Relaxed) {
            break;
        }
        let slot = tokio::select! {
            _ = stop.changed() => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(s) => s,
                Err(_) => break,
            },
        };
        let read = tokio::select! {
            _ = stop.changed() => break,
            r = rpc::read_record(&mut rd, &mut buf) => r,
        };
        match read {
            Ok(()) => {}
            Err(RecordError::Closed) => break,
            Err(e) => {
                debug!(?peer, error = %e, "closing NFS connection");
                break;
            }
        }
        let record = std::mem::take(&mut buf);
        let shared = Arc::clone(&shared);
        let wr = Arc::clone(&wr);
        calls.spawn(async move {
            let _slot = slot;
            if let Some(reply) = call(&shared, &record).await {
                wr.send(&reply).await;
            }
        });
    }
    // Every call already read is answered before the connection closes.
    while calls.join_next().await.is_some() {}
    let _ = wr.sock.lock().await.shutdown().await;
}

/// Bytes read from the socket at a time: a few small calls, or the start of a WRITE.
const READ_BUFFER: usize = 64 << 10;

/// The sending half of a connection, shared by its call tasks.
struct ReplyWriter {
    /// Held for the whole of one reply, so records never interleave.
    sock: tokio::sync::Mutex<OwnedWriteHalf>,
    /// A send failed: the connection is gone, later replies are dropped.
    broken: AtomicBool,
}

impl ReplyWriter {
    async fn send(&self, reply: &Reply) {
        if self.broken.load(Ordering::Relaxed) {
            return;
        }
        let mut sock = self.sock.lock().await;
        if let Err(e) = write_reply(&mut *sock, reply).await {
            debug!(error = %e, "NFS reply not sent");
            self.broken.store(true, Ordering::Relaxed);
        }
    }
}

/// Writes a reply's head, tail and padding, with vectored writes (one system call when the
/// socket takes it all).
async fn write_reply<W: AsyncWrite + Unpin>(wr: &mut W, reply: &Reply) -> std::io::Result<()> {
    if reply.tail.is_empty() {
        return wr.write_all(&reply.head).await;
    }
    let parts: [&[u8]; 3] = [&reply.head, &reply.tail, reply.pad()];
    let (mut part, mut at) = (0, 0);
    while part < parts.len() {
        let mut slices = [std::io::IoSlice::new(&[]); 3];
        let mut k = 0;
        for (i, p) in parts.iter().enumerate().skip(part) {
            slices[k] = std::io::IoSlice::new(if i == part { &p[at..] } else { p });
            k += 1;
        }
        let mut n = wr.write_vectored(&slices[..k]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while part < parts.len() && n >= parts[part].len() - at {
            n -= parts[part].len() - at;
            part += 1;
            at = 0;
        }
        at += n;
    }
    Ok(())
}

/// Handles one call record; `None` when it gets no reply (not a call).
async fn call(shared: &Shared, record: &[u8]) -> Option<Reply> {
    let c = rpc::parse_call(record)?;
    let mut out = rpc::new_record();
    let mut tail = bytes::Bytes::new();
    if c.rpcvers != 2 {
        rpc::rpc_mismatch(&mut out, c.xid);
    } else {
        // The NULL procedure is a ping: clients send it without credentials.
        let caller = if c.proc_ == 0 {
            Ok(Caller {
                uid: u32::MAX,
                gid: u32::MAX,
            })
        } else {
            shared.auth.check(&c.cred)
        };
        match caller {
            Err(stat) => {
                warn!(cred = ?c.cred, prog = c.prog, proc_ = c.proc_, "refused a call: {stat:?}");
                rpc::auth_error(&mut out, c.xid, stat);
            }
            Ok(caller) => {
                let args = record.get(c.args_at..).unwrap_or_default();
                let start = out.len();
                rpc::accepted(&mut out, c.xid, Accept::Success);
                let result = match (c.prog, c.vers) {
                    (nfs::PROGRAM, nfs::VERSION) => {
                        (shared.nfs)
                            .dispatch(c.proc_, args, caller, &mut out, &mut tail)
                            .await
                    }
                    (mount::PROGRAM, mount::VERSION) => {
                        mount::dispatch(&shared.nfs, c.proc_, args, caller, &mut out).await
                    }
                    (nfs::PROGRAM | mount::PROGRAM, _) => mismatch(&mut out, start, c.xid),
                    _ => {
                        out.truncate(start);
                        rpc::accepted(&mut out, c.xid, Accept::ProgUnavail);
                        Ok(())
                    }
                };
                if let Err(fault) = result {
                    tail = bytes::Bytes::new();
                    out.truncate(start);
                    let accept = match fault {
                        Fault::Garbage => Accept::GarbageArgs,
                        Fault::NoProc => Accept::ProcUnavail,
                        Fault::System => Accept::SystemErr,
                    };
                    rpc::accepted(&mut out, c.xid, accept);
                }
            }
        }
    }
    let mut reply = Reply { head: out, tail };
    reply.finish();
    Some(reply)
}

/// Replaces the reply from `start` with a version mismatch (both programs serve only v3).
fn mismatch(out: &mut Vec<u8>, start: usize, xid: u32) -> Result<(), Fault> {
    out.truncate(start);
    rpc::accepted(out, xid, Accept::ProgMismatch(3, 3));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A reply with a tail reaches the wire as one record (mark, head, tail, padding), also
    /// through a pipe that takes a few bytes per write.
    #[tokio::test]
    async fn a_reply_with_a_tail_is_written_whole_through_short_writes() {
        for tail_len in [0usize, 1, 2, 3, 4, 5, 4099] {
            let tail: Vec<u8> = (0..tail_len).map(|i| (i % 251) as u8).collect();
            let mut head = rpc::new_record();
            head.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 9]);
            let mut reply = Reply {
                head,
                tail: bytes::Bytes::from(tail.clone()),
            };
            reply.finish();
            let (mut a, mut b) = tokio::io::duplex(7);
            let reader = tokio::spawn(async move {
                let mut got = Vec::new();
                b.read_to_end(&mut got).await.unwrap();
                got
            });
            write_reply(&mut a, &reply).await.unwrap();
            drop(a);
            let got = reader.await.unwrap();
            let pad = (4 - tail_len % 4) % 4;
            assert_eq!(got.len(), 4 + 8 + tail_len + pad, "tail of {tail_len}");
            let mark = u32::from_be_bytes(got[0..4].try_into().unwrap());
            assert_eq!(mark, 0x8000_0000 | (8 + tail_len + pad) as u32);
            assert_eq!(&got[4..12], &[1, 2, 3, 4, 0, 0, 0, 9]);
            assert_eq!(&got[12..12 + tail_len], &tail[..]);
            assert!(got[12 + tail_len..].iter().all(|b| *b == 0));
        }
    }
}
