//! Opening a volume: a data directory holding the metadata store, the object root (or an S3
//! configuration), staging files and a lock.
//!
//! Layout of a data directory:
//! ```text
//! DATA/LOCK        flock()ed by the process that has the volume open; holds its pid + command
//! DATA/volume.id   the volume id (names the volume's objects), written once at creation
//! DATA/objects.location  where blocks live: `fs` or `s3 <endpoint> <bucket> <prefix>`
//! DATA/meta/       holt metadata store
//! DATA/objects/    OpenDAL fs object root (unless the volume's blocks live in S3)
//! DATA/staging/    write-session staging files (emptied at open)
//! ```
//! Invariant V1: at most one process has a volume open; a second one fails at once with an
//! error naming the holder (no waiting).
//! Invariant V2: a volume is always opened against the object store it was created with;
//! opening it with another one fails instead of showing missing data.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::{Fs, FsOptions};
use crate::object::{ObjectStore, OpendalStore, S3Config};
use crate::store::{HoltStore, MetaStore};

/// How to open a volume.
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// Store blocks in S3 instead of `DATA/objects`.
    pub s3: Option<S3Config>,
    /// Block cache size in bytes.
    pub cache_bytes: usize,
}

impl VolumeConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        VolumeConfig {
            data_dir: data_dir.into(),
            s3: None,
            cache_bytes: 256 << 20,
        }
    }
}

/// An open volume: the filesystem plus the lock that keeps it ours.
pub struct Volume {
    fs: Fs,
    id: String,
    data_dir: PathBuf,
    objects: String,
    _lock: File,
}

impl Volume {
    /// Opens (creating if needed) the volume in `cfg.data_dir`.
    pub fn open(cfg: &VolumeConfig) -> Result<Volume> {
        let dir = &cfg.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let lock = lock_dir(dir)?;
        let id = volume_id(dir)?;
        check_location(dir, cfg.s3.as_ref())?;
        let store: Arc<dyn MetaStore> = Arc::new(HoltStore::open(&dir.join("meta"))?);
        let objects: Arc<dyn ObjectStore> = match &cfg.s3 {
            Some(s3) => Arc::new(OpendalStore::s3(s3)?),
            None => Arc::new(OpendalStore::fs(&dir.join("objects"))?),
        };
        let describe = objects.describe();
        let mut opts = FsOptions::new(id.clone(), dir.join("staging"));
        opts.cache_bytes = cfg.cache_bytes;
        opts.statfs_path = Some(dir.clone());
        // SAFETY: geteuid/getegid have no preconditions.
        opts.root_owner = unsafe { (libc::geteuid(), libc::getegid()) };
        let fs = Fs::new(store, objects, opts)?;
        Ok(Volume {
            fs,
            id,
            data_dir: dir.clone(),
            objects: describe,
            _lock: lock,
        })
    }

    /// Whether `dir` holds a volume (without opening or creating anything).
    pub fn exists(dir: &Path) -> bool {
        dir.join("volume.id").is_file()
    }

    /// The filesystem.
    pub fn fs(&self) -> &Fs {
        &self.fs
    }

    /// The volume id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where blocks are stored ("fs:/...", "s3://...").
    pub fn objects(&self) -> &str {
        &self.objects
    }

    /// Publishes every pending write and makes all metadata durable.
    pub async fn close(self) -> Result<()> {
        self.fs.shutdown().await
    }
}

fn io(path: &Path, e: std::io::Error) -> FsError {
    let kind = if e.raw_os_error() == Some(libc::ENOSPC) {
        ErrorKind::NoSpace
    } else {
        ErrorKind::Io
    };
    FsError::new(kind, format!("{}: {e}", path.display()))
}

/// Takes the volume lock or fails naming the holder (V1).
fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    // SAFETY: flock on a valid open descriptor.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        let holder = holder.trim();
        return Err(FsError::new(
            ErrorKind::Busy,
            format!(
                "volume {} is in use by {}",
                dir.display(),
                if holder.is_empty() {
                    "another process"
                } else {
                    holder
                }
            ),
        ));
    }
    let cmd = std::env::args().collect::<Vec<_>>().join(" ");
    f.set_len(0).map_err(|e| io(&path, e))?;
    f.rewind().map_err(|e| io(&path, e))?;
    write!(f, "pid {} ({cmd})", std::process::id()).map_err(|e| io(&path, e))?;
    f.sync_all().map_err(|e| io(&path, e))?;
    Ok(f)
}

/// Reads the volume id, creating it for a new volume.
fn volume_id(dir: &Path) -> Result<String> {
    let path = dir.join("volume.id");
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let id = s.trim().to_string();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(FsError::new(
                    ErrorKind::Corrupt,
                    format!("{}: invalid volume id", path.display()),
                ));
            }
            Ok(id)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            let seed = format!(
                "{}-{}-{}",
                now.as_nanos(),
                std::process::id(),
                dir.display()
            );
            let id = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(seed.as_bytes()));
            let tmp = dir.join("volume.id.tmp");
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(id.as_bytes()).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io(dir, e))?;
            Ok(id)
        }
        Err(e) => Err(io(&path, e)),
    }
}

fn location_of(s3: Option<&S3Config>) -> String {
    match s3 {
        None => "fs".to_string(),
        Some(c) => format!(
            "s3 {} {} {}",
            c.endpoint.as_deref().unwrap_or("-"),
            c.bucket,
            c.root.as_deref().unwrap_or("-")
        ),
    }
}

/// Records where a new volume's blocks live, or checks that an existing one is opened with
/// the same object store (V2).
fn check_location(dir: &Path, s3: Option<&S3Config>) -> Result<()> {
    let path = dir.join("objects.location");
    let want = location_of(s3);
    match std::fs::read_to_string(&path) {
        Ok(have) if have.trim() == want => Ok(()),
        Ok(have) => Err(FsError::new(
            ErrorKind::InvalidArgument,
            format!(
                "volume {} keeps its blocks in `{}`, but was opened with `{want}`; open it with the same object store settings",
                dir.display(),
                have.trim()
            ),
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let tmp = dir.join("objects.location.tmp");
            let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
            f.write_all(want.as_bytes()).map_err(|e| io(&tmp, e))?;
            f.sync_all().map_err(|e| io(&tmp, e))?;
            std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
            Ok(())
        }
        Err(e) => Err(io(&path, e)),
    }
}
