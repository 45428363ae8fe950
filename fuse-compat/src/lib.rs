//! # nokv-fuse
//!
//! The FUSE frontend of NoKV: a thin adapter from kernel FUSE requests (via `fuser`) onto
//! the one core API, [`nokv_core::Fs`]. It owns only what FUSE itself needs: the mapping of
//! file ids to inode numbers, per-open handles, the kernel's lookup counts, mount options
//! and the mount's lifetime. Every filesystem rule lives in the core.
//!
//! Modules: `config` ([`MountConfig`]), `convert` (errno, attributes, inode numbers),
//! `handles` (open handles and lookup counts), `shared` (per-mount state and replies),
//! `ops` (the `fuser::Filesystem` implementation), `file` and `dir` (handle-based
//! operations), `notify` (kernel cache invalidation for workspace operations), and this
//! module: [`FuseMount`], a mounted volume.

mod config;
mod convert;
mod dir;
mod file;
mod handles;
mod notify;
mod ops;
mod shared;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use fuser::{MountOption, SessionACL, SessionUnmounter};
use nokv_core::Fs;
use tokio::sync::watch;

pub use config::MountConfig;

use shared::State;

/// Errors of mounting and unmounting.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The kernel mount or the FUSE handshake failed.
    #[error("mounting {path}: {err}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        #[source]
        err: std::io::Error,
    },
    /// Unmounting failed (e.g. busy).
    #[error("unmounting {path}: {err}")]
    Unmount {
        /// The mount point.
        path: PathBuf,
        /// What went wrong.
        #[source]
        err: std::io::Error,
    },
}

/// A mounted volume. The mount serves requests on its own threads (request readers) and on
/// the tokio runtime given to [`FuseMount::mount`] (request handling) until it is unmounted,
/// by [`FuseMount::unmount`] or from outside (`umount`, `fusermount3 -u`).
pub struct FuseMount {
    path: PathBuf,
    unmounter: SessionUnmounter,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    ended: watch::Receiver<bool>,
    state: Arc<State>,
    /// Taken (ended) before unmounting: see `notify::InvalidationGuard`.
    invalidations: Option<notify::InvalidationGuard>,
}

impl FuseMount {
    /// Mounts `fs` (from `cfg.root` down) at `path`. Returns once the kernel mount is live
    /// and the FUSE handshake is done. Requests run on `rt`.
    pub fn mount(
        fs: Fs,
        rt: tokio::runtime::Handle,
        path: &Path,
        cfg: &MountConfig,
    ) -> Result<FuseMount, MountError> {
        let state = Arc::new(State::new(fs, cfg.root, cfg));
        let handler = ops::NokvFuse {
            s: state.clone(),
            rt,
        };
        let mut options = vec![
            MountOption::FSName(cfg.fsname.clone()),
            MountOption::Subtype("nokv".into()),
            MountOption::NoAtime,
            MountOption::Dev,
            MountOption::Suid,
        ];
        if cfg.read_only {
            options.push(MountOption::RO);
        }
        if cfg.default_permissions {
            options.push(MountOption::DefaultPermissions);
        }
        if cfg.auto_unmount {
            options.push(MountOption::AutoUnmount);
        }
        let mut config = fuser::Config::default();
        config.mount_options = options;
        config.acl = if cfg.allow_other {
            SessionACL::All
        } else {
            SessionACL::RootAndOwner
        };
        config.n_threads = Some(cfg.threads.max(1));
        config.clone_fd = true;
        let mount_err = |err| MountError::Mount {
            path: path.to_path_buf(),
            err,
        };
        let mut session = fuser::Session::new(handler, path, &config).map_err(mount_err)?;
        let unmounter = session.unmount_callable();
        let invalidations = notify::start(state.clone(), session.notifier()).map_err(mount_err)?;
        let (tx, ended) = watch::channel(false);
        let thread = std::thread::Builder::new()
            .name("nokv-fuse".into())
            .spawn(move || {
                let r = session.run();
                let _ = tx.send(true);
                r
            })
            .map_err(mount_err)?;
        Ok(FuseMount {
            path: path.to_path_buf(),
            unmounter,
            thread: Some(thread),
            ended,
            state,
            invalidations: Some(invalidations),
        })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until the mount ends (unmounted from outside, or by [`FuseMount::unmount`]).
    pub async fn ended(&self) {
        let mut rx = self.ended.clone();
        let _ = rx.wait_for(|e| *e).await;
    }

    /// Inodes the kernel currently holds references to (its lookup counts, less `forget`).
    pub fn kernel_inodes(&self) -> usize {
        self.state.lookups.len()
    }

    /// Open file and directory handles.
    pub fn open_handles(&self) -> usize {
        self.state.handles.len()
    }

    /// Unmounts (lazily if busy, as `umount -l`) and waits for the request loop to stop.
    /// Handles still open are released by the kernel first, so their writes are published.
    pub fn unmount(mut self) -> Result<(), MountError> {
        let err = |err| MountError::Unmount {
            path: self.path.clone(),
            err,
        };
        drop(self.invalidations.take());
        // Done here rather than by `fusermount3`: its auto-unmount watcher only unmounts a
        // mount whose server is gone, and this server is still alive.
        kernel_unmount(&self.path).map_err(err)?;
        self.unmounter.unmount().map_err(err)?;
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(r) => r.map_err(err)?,
                Err(_) => return Err(err(std::io::Error::other("FUSE thread panicked"))),
            }
        }
        Ok(())
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        drop(self.invalidations.take());
        if self.thread.is_some() {
            let _ = kernel_unmount(&self.path);
        }
        let _ = self.unmounter.unmount();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Unmounts `path`: plainly, or lazily when busy (the kernel then ends the session once the
/// last user is gone); through `fusermount3 -u -z` when not allowed (not root).
fn kernel_unmount(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("mount point contains NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        // Not mounted (any more).
        Some(libc::EINVAL) | Some(libc::ENOENT) => Ok(()),
        Some(libc::EBUSY) => {
            tracing::warn!(path = %path.display(), "mount busy: detaching it lazily");
            // SAFETY: as above.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        }
        Some(libc::EPERM) => {
            let st = std::process::Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(path)
                .status()?;
            if st.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!("fusermount3 -u -z: {st}")))
            }
        }
        _ => Err(e),
    }
}
