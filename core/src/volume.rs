//! Opening a volume: a data directory holding the metadata store, the object root (or an S3
//! configuration), staging files and a lock.
//!
//! Layout of a data directory:
//! ```text
//! DATA/LOCK        flock()ed by the process that has the volume open; holds its pid + command
//! DATA/volume.id   the volume id (names the volume's objects), written once at creation
//! DATA/objects.location  where blocks live: `fs` or `s3 <endpoint> <bucket> <prefix>`
//! DATA/meta.engine the metadata engine, `redb` or `holt`, written once at creation
//! DATA/meta/       metadata store: `meta.redb` (redb), or holt's files (holt)
//! DATA/objects/    local object store root (unless the volume's blocks live in S3)
//! DATA/staging/    write-session staging files (emptied at open)
//! ```
//! Invariant V1: at most one process has a volume open; a second one fails at once with an
//! error naming the holder (no waiting).
//! Invariant V2: a volume is always opened against the object store it was created with;
//! opening it with another one fails instead of showing missing data.
//! Invariant V3: a volume is always opened with the metadata engine it was created with
//! (`DATA/meta.engine`); asking for another one fails instead of starting an empty store.
//! A volume from before `meta.engine` existed has a non-empty `DATA/meta/` without
//! `meta.redb`: it is a holt volume, and is recorded as one on its first open.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ErrorKind, FsError, Result};
use crate::fs::{Fs, FsOptions};
use crate::object::{LocalStore, ObjectStore, OpendalStore, S3Config};
use crate::store::{HoltStore, MetaStore, RedbStore};

/// The embedded engine that holds a volume's metadata (see
/// `docs/decisions/0003-redb-default-metadata-engine.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MetaEngine {
    /// redb: one database file, `DATA/meta/meta.redb`. The default for new volumes.
    #[default]
    Redb,
    /// holt 0.9.2 in `DATA/meta/`, through its safe subset. It stops accepting writes
    /// once many small records fill a blob's slot table (decision 0001, defect 7).
    Holt,
}

impl MetaEngine {
    /// The name recorded in `DATA/meta.engine`.
    pub fn name(self) -> &'static str {
        match self {
            MetaEngine::Redb => "redb",
            MetaEngine::Holt => "holt",
        }
    }

    /// The engine recorded as `name`, if any.
    pub fn from_name(name: &str) -> Option<MetaEngine> {
        match name {
            "redb" => Some(MetaEngine::Redb),
            "holt" => Some(MetaEngine::Holt),
            _ => None,
        }
    }

    fn open(self, dir: &Path) -> Result<Arc<dyn MetaStore>> {
        Ok(match self {
            MetaEngine::Redb => Arc::new(RedbStore::open(dir)?),
            MetaEngine::Holt => Arc::new(HoltStore::open(dir)?),
        })
    }
}

impl std::fmt::Display for MetaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How to open a volume.
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// Store blocks in S3 instead of `DATA/objects`.
    pub s3: Option<S3Config>,
    /// Block cache size in bytes.
    pub cache_bytes: usize,
    /// The metadata engine. `None` (the default): an existing volume's recorded engine,
    /// [`MetaEngine::default`] (redb) for a new one. `Some(engine)` also requires an
    /// existing volume to use `engine`.
    pub meta_engine: Option<MetaEngine>,
    /// Run garbage collection in the background this often (`None`: only on demand).
    /// Requires a Tokio runtime when the volume is opened.
    pub gc_interval: Option<std::time::Duration>,
    /// GC grace period (see [`FsOptions::gc_grace`]); only tests of a quiet volume should
    /// shorten it.
    pub gc_grace: std::time::Duration,
}

impl VolumeConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        VolumeConfig {
            data_dir: data_dir.into(),
            s3: None,
            cache_bytes: 256 << 20,
            meta_engine: None,
            gc_interval: Some(std::time::Duration::from_secs(10 * 60)),
            gc_grace: crate::workspace::GcOptions::default().grace,
        }
    }
}

/// An open volume: the filesystem plus the lock that keeps it ours.
pub struct Volume {
    fs: Fs,
    id: String,
    data_dir: PathBuf,
    objects: String,
    meta_engine: MetaEngine,
    /// The background GC task, if one runs.
    gc: Option<tokio::task::JoinHandle<()>>,
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
        let meta_engine = check_engine(dir, cfg.meta_engine)?;
        let store = meta_engine.open(&dir.join("meta"))?;
        let objects: Arc<dyn ObjectStore> = match &cfg.s3 {
            Some(s3) => Arc::new(OpendalStore::s3(s3)?),
            None => Arc::new(LocalStore::open(&dir.join("objects"))?),
        };
        let describe = objects.describe();
        let mut opts = FsOptions::new(id.clone(), dir.join("staging"));
        opts.cache_bytes = cfg.cache_bytes;
        opts.gc_grace = cfg.gc_grace;
        opts.statfs_path = Some(dir.clone());
        // SAFETY: geteuid/getegid have no preconditions.
        opts.root_owner = unsafe { (libc::geteuid(), libc::getegid()) };
        let fs = Fs::new(store, objects, opts)?;
        let gc = match (cfg.gc_interval, tokio::runtime::Handle::try_current()) {
            (Some(every), Ok(rt)) => Some(rt.spawn(background_gc(fs.downgrade(), every))),
            _ => None,
        };
        Ok(Volume {
            fs,
            id,
            data_dir: dir.clone(),
            objects: describe,
            meta_engine,
            gc,
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

    /// The engine holding the volume's metadata.
    pub fn meta_engine(&self) -> MetaEngine {
        self.meta_engine
    }

    /// Publishes every pending write and makes all metadata durable.
    pub async fn close(mut self) -> Result<()> {
        if let Some(gc) = self.gc.take() {
            gc.abort();
            let _ = gc.await;
        }
        self.fs.shutdown().await
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        if let Some(gc) = self.gc.take() {
            gc.abort();
        }
    }
}

/// Runs [`Fs::gc`] every `every` with the volume's grace period, logging what it freed. Holds the
/// filesystem only while a run is in progress, so dropping the volume closes its stores.
async fn background_gc(fs: std::sync::Weak<crate::fs::Inner>, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let Some(fs) = Fs::upgrade(&fs) else {
            return;
        };
        let opts = crate::workspace::GcOptions {
            grace: fs.inner.opts.gc_grace,
            dry_run: false,
        };
        match fs.gc(&opts).await {
            Ok(r) => tracing::info!(
                layers = r.layers,
                records = r.records,
                objects = r.objects,
                bytes = r.bytes,
                "background gc"
            ),
            Err(e) => tracing::warn!(error = %e, "background gc failed"),
        }
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
            write_once(dir, "volume.id", &id)?;
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_once(dir, "objects.location", &want),
        Err(e) => Err(io(&path, e)),
    }
}

/// The engine of the volume in `dir`, recording it for a new volume (V3). `asked` is the
/// configured engine, if the caller chose one.
fn check_engine(dir: &Path, asked: Option<MetaEngine>) -> Result<MetaEngine> {
    let path = dir.join("meta.engine");
    let have = match std::fs::read_to_string(&path) {
        Ok(name) => MetaEngine::from_name(name.trim()).ok_or_else(|| {
            FsError::new(
                ErrorKind::Corrupt,
                format!(
                    "{}: unknown metadata engine `{}`",
                    path.display(),
                    name.trim()
                ),
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let engine = if is_legacy_holt(&dir.join("meta"))? {
                MetaEngine::Holt
            } else {
                asked.unwrap_or_default()
            };
            write_once(dir, "meta.engine", engine.name())?;
            engine
        }
        Err(e) => return Err(io(&path, e)),
    };
    match asked {
        Some(want) if want != have => Err(FsError::new(
            ErrorKind::InvalidArgument,
            format!(
                "volume {} keeps its metadata in `{have}`, but was opened with `{want}`; open it without choosing an engine, or with `{have}`",
                dir.display()
            ),
        )),
        _ => Ok(have),
    }
}

/// Whether `meta` holds a holt store written before volumes recorded their engine: it has
/// files, none of them redb's.
fn is_legacy_holt(meta: &Path) -> Result<bool> {
    let mut entries = match std::fs::read_dir(meta) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io(meta, e)),
    };
    let any = entries
        .next()
        .transpose()
        .map_err(|e| io(meta, e))?
        .is_some();
    Ok(any && !meta.join(crate::store::REDB_FILE_NAME).exists())
}

/// Creates `dir/name` holding `contents`, durably and atomically: a temporary file,
/// synced, renamed into place, then the directory synced.
fn write_once(dir: &Path, name: &str, contents: &str) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    f.write_all(contents.as_bytes()).map_err(|e| io(&tmp, e))?;
    f.sync_all().map_err(|e| io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Batch;

    // `Volume::open` cannot run here yet (the OpenDAL object store is a stub on this
    // branch), so these tests drive the same steps it takes: `check_engine`, then the
    // engine's store in `DATA/meta`.

    fn recorded(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("meta.engine")).unwrap()
    }

    /// What `Volume::open` does for the metadata: the engine, then its store, in which a
    /// key is written (when `write`) or must be found.
    fn open_meta(dir: &Path, asked: Option<MetaEngine>, write: bool) -> Result<MetaEngine> {
        let engine = check_engine(dir, asked)?;
        let store = engine.open(&dir.join("meta"))?;
        if write {
            let mut batch = Batch::new();
            batch.put(b"kept".to_vec(), b"v".to_vec());
            assert!(store.commit(&batch)?);
        }
        assert_eq!(store.get(b"kept")?.as_deref(), Some(&b"v"[..]), "{engine}");
        Ok(engine)
    }

    fn assert_refused(dir: &Path, asked: MetaEngine, have: &str) {
        let err = open_meta(dir, Some(asked), false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(
            err.context().contains(&format!("`{have}`"))
                && err.context().contains(&format!("`{asked}`")),
            "{err}"
        );
        // The refused open changed nothing.
        assert_eq!(recorded(dir), have);
    }

    #[test]
    fn new_volume_defaults_to_redb_and_keeps_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        assert_eq!(open_meta(dir, None, true).unwrap(), MetaEngine::Redb);
        assert_eq!(recorded(dir), "redb");
        assert!(dir.join("meta").join("meta.redb").is_file());
        assert_eq!(open_meta(dir, None, false).unwrap(), MetaEngine::Redb);
        let asked = Some(MetaEngine::Redb);
        assert_eq!(open_meta(dir, asked, false).unwrap(), MetaEngine::Redb);
        assert_refused(dir, MetaEngine::Holt, "redb");
        assert_eq!(open_meta(dir, None, false).unwrap(), MetaEngine::Redb);
    }

    #[test]
    fn holt_volume_keeps_holt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let asked = Some(MetaEngine::Holt);
        assert_eq!(open_meta(dir, asked, true).unwrap(), MetaEngine::Holt);
        assert_eq!(recorded(dir), "holt");
        assert!(!dir.join("meta").join("meta.redb").exists());
        assert_eq!(open_meta(dir, None, false).unwrap(), MetaEngine::Holt);
        assert_refused(dir, MetaEngine::Redb, "holt");
    }

    /// A holt volume created before `meta.engine` existed opens as holt, although the
    /// default engine is redb, and is recorded as such.
    #[test]
    fn volume_without_engine_file_is_holt() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        open_meta(dir, Some(MetaEngine::Holt), true).unwrap();
        std::fs::remove_file(dir.join("meta.engine")).unwrap();
        assert_eq!(open_meta(dir, None, false).unwrap(), MetaEngine::Holt);
        assert_eq!(recorded(dir), "holt");
        // Asking for redb on such a volume is refused like on any holt volume.
        std::fs::remove_file(dir.join("meta.engine")).unwrap();
        assert_refused(dir, MetaEngine::Redb, "holt");
    }

    /// An empty `DATA/meta` (a volume whose first open stopped before its store wrote
    /// anything) is not mistaken for holt.
    #[test]
    fn empty_meta_dir_is_new() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("meta")).unwrap();
        assert_eq!(check_engine(tmp.path(), None).unwrap(), MetaEngine::Redb);
        assert_eq!(recorded(tmp.path()), "redb");
    }

    #[test]
    fn unknown_engine_is_corrupt() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("meta.engine"), "lmdb\n").unwrap();
        let err = check_engine(tmp.path(), None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(err.context().contains("lmdb"), "{err}");
    }

    #[test]
    fn engine_names_round_trip() {
        for engine in [MetaEngine::Redb, MetaEngine::Holt] {
            assert_eq!(MetaEngine::from_name(engine.name()), Some(engine));
            assert_eq!(engine.to_string(), engine.name());
        }
        assert_eq!(MetaEngine::default(), MetaEngine::Redb);
    }
}
