//! `nokv serve`: open (or create) the volume, export it over NFSv3 until SIGINT or SIGTERM,
//! close it.
//!
//! Startup: the volume is opened, then the NFS server (`nokv-nfs`) listens on `--listen`
//! (127.0.0.1:2049 by default; NFS and MOUNT on one TCP port), serving the owner of the data
//! directory, root and every `--allow-uid`; the admin socket (`DATA/admin.sock`, see
//! `admin`) starts serving CLI commands. Then the serving line and the mount commands for
//! Linux and macOS are printed on stdout.
//!
//! Shutdown contract: the first signal stops the NFS server (no new calls; calls already
//! received are answered), then closes the volume ([`Volume::close`] publishes pending
//! writes and makes metadata durable), and the process exits 0 once both are done. A second
//! signal during either gives up and exits 1, for a close stuck on an unreachable object
//! store; the volume then recovers as after a crash.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nokv_nfs::{AuthPolicy, NfsServer, ServerConfig};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tracing::{info, warn};

use crate::args::ServeArgs;
use crate::error::CliError;
use crate::open::{open, process_env, volume_config, Create};

/// Runs `nokv serve` to completion.
pub fn serve(data: &Path, args: &ServeArgs) -> Result<(), CliError> {
    crate::init_logging("info")?;
    let mut cfg = volume_config(data, &args.s3, process_env)?;
    cfg.gc_grace = args.gc_grace;
    let rt = crate::runtime()?;
    let result = rt.block_on(async {
        // Registered before the (possibly slow) open, so a signal during it is not lost.
        let mut stop = StopSignals::new()?;
        // Bound before the volume is opened: a busy port fails without touching the volume.
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|err| CliError::Listen {
                addr: args.listen,
                err,
            })?;
        let volume = open(&cfg, Create::IfMissing)?;
        info!(
            volume = %volume.id(),
            data_dir = %volume.data_dir().display(),
            objects = %volume.objects(),
            "volume open"
        );

        let policy = auth_policy(volume.data_dir(), &args.allow_uid);
        let config = ServerConfig::new(args.listen, policy);
        let server = match NfsServer::start_on(listener, volume.fs().clone(), volume.id(), config) {
            Ok(server) => server,
            Err(err) => {
                // Nothing was served; close cleanly all the same.
                let _ = volume.close().await;
                return Err(CliError::Listen {
                    addr: args.listen,
                    err,
                });
            }
        };

        let fuse = match &args.fuse {
            Some(dir) => match crate::mount::attach(volume.fs(), volume.data_dir(), dir) {
                Ok(m) => Some(m),
                Err(e) => {
                    server.shutdown().await;
                    let _ = volume.close().await;
                    return Err(e);
                }
            },
            None => None,
        };

        // CLI commands reach the volume through the admin socket while we hold it.
        let mounts = fuse
            .iter()
            .map(|m| crate::hostpath::MountPoint {
                host: std::fs::canonicalize(m.path()).unwrap_or_else(|_| m.path().to_path_buf()),
                volume: "/".into(),
            })
            .collect();
        let admin = crate::admin::start(
            volume.fs().clone(),
            crate::ops::VolumeInfo {
                pid: std::process::id(),
                volume: volume.id().to_string(),
                data_dir: volume.data_dir().to_path_buf(),
                objects: volume.objects().to_string(),
                nfs: Some(server.local_addr()),
                mounts,
            },
        );
        let admin = match admin {
            Ok(guard) => Some(guard),
            Err(e) => {
                warn!(error = %e, "no admin socket: CLI commands cannot reach this server");
                None
            }
        };

        let mut out = std::io::stdout().lock();
        // The server runs on even if nobody reads stdout any more.
        let _ = writeln!(
            out,
            "nokv: serving volume {} from {} (objects: {}) over NFSv3 on {}; press Ctrl-C to stop\n{}",
            volume.id(),
            volume.data_dir().display(),
            volume.objects(),
            server.local_addr(),
            mount_commands(server.local_addr())
        );
        if let Some(m) = &fuse {
            let _ = writeln!(out, "nokv: mounted with FUSE at {}", m.path().display());
        }
        let _ = out.flush();
        drop(out);

        let name = stop.next().await;
        // No new admin requests; those in flight are cancelled; the socket file goes.
        drop(admin);
        if let Some(m) = fuse {
            info!(signal = name, "stopping: unmounting FUSE");
            crate::mount::unmount(m).await;
        }
        info!(signal = name, "stopping: answering NFS calls in flight");
        tokio::select! {
            () = server.shutdown() => {}
            again = stop.next() => {
                warn!(signal = again, "second signal: abandoning the shutdown");
                return Err(CliError::CloseAbandoned(again));
            }
        }
        info!("NFS server stopped: closing volume");
        tokio::select! {
            closed = volume.close() => closed.map_err(CliError::core("closing volume"))?,
            again = stop.next() => {
                warn!(signal = again, "second signal: abandoning the close");
                return Err(CliError::CloseAbandoned(again));
            }
        }
        info!("volume closed");
        Ok(())
    });
    crate::shutdown_runtime(rt);
    result
}

/// Who is served: the data directory's owner, root, and `extra`.
fn auth_policy(data_dir: &Path, extra: &[u32]) -> AuthPolicy {
    let owner = std::fs::metadata(data_dir).map_or(0, |m| m.uid());
    AuthPolicy::allow([owner, 0].into_iter().chain(extra.iter().copied()))
}

/// The commands that mount the server at `addr` on Linux and on macOS.
pub fn mount_commands(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let host = match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    let p = addr.port();
    format!(
        "mount on Linux: mount -t nfs -o vers=3,tcp,port={p},mountport={p},mountproto=tcp,nolock,addr={ip} {host}:/ /mnt/nokv\n\
         mount on macOS: mount -t nfs -o vers=3,tcp,port={p},mountport={p},nolocks,locallocks {host}:/ /Volumes/nokv"
    )
}

/// SIGINT and SIGTERM as one stream.
pub(crate) struct StopSignals {
    int: Signal,
    term: Signal,
}

impl StopSignals {
    pub(crate) fn new() -> Result<Self, CliError> {
        let listen = |kind| signal(kind).map_err(CliError::io("installing signal handlers"));
        Ok(StopSignals {
            int: listen(SignalKind::interrupt())?,
            term: listen(SignalKind::terminate())?,
        })
    }

    /// Waits for the next stop signal and names it.
    pub(crate) async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.int.recv() => "SIGINT",
            _ = self.term.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_commands_name_the_port_twice_and_a_reachable_host() {
        let text = mount_commands("127.0.0.1:4049".parse().unwrap());
        assert!(text.contains(
            "mount -t nfs -o vers=3,tcp,port=4049,mountport=4049,mountproto=tcp,nolock,addr=127.0.0.1 127.0.0.1:/ /mnt/nokv"
        ), "{text}");
        assert!(text.contains("port=4049,mountport=4049,nolocks"), "{text}");
        let any = mount_commands("0.0.0.0:7".parse().unwrap());
        assert!(any.contains("addr=127.0.0.1 127.0.0.1:/"), "{any}");
        let v6 = mount_commands("[::]:7".parse().unwrap());
        assert!(v6.contains("addr=::1 [::1]:/"), "{v6}");
    }
}
