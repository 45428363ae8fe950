//! The admin socket: how CLI commands reach the process that holds the volume.
//!
//! A long-running command (`serve`, and `mount` once it exists) calls [`start`] after it has
//! opened the volume; the returned [`AdminGuard`] serves `DATA/admin.sock` (mode 0600) until
//! dropped, which removes the socket. Commands call [`Client::connect`]: no socket, or a
//! socket nobody listens on (left by a killed server), means no server, and the command
//! opens the volume itself — which fails naming the holder if a server does hold it.
//!
//! Protocol: newline-delimited JSON. The client sends `{"progress": bool, "request":
//! Request}` lines, one at a time; for each, the server answers any number of
//! `{"progress": {...}}` lines (only when asked, about every 200 ms) and then one
//! `{"reply": ...}` or `{"error": "message"}` line. A client that closes the connection
//! cancels its operation. The server runs requests with `ops::execute`, so a command
//! behaves the same through the socket as on a directly opened volume.
//!
//! Access: the socket file is 0600, and every connection's peer credentials
//! (`SO_PEERCRED`) must be the server's uid or root; the peer's uid and gid are the
//! caller of import and export. Host paths in requests are used by the server process
//! (which therefore has the same access as the client, or less).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nokv_core::{Caller, Fs};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::error::CliError;
use crate::ops::{self, Reply, Request, VolumeInfo};
use crate::progress::{Progress, Snapshot};

/// File name of the socket in the data directory.
pub const SOCKET_NAME: &str = "admin.sock";
/// How often progress lines are sent.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);
/// How long a client waits for the server's greeting.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// The socket path of the volume in `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

/// A request line.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    /// Send progress lines.
    progress: bool,
    request: Request,
}

/// A response line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Message {
    Progress(Snapshot),
    Reply(Box<Reply>),
    Error(String),
}

/// Serves the admin socket until dropped; dropping it stops serving (operations in
/// flight are cancelled) and removes the socket file.
pub struct AdminGuard {
    path: PathBuf,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl AdminGuard {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AdminGuard {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Starts serving `DATA/admin.sock` for the open volume `fs` described by `info`. The
/// caller MUST hold the volume (it has it open), so a socket file already there is stale
/// and is replaced. Needs a Tokio runtime.
pub fn start(fs: Fs, info: VolumeInfo) -> Result<AdminGuard, CliError> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(&info.data_dir);
    let io = |e| CliError::Admin {
        path: path.clone(),
        err: format!("{e}"),
    };
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
        _ => {}
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let task = tokio::spawn(accept(listener, fs, Arc::new(info), uid));
    info!(socket = %path.display(), "admin socket ready");
    Ok(AdminGuard {
        path,
        task: Some(task),
    })
}

async fn accept(listener: UnixListener, fs: Fs, info: Arc<VolumeInfo>, uid: u32) {
    // Dropped with this task: aborts the connections.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    conns.spawn(serve_conn(stream, fs.clone(), Arc::clone(&info), uid));
                }
                Err(e) => {
                    warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Whether a peer with `peer` uid may use a server running as `server`.
fn allowed(peer: u32, server: u32) -> bool {
    peer == server || peer == 0
}

async fn serve_conn(stream: UnixStream, fs: Fs, info: Arc<VolumeInfo>, uid: u32) {
    let cred = stream.peer_cred();
    let (r, mut w) = stream.into_split();
    let caller = match cred {
        Ok(c) if allowed(c.uid(), uid) => Caller {
            uid: c.uid(),
            gid: c.gid(),
        },
        Ok(c) => {
            let msg = format!(
                "permission denied: the server runs as uid {uid}; uid {} may not use it",
                c.uid()
            );
            let _ = send(&mut w, &Message::Error(msg)).await;
            return;
        }
        Err(e) => {
            warn!(error = %e, "admin socket: no peer credentials");
            return;
        }
    };
    let mut lines = BufReader::new(r).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let env: Envelope = match serde_json::from_str(&line) {
            Ok(env) => env,
            Err(e) => {
                let _ = send(&mut w, &Message::Error(format!("bad request: {e}"))).await;
                return;
            }
        };
        debug!(request = ?env.request, uid = caller.uid, "admin request");
        let progress = Progress::new();
        let op = ops::execute(&fs, &info, env.request, caller, &progress);
        tokio::pin!(op);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let result = loop {
            tokio::select! {
                r = &mut op => break r,
                _ = tick.tick(), if env.progress => {
                    if send(&mut w, &Message::Progress(progress.snapshot())).await.is_err() {
                        return;
                    }
                }
                // A client sends nothing while its request runs: EOF (or anything else)
                // means it went away, and the operation is cancelled.
                _ = lines.next_line() => {
                    debug!("admin client left: cancelling its request");
                    return;
                }
            }
        };
        let msg = match result {
            Ok(reply) => Message::Reply(Box::new(reply)),
            Err(e) => Message::Error(e.to_string()),
        };
        if send(&mut w, &msg).await.is_err() {
            return;
        }
    }
}

async fn send(w: &mut OwnedWriteHalf, msg: &Message) -> std::io::Result<()> {
    let mut line = serde_json::to_string(msg).map_err(std::io::Error::other)?;
    line.push('\n');
    w.write_all(line.as_bytes()).await?;
    w.flush().await
}

/// A connection to a running server.
pub struct Client {
    path: PathBuf,
    lines: Lines<BufReader<OwnedReadHalf>>,
    w: OwnedWriteHalf,
}

impl Client {
    /// Connects to the server of the volume in `data_dir`; `None` when no server listens
    /// there (no socket, or a stale one).
    pub async fn connect(data_dir: &Path) -> Option<Client> {
        let path = socket_path(data_dir);
        match UnixStream::connect(&path).await {
            Ok(s) => {
                let (r, w) = s.into_split();
                Some(Client {
                    path,
                    lines: BufReader::new(r).lines(),
                    w,
                })
            }
            Err(e) => {
                debug!(socket = %path.display(), error = %e, "no server: opening the volume");
                None
            }
        }
    }

    /// Asks who serves, within [`HELLO_TIMEOUT`].
    pub async fn hello(&mut self) -> Result<VolumeInfo, CliError> {
        let call = self.call(&Request::Hello, None);
        match tokio::time::timeout(HELLO_TIMEOUT, call).await {
            Ok(Ok(Reply::Hello(info))) => Ok(info),
            Ok(Ok(other)) => Err(self.err(format!("unexpected greeting {other:?}"))),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(self.err(format!(
                "the server did not answer within {}s",
                HELLO_TIMEOUT.as_secs()
            ))),
        }
    }

    /// Runs `req` on the server; progress lines update `progress` when given.
    pub async fn call(
        &mut self,
        req: &Request,
        progress: Option<&Progress>,
    ) -> Result<Reply, CliError> {
        let env = Envelope {
            progress: progress.is_some(),
            request: req.clone(),
        };
        let mut line = serde_json::to_string(&env).map_err(|e| self.err(e.to_string()))?;
        line.push('\n');
        let sent = async {
            self.w.write_all(line.as_bytes()).await?;
            self.w.flush().await
        }
        .await;
        sent.map_err(|e| self.err(e.to_string()))?;
        loop {
            let line = match self.lines.next_line().await {
                Ok(Some(l)) => l,
                Ok(None) => return Err(self.err("the server closed the connection".into())),
                Err(e) => return Err(self.err(e.to_string())),
            };
            match serde_json::from_str::<Message>(&line) {
                Ok(Message::Progress(s)) => {
                    if let Some(p) = progress {
                        p.set(s);
                    }
                }
                Ok(Message::Reply(r)) => return Ok(*r),
                Ok(Message::Error(m)) => return Err(CliError::Remote(m)),
                Err(e) => return Err(self.err(format!("bad answer: {e}"))),
            }
        }
    }

    fn err(&self, err: String) -> CliError {
        CliError::Admin {
            path: self.path.clone(),
            err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_uid_or_root_is_served() {
        assert!(allowed(1000, 1000));
        assert!(allowed(0, 1000));
        assert!(allowed(0, 0));
        assert!(!allowed(1001, 1000));
        assert!(!allowed(1000, 0));
    }

    #[test]
    fn messages_are_single_json_lines() {
        let m = Message::Error("no snapshot named \"x\"\nsecond".into());
        let line = serde_json::to_string(&m).unwrap();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"error":"#), "{line}");
        let env = Envelope {
            progress: true,
            request: Request::Fsck,
        };
        let line = serde_json::to_string(&env).unwrap();
        assert_eq!(line, r#"{"progress":true,"request":{"op":"fsck"}}"#);
    }

    #[tokio::test]
    async fn stale_socket_means_no_server() {
        let tmp = tempfile::tempdir().unwrap();
        // A socket file nobody listens on, as a killed server leaves it.
        let l = std::os::unix::net::UnixListener::bind(socket_path(tmp.path())).unwrap();
        drop(l);
        assert!(socket_path(tmp.path()).exists());
        assert!(Client::connect(tmp.path()).await.is_none());
        assert!(Client::connect(&tmp.path().join("missing")).await.is_none());
    }
}
