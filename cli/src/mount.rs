//! `nokv mount DIR` and `nokv umount DIR`: the FUSE frontend's lifetime.
//!
//! `mount` opens (or creates) the volume, mounts it with FUSE (`nokv-fuse`) and prints one
//! line once the mount is live, then serves in the foreground (logs on stderr) until it is
//! unmounted from outside or gets SIGINT/SIGTERM; either way it unmounts, closes the volume
//! (publishing pending writes, making metadata durable) and exits 0. `--background`
//! re-runs the same command detached (new session, logs appended to `DATA/mount.log`) and
//! returns once that child printed its ready line. Mounts use `auto_unmount` by default: if the server dies, `fusermount3`
//! removes the mount, so no stale mount is left.
//!
//! `umount` unmounts DIR and then waits until the serving process has closed the volume
//! (its `DATA/LOCK` is free), so everything is committed when it returns.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use nokv_core::{FileId, Fs};
use nokv_fuse::{FuseMount, MountConfig};
use tracing::{info, warn};

use crate::args::S3Args;
use crate::error::CliError;
use crate::open::{open, process_env, volume_config, Create};
use crate::serve::StopSignals;

/// Mount sources start with this, followed by the data directory.
const FSNAME_PREFIX: &str = "nokv:";
/// Where a `--background` server's logs go, inside the data directory.
const LOG_FILE: &str = "mount.log";
/// How long `umount` waits for the server to close the volume.
const CLOSE_WAIT: Duration = Duration::from_secs(120);

/// `nokv mount`.
#[derive(Debug, Args)]
pub struct MountArgs {
    /// Where to mount.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Detach once the mount is ready (the server keeps running in the background).
    #[arg(long)]
    pub background: bool,

    /// Mount read-only.
    #[arg(long)]
    pub read_only: bool,

    /// Let every user use the mount (FUSE `allow_other`).
    #[arg(long)]
    pub allow_other: bool,

    /// Let the kernel check permissions from mode bits (FUSE `default_permissions`).
    #[arg(long)]
    pub default_permissions: bool,

    /// Mount this volume path (a workspace or any directory) as the root.
    #[arg(long, value_name = "PATH", conflicts_with = "snapshot")]
    pub root: Option<String>,

    /// Mount this snapshot (read-only) as the root.
    #[arg(long, value_name = "NAME")]
    pub snapshot: Option<String>,

    /// Do not have fusermount3 remove the mount if the server dies.
    #[arg(long)]
    pub no_auto_unmount: bool,

    /// Seconds the kernel caches attributes and entries.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub cache_timeout: f64,

    /// GC grace period of this server (background GC and `/.nokv/gc`): unreferenced objects
    /// younger than this are kept, as they may be uploads in flight: `0`, `90s`, `15m`.
    #[arg(long, value_name = "DURATION", default_value = "15m",
          value_parser = crate::args::parse_duration)]
    pub gc_grace: std::time::Duration,

    /// Where the volume's blocks live.
    #[command(flatten)]
    pub s3: S3Args,
}

/// `nokv umount`.
#[derive(Debug, Args)]
pub struct UmountArgs {
    /// The mount point.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// Runs `nokv mount` to completion.
pub fn mount(data: &Path, args: &MountArgs) -> Result<(), CliError> {
    if args.background {
        return background(data);
    }
    crate::init_logging("info")?;
    let mut cfg = volume_config(data, &args.s3, process_env)?;
    cfg.gc_grace = args.gc_grace;
    let rt = crate::runtime()?;
    let result = rt.block_on(async {
        let mut stop = StopSignals::new()?;
        let volume = open(&cfg, Create::IfMissing)?;
        let fs = volume.fs().clone();
        let root = root_of(&fs, args).await;
        let mounted = root.and_then(|(root, snapshot)| {
            let mut m = MountConfig {
                root,
                read_only: args.read_only || snapshot,
                allow_other: args.allow_other,
                default_permissions: args.default_permissions,
                auto_unmount: !args.no_auto_unmount,
                attr_timeout: args.cache_timeout,
                entry_timeout: args.cache_timeout,
                negative_timeout: args.cache_timeout,
                ..MountConfig::default()
            };
            m.fsname = fsname(volume.data_dir());
            FuseMount::mount(fs, tokio::runtime::Handle::current(), &args.dir, &m)
                .map_err(CliError::Fuse)
        });
        let mounted = match mounted {
            Ok(m) => m,
            Err(e) => {
                let _ = volume.close().await;
                return Err(e);
            }
        };
        // CLI commands reach the volume through the admin socket while we hold it; host
        // paths under the mount translate to volume paths under what it shows.
        let shown = match (&args.snapshot, &args.root) {
            (Some(name), _) => format!("/.nokv/snapshots/{name}"),
            (None, Some(path)) => path.clone(),
            (None, None) => "/".to_string(),
        };
        let admin = crate::admin::start(
            volume.fs().clone(),
            crate::ops::VolumeInfo {
                pid: std::process::id(),
                volume: volume.id().to_string(),
                data_dir: volume.data_dir().to_path_buf(),
                objects: volume.objects().to_string(),
                nfs: None,
                mounts: vec![crate::hostpath::MountPoint {
                    host: std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone()),
                    volume: shown,
                }],
            },
        );
        let admin = match admin {
            Ok(guard) => Some(guard),
            Err(e) => {
                tracing::warn!(error = %e, "no admin socket: CLI commands cannot reach this mount");
                None
            }
        };
        ready_line(&format!(
            "nokv: mounted volume {} from {} at {}",
            volume.id(),
            volume.data_dir().display(),
            args.dir.display()
        ));
        tokio::select! {
            name = stop.next() => info!(signal = name, "stopping: unmounting"),
            () = mounted.ended() => info!("unmounted"),
        }
        drop(admin);
        unmount(mounted).await;
        info!("closing volume");
        volume
            .close()
            .await
            .map_err(CliError::core("closing volume"))?;
        info!("volume closed");
        Ok(())
    });
    crate::shutdown_runtime(rt);
    result
}

/// Mounts `fs` at `dir` for `nokv serve --fuse` (default options).
pub(crate) fn attach(fs: &Fs, data_dir: &Path, dir: &Path) -> Result<FuseMount, CliError> {
    let cfg = MountConfig {
        fsname: fsname(data_dir),
        ..MountConfig::default()
    };
    FuseMount::mount(fs.clone(), tokio::runtime::Handle::current(), dir, &cfg)
        .map_err(CliError::Fuse)
}

/// Unmounts (the kernel releases open files first) and waits for the request loop.
pub(crate) async fn unmount(m: FuseMount) {
    let path = m.path().to_path_buf();
    match tokio::task::spawn_blocking(move || m.unmount()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "unmount"),
        Err(e) => warn!(error = %e, path = %path.display(), "unmount task"),
    }
}

fn fsname(data_dir: &Path) -> String {
    format!("{FSNAME_PREFIX}{}", data_dir.display())
}

/// The mount root: a snapshot's root (read-only), a volume path, or the volume root.
async fn root_of(fs: &Fs, args: &MountArgs) -> Result<(FileId, bool), CliError> {
    if let Some(name) = &args.snapshot {
        let id = fs
            .resolve(&format!("/.nokv/snapshots/{name}"))
            .map_err(CliError::core("snapshot"))?;
        return Ok((id, true));
    }
    match &args.root {
        Some(path) => {
            let id = fs.resolve(path).map_err(CliError::core("--root"))?;
            let kind = fs.getattr(id).await.map_err(CliError::core("--root"))?.kind;
            if kind != nokv_core::FileType::Dir {
                return Err(CliError::io("--root")(std::io::Error::other(
                    "not a directory",
                )));
            }
            Ok((id, false))
        }
        None => Ok((FileId::ROOT, false)),
    }
}

/// Prints the ready line on stdout (a `--background` parent waits for it).
fn ready_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `--background`: runs this command again without it, in a new session, and returns once
/// the child printed its ready line (its exit status if it failed first).
fn background(data: &Path) -> Result<(), CliError> {
    let exe = std::env::current_exe().map_err(CliError::io("finding the nokv binary"))?;
    let args: Vec<_> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--background")
        .collect();
    // The detached server must not hold the caller's stderr open: it logs to DATA/mount.log.
    std::fs::create_dir_all(data).map_err(CliError::io("--data"))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join(LOG_FILE))
        .map_err(CliError::io("opening the mount log"))?;
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(CliError::io("starting the server"))?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.starts_with("nokv: mounted") {
        ready_line(line.trim_end());
        return Ok(());
    }
    let status = child
        .wait()
        .map_err(CliError::io("waiting for the server"))?;
    Err(CliError::io("mount")(std::io::Error::other(format!(
        "the background server exited ({status}) before the mount was ready"
    ))))
}

/// Runs `nokv umount` to completion.
pub fn umount(args: &UmountArgs) -> Result<(), CliError> {
    let dir = std::fs::canonicalize(&args.dir).unwrap_or_else(|_| args.dir.clone());
    let source = mount_source(&dir).ok_or_else(|| {
        CliError::io("umount")(std::io::Error::other(format!(
            "{} is not a nokv FUSE mount",
            dir.display()
        )))
    })?;
    unmount_path(&dir)?;
    // The serving process closes the volume once the kernel says the mount is gone.
    if let Some(data) = source.strip_prefix(FSNAME_PREFIX) {
        wait_lock_free(&Path::new(data).join("LOCK"))?;
    }
    Ok(())
}

/// The mount source of the FUSE mount at `dir`, from `/proc/self/mountinfo`.
fn mount_source(dir: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = dir.to_str()?;
    info.lines().rev().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        let point = left.split(' ').nth(4)?;
        let mut r = right.split(' ');
        let (fstype, source) = (r.next()?, r.next()?);
        (point == want && fstype == "fuse.nokv").then(|| source.to_string())
    })
}

fn unmount_path(dir: &Path) -> Result<(), CliError> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| CliError::io("umount")(std::io::Error::other("path contains NUL")))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() != Some(libc::EPERM) {
        return Err(CliError::io("umount")(err));
    }
    // Not root: the setuid helper may unmount a mount of ours.
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg(dir)
        .status()
        .map_err(CliError::io("running fusermount3 -u"))?;
    if !status.success() {
        return Err(CliError::io("umount")(std::io::Error::other(format!(
            "fusermount3 -u failed ({status})"
        ))));
    }
    Ok(())
}

/// Waits until nobody holds the volume lock at `path` (the server has closed the volume).
fn wait_lock_free(path: &Path) -> Result<(), CliError> {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let start = Instant::now();
    loop {
        // SAFETY: flock on a valid open descriptor.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            // SAFETY: as above.
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
            return Ok(());
        }
        if start.elapsed() > CLOSE_WAIT {
            return Err(CliError::io("umount")(std::io::Error::other(
                "unmounted, but the server has not closed the volume yet",
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn mount_arguments_parse() {
        let cli =
            Cli::try_parse_from(["nokv", "mount", "/mnt/x", "--read-only", "--snapshot", "s"])
                .unwrap();
        let Command::Mount(a) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert_eq!(a.dir, PathBuf::from("/mnt/x"));
        assert!(a.read_only && !a.background && !a.allow_other);
        assert_eq!(a.snapshot.as_deref(), Some("s"));
        assert!(Cli::try_parse_from(["nokv", "mount"]).is_err());
        assert!(
            Cli::try_parse_from(["nokv", "mount", "/m", "--root", "/a", "--snapshot", "s"])
                .is_err()
        );
        let cli = Cli::try_parse_from(["nokv", "serve", "--fuse", "/m"]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("parsed as another subcommand")
        };
        assert_eq!(s.fuse, Some(PathBuf::from("/m")));
    }

    #[test]
    fn fsname_names_the_data_dir() {
        assert_eq!(fsname(Path::new("/v/d")), "nokv:/v/d");
    }
}
