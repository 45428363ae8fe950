//! `LocalStore`: the `fs` [`ObjectStore`], one file per object under a local directory.
//!
//! This is the embedded default backend. It uses `std::fs` directly rather than OpenDAL's
//! `fs` service, because that service fsyncs every object before renaming it into place,
//! and that fsync per 4 MiB block bounded sequential write throughput (decision 0005).
//!
//! Invariants:
//! 1. **`put` is atomic and not yet durable.** The bytes go to a fresh file in
//!    `{root}/.nokv-tmp/`, which is then renamed over the key's path, so a reader sees the
//!    whole object or none. An object of at least 1 MiB in whole pages (every full block) is
//!    written with `O_DIRECT` from an aligned per-thread buffer, around the page cache
//!    (`write_direct` says why); where the filesystem refuses `O_DIRECT` it is written
//!    through the page cache like the rest. Nothing is fsynced at `put`; the file and the
//!    directories whose entries it may have changed are recorded as pending before `put`
//!    returns: its parent, and each ancestor up to the root until one whose own entry is
//!    known durable (a directory that a completed `sync` fsynced together with the chain of
//!    ancestors recorded with it; the store never removes directories). `put` then only
//!    hands the file to a writeback thread, which asks the kernel to start writing it to disk
//!    (`sync_file_range`), so that writeback overlaps with the writes that follow and a busy
//!    disk never stalls a `put` for a mere hint.
//! 2. **`sync` makes every earlier `put` durable.** It fsyncs every pending file and
//!    directory (a few on the calling thread, more in parallel) and returns only when all
//!    succeeded. Syncs run one at a time,
//!    so a `sync` never returns while an earlier one that took its files is still running.
//!    The data path calls it before publishing metadata that references the objects (D1).
//! 3. **A failed sync poisons the store.** After a failed fsync Linux may have dropped the
//!    dirty pages and marked them clean, so a retried fsync could succeed without the data
//!    being on disk. Every later `sync` therefore fails with the first error until the store
//!    is reopened; nothing is ever reported durable that might not be.
//! 4. **Keys are checked** exactly as by [`super::OpendalStore`] (shared code): relative, no
//!    empty, `.` or `..` component, not under `.nokv-tmp/`. A range past the end is
//!    clamped; deleting a missing key succeeds; `list` is recursive and returns files only.
//!
//! File I/O runs on tokio's blocking pool, except a read of at most [`INLINE_READ_MAX`] bytes
//! (a cold random read), which is one `pread` on the caller's thread.
//!
//! After a power loss, an object whose `put` was not covered by a completed `sync` may be
//! missing, empty or partial. No metadata references such an object (D1), so it is garbage.

use std::collections::{BTreeSet, HashSet};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::opendal_store::{check_key, io_kind, is_reserved, remove_stale_tmp, TMP_DIR};
use super::{ObjectError, ObjectErrorKind, ObjectMeta, ObjectStore};

/// Most fsyncs a `sync` runs at once.
const SYNC_THREADS: usize = 8;
/// Fsyncs per extra thread: a sync of a few paths runs them on the calling thread, since
/// starting a thread costs more than an fsync that finds little to write.
const FSYNCS_PER_THREAD: usize = 4;

/// Makes one file or directory durable (a test can replace it to inject failures).
type Syncer = Arc<dyn Fn(&Path) -> io::Result<()> + Send + Sync>;

/// Paths whose contents or entries are not durable yet.
#[derive(Default)]
struct Pending {
    files: BTreeSet<PathBuf>,
    dirs: BTreeSet<PathBuf>,
    /// Directories whose entry in their parent, and every ancestor's up to the root, a
    /// completed sync made durable (invariant 1): a `put` below one records no ancestor
    /// above it.
    durable_dirs: HashSet<PathBuf>,
}

/// [`ObjectStore`] over a local directory.
pub struct LocalStore {
    root: PathBuf,
    tmp: PathBuf,
    /// Unique per store instance, so two stores on one root never share a temp name.
    tmp_prefix: String,
    seq: AtomicU64,
    pending: Mutex<Pending>,
    /// Serializes syncs (invariant 2).
    sync_lock: Mutex<()>,
    /// The first sync failure (invariant 3).
    poisoned: Mutex<Option<ObjectError>>,
    syncer: Syncer,
    /// `None` if the hint thread could not start (then nothing is hinted).
    hinter: Option<Hinter>,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl LocalStore {
    /// A store in the local directory `root`, created if missing. Temp files left by a
    /// crash more than an hour ago are removed.
    pub fn open(root: &Path) -> Result<Self, ObjectError> {
        let fail = |what: &str, e: io::Error| {
            let kind = io_kind(&e).unwrap_or(ObjectErrorKind::Other);
            ObjectError::new(kind, format!("fs:{}: {what}: {e}", root.display()))
        };
        std::fs::create_dir_all(root.join(TMP_DIR)).map_err(|e| fail("create", e))?;
        let root = root.canonicalize().map_err(|e| fail("canonicalize", e))?;
        let tmp = root.join(TMP_DIR);
        remove_stale_tmp(&tmp);
        let nanos = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Ok(Self {
            root,
            tmp,
            tmp_prefix: format!("{}-{nanos}", std::process::id()),
            seq: AtomicU64::new(0),
            pending: Mutex::new(Pending::default()),
            sync_lock: Mutex::new(()),
            poisoned: Mutex::new(None),
            syncer: Arc::new(|p: &Path| File::open(p)?.sync_all()),
            hinter: Hinter::start(),
        })
    }

    fn error(&self, what: &str, key: &str, e: &io::Error) -> ObjectError {
        let kind = io_kind(e).unwrap_or(ObjectErrorKind::Other);
        ObjectError::new(
            kind,
            format!("{what} {key:?} on fs:{}: {e}", self.root.display()),
        )
    }

    /// Records `path` as not yet durable, with its parent (a new entry) and each ancestor
    /// that may have been created for it: up to the root, or to the first directory that is
    /// already recorded (its ancestors are too) or known durable.
    fn record(&self, path: PathBuf) {
        let mut pending = self.pending.lock();
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| d.starts_with(&self.root)) {
            if !pending.dirs.insert(d.to_path_buf()) || pending.durable_dirs.contains(d) {
                break;
            }
            dir = d.parent();
        }
        pending.files.insert(path);
    }
}

/// Runs blocking file I/O off the async threads.
/// Largest range [`LocalStore::get_range`] reads on the caller's thread.
const INLINE_READ_MAX: u64 = 64 << 10;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Runs writeback hints on a thread of their own, so that a busy disk never stalls a `put`.
/// Hints past [`HINT_QUEUE`] waiting ones are dropped: they only save time.
struct Hinter {
    tx: std::sync::mpsc::SyncSender<PathBuf>,
}

/// Most writeback hints waiting for the hint thread.
const HINT_QUEUE: usize = 64;

impl Hinter {
    fn start() -> Option<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<PathBuf>(HINT_QUEUE);
        std::thread::Builder::new()
            .name("nokv-writeback".into())
            .spawn(move || {
                for path in rx {
                    if let Ok(f) = File::open(&path) {
                        start_writeback(&f);
                    }
                }
            })
            .ok()?;
        Some(Hinter { tx })
    }

    fn hint(&self, path: &Path) {
        let _ = self.tx.try_send(path.to_path_buf());
    }
}

/// Objects at least this large, in whole pages, are written with `O_DIRECT`.
const DIRECT_MIN: usize = 1 << 20;
/// Alignment `O_DIRECT` needs of buffer addresses, lengths and offsets.
const DIRECT_ALIGN: usize = 4096;
/// Bytes copied into the aligned buffer per `O_DIRECT` write.
const DIRECT_CHUNK: usize = 4 << 20;

thread_local! {
    /// Each upload thread's aligned buffer for `O_DIRECT` writes (allocated on first use).
    static ALIGNED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Writes `data` to the new file `tmp` and renames it to `path`, creating directories.
/// Whether the write went around the page cache (`O_DIRECT`; nothing left to hint).
fn write_object(tmp: &Path, path: &Path, data: &[u8]) -> io::Result<bool> {
    let direct = data.len() >= DIRECT_MIN
        && data.len().is_multiple_of(DIRECT_ALIGN)
        && write_direct(tmp, data).is_ok();
    let written = if direct {
        Ok(())
    } else {
        // Also after a failed direct write (a filesystem without O_DIRECT, such as tmpfs,
        // answers EINVAL): the file is written again from the start.
        File::options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(tmp)
            .and_then(|mut f| f.write_all(data))
    };
    let renamed = written.and_then(|()| match std::fs::rename(tmp, path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::create_dir_all(path.parent().unwrap_or(path))?;
            std::fs::rename(tmp, path)
        }
        other => other,
    });
    if renamed.is_err() {
        let _ = std::fs::remove_file(tmp);
    }
    renamed.map(|()| direct)
}

/// Writes `data` (a whole number of pages) to the new file `tmp` with `O_DIRECT`, through
/// this thread's aligned buffer. Measured on the project's test machine (docs/benchmarks.md,
/// issue 2): the kernel's copy of a fresh 4 MiB object into newly allocated page-cache pages
/// ran at 250-600 MiB/s on the upload threads, while one file written by one thread ran at
/// about 1,000 MiB/s; direct writes from a reused buffer ran at 970-1,170 MiB/s. The
/// object is still made durable by `sync` (its size and blocks are metadata).
fn write_direct(tmp: &Path, data: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = File::options()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_DIRECT)
        .open(tmp)?;
    ALIGNED.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < DIRECT_CHUNK + DIRECT_ALIGN {
            *buf = vec![0; DIRECT_CHUNK + DIRECT_ALIGN];
        }
        let start = buf.as_ptr().align_offset(DIRECT_ALIGN);
        let aligned = &mut buf[start..start + DIRECT_CHUNK];
        let mut at = 0;
        for chunk in data.chunks(DIRECT_CHUNK) {
            aligned[..chunk.len()].copy_from_slice(chunk);
            f.write_all_at(&aligned[..chunk.len()], at as u64)?;
            at += chunk.len();
        }
        Ok(())
    })
}

/// Asks the kernel to start writing `f`'s dirty pages to disk now, without waiting, so the
/// writeback overlaps with later writes and the fsync in `sync` finds little left to do.
/// Only a hint: durability still comes from that fsync, so a failure here is ignored.
fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: `f` is an open file for the whole call; the call only reads its arguments.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

/// Fsyncs every path with up to [`SYNC_THREADS`] threads; the first error wins. A file
/// that no longer exists was deleted through the store and is skipped.
fn sync_all(paths: Vec<PathBuf>, syncer: &Syncer) -> io::Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let first_err = Mutex::new(None);
    let work = || loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(p) = paths.get(i) else { break };
        match syncer(p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                first_err.lock().get_or_insert_with(|| {
                    io::Error::new(e.kind(), format!("{}: {e}", p.display()))
                });
            }
            _ => {}
        }
    };
    let threads = SYNC_THREADS.min(paths.len().div_ceil(FSYNCS_PER_THREAD));
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    first_err.into_inner().map_or(Ok(()), Err)
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn put(&self, key: &str, data: Bytes) -> Result<(), ObjectError> {
        check_key(key)?;
        let path = self.root.join(key);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.tmp.join(format!("{}.{seq}", self.tmp_prefix));
        let dest = path.clone();
        let direct = blocking(move || write_object(&tmp, &dest, &data))
            .await
            .map_err(|e| self.error("put", key, &e))?;
        if let (Some(h), false) = (&self.hinter, direct) {
            h.hint(&path);
        }
        self.record(path);
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, ObjectError> {
        check_key(key)?;
        let path = self.root.join(key);
        let read = move || {
            let mut f = File::open(&path)?;
            let meta = f.metadata()?;
            if !meta.is_file() {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            let start = range.start.min(meta.len());
            let end = range.end.min(meta.len()).max(start);
            let mut buf = Vec::with_capacity((end - start) as usize);
            f.seek(SeekFrom::Start(start))?;
            f.take(end - start).read_to_end(&mut buf)?;
            Ok(Bytes::from(buf))
        };
        // A small read (a random 4 KiB read of a cold block) is one `pread`: doing it here
        // costs less than the two thread hand-offs of the blocking pool.
        let result = if range.end.saturating_sub(range.start) <= INLINE_READ_MAX {
            read()
        } else {
            blocking(read).await
        };
        result.map_err(|e| self.error("read", key, &e))
    }

    fn has_unsynced(&self) -> bool {
        let pending = self.pending.lock();
        !pending.files.is_empty() || !pending.dirs.is_empty() || self.poisoned.lock().is_some()
    }

    fn sync(&self) -> Result<(), ObjectError> {
        let _serial = self.sync_lock.lock();
        if let Some(e) = self.poisoned.lock().clone() {
            return Err(e);
        }
        let (files, dirs) = {
            let mut pending = self.pending.lock();
            (
                std::mem::take(&mut pending.files),
                std::mem::take(&mut pending.dirs),
            )
        };
        if files.is_empty() && dirs.is_empty() {
            return Ok(());
        }
        let paths: Vec<PathBuf> = files.into_iter().chain(dirs.iter().cloned()).collect();
        let synced = sync_all(paths, &self.syncer);
        if synced.is_ok() {
            // Each recorded directory came with its chain of ancestors up to the root or to
            // a durable directory, all in this sync: their entries are durable now.
            self.pending.lock().durable_dirs.extend(dirs);
        }
        synced.map_err(|e| {
            let kind = io_kind(&e).unwrap_or(ObjectErrorKind::Other);
            let err = ObjectError::new(
                kind,
                format!(
                    "fs:{}: sync failed, no later sync can succeed until the volume is \
                     reopened: {e}",
                    self.root.display()
                ),
            );
            *self.poisoned.lock() = Some(err.clone());
            err
        })
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        check_key(key)?;
        let path = self.root.join(key);
        self.pending.lock().files.remove(&path);
        blocking(move || match std::fs::remove_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            // A directory is not an object, so the key is missing.
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => Ok(()),
            other => other,
        })
        .await
        .map_err(|e| self.error("delete", key, &e))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, ObjectError> {
        if prefix.starts_with('/') {
            return Err(ObjectError::new(
                ObjectErrorKind::Other,
                format!(
                    "list {prefix:?} on {}: prefix must be relative",
                    self.describe()
                ),
            ));
        }
        // Walk the directory holding the prefix and filter: a prefix such as `blocks/1/2`
        // must also match `blocks/1/23/...`.
        let dir = prefix[..prefix.rfind('/').map_or(0, |i| i + 1)].to_string();
        let root = self.root.clone();
        let prefix_owned = prefix.to_string();
        blocking(move || {
            let mut out = Vec::new();
            let mut stack = vec![dir];
            while let Some(rel) = stack.pop() {
                let entries = match std::fs::read_dir(root.join(&rel)) {
                    Ok(e) => e,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                        continue; // not a key the store could have written
                    };
                    let key = format!("{rel}{name}");
                    if is_reserved(&key) {
                        continue;
                    }
                    let ft = entry.file_type()?;
                    if ft.is_dir() {
                        let sub = format!("{key}/");
                        if prefix_owned.starts_with(&sub) || sub.starts_with(&prefix_owned) {
                            stack.push(sub);
                        }
                    } else if ft.is_file() && key.starts_with(&prefix_owned) {
                        let meta = entry.metadata()?;
                        out.push(ObjectMeta {
                            key,
                            size: meta.len(),
                            modified_secs: meta
                                .modified()
                                .ok()
                                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                                .map_or(0, |d| d.as_secs()),
                        });
                    }
                }
            }
            Ok(out)
        })
        .await
        .map_err(|e| self.error("list", prefix, &e))
    }

    fn describe(&self) -> String {
        format!("fs:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::conformance::{self, pattern, Expect};

    fn store(dir: &tempfile::TempDir) -> LocalStore {
        LocalStore::open(&dir.path().join("objects")).unwrap()
    }

    /// Large whole-page objects go through `O_DIRECT` (where the filesystem has it), others
    /// through the page cache; both read back exactly, before and after `sync`.
    #[tokio::test]
    async fn direct_and_buffered_objects_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let sizes = [
            4 << 20,
            (1 << 20) + 4096,
            (4 << 20) + 1,
            (1 << 20) - 4096,
            9 << 20,
        ];
        for (i, n) in sizes.into_iter().enumerate() {
            let data: Vec<u8> = (0..n).map(|j| (j * 31 + i * 7) as u8).collect();
            let key = format!("b/{i}");
            s.put(&key, Bytes::from(data.clone())).await.unwrap();
            let back = s.get_range(&key, 0..n as u64).await.unwrap();
            assert!(back[..] == data[..], "object of {n} bytes");
            let tail = s.get_range(&key, n as u64 - 5000..n as u64).await.unwrap();
            assert!(tail[..] == data[n - 5000..], "tail of {n} bytes");
        }
        s.sync().unwrap();
        let back = s.get_range("b/4", 0..(9 << 20)).await.unwrap();
        assert_eq!(back.len(), 9 << 20);
        assert!(back
            .iter()
            .enumerate()
            .all(|(j, b)| *b == (j * 31 + 28) as u8));
        // Nothing is left behind in the temp directory.
        let tmp = std::fs::read_dir(dir.path().join("objects").join(TMP_DIR)).unwrap();
        assert_eq!(tmp.count(), 0);
    }

    #[tokio::test]
    async fn conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        let expect = Expect {
            modified_times: true,
        };
        conformance::run_all(&s, "", expect).await;
        conformance::large_object(&s, "", 20 << 20).await;
        conformance::many_keys(&s, "x/", 300).await;
        // Nothing is left in the temp directory once `put` returns.
        assert_eq!(std::fs::read_dir(&s.tmp).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn reserved_and_invalid_keys() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir);
        for key in [
            "",
            "/a",
            "a/",
            "a//b",
            "a/../b",
            "./a",
            ".nokv-tmp/x",
            ".nokv-tmp",
        ] {
            assert!(s.put(key, pattern(1, 1)).await.is_err(), "{key:?} accepted");
        }
        s.put(".nokv-tmpx/ok", pattern(1, 1)).await.unwrap();
        std::fs::write(s.tmp.join("stray"), b"x").unwrap();
        let all = s.list("").await.unwrap();
        assert_eq!(all.len(), 1, "{all:?}");
        assert_eq!(all[0].key, ".nokv-tmpx/ok");
        assert!(s.list("/abs").await.is_err());
        // A key that is a directory is not an object.
        s.put("d/e", pattern(1, 1)).await.unwrap();
        let err = s.get_range("d", 0..1).await.unwrap_err();
        assert_eq!(err.kind(), ObjectErrorKind::NotFound, "{err}");
        s.delete("d").await.unwrap();
        // A path under a file cannot be created: a permanent error naming the key.
        let err = s.put("d/e/f", pattern(1, 1)).await.unwrap_err();
        assert!(err.to_string().contains("d/e/f"), "{err}");
    }

    /// A store whose fsyncs are recorded, and fail for paths containing `fail` when set.
    fn recording(
        dir: &tempfile::TempDir,
        fail: Option<&'static str>,
    ) -> (LocalStore, Arc<Mutex<Vec<PathBuf>>>) {
        let mut s = store(dir);
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        s.syncer = Arc::new(move |p: &Path| {
            if fail.is_some_and(|f| p.to_string_lossy().contains(f)) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            l.lock().push(p.to_path_buf());
            File::open(p)?.sync_all()
        });
        (s, log)
    }

    #[tokio::test]
    async fn sync_fsyncs_each_new_file_and_its_directories_once() {
        let dir = tempfile::tempdir().unwrap();
        let (s, log) = recording(&dir, None);
        // The paths fsynced since the last call, relative to the root, sorted.
        let synced = || {
            let mut got: Vec<String> = log
                .lock()
                .drain(..)
                .map(|p| {
                    p.strip_prefix(&s.root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            got.sort();
            got
        };
        s.put("blocks/v/1/7/0/0", pattern(10, 1)).await.unwrap();
        s.put("blocks/v/1/7/0/1", pattern(10, 2)).await.unwrap();
        s.put("blocks/v/2/8/0/0", pattern(10, 3)).await.unwrap();
        s.sync().unwrap();
        let got = synced();
        let want = [
            "",
            "blocks",
            "blocks/v",
            "blocks/v/1",
            "blocks/v/1/7",
            "blocks/v/1/7/0",
            "blocks/v/1/7/0/0",
            "blocks/v/1/7/0/1",
            "blocks/v/2",
            "blocks/v/2/8",
            "blocks/v/2/8/0",
            "blocks/v/2/8/0/0",
        ];
        assert_eq!(got, want);
        // Nothing new: nothing to fsync. A deleted, never-synced object is not fsynced.
        s.sync().unwrap();
        s.put("blocks/v/3", pattern(1, 4)).await.unwrap();
        s.delete("blocks/v/3").await.unwrap();
        s.sync().unwrap();
        let got = log.lock().clone();
        assert!(got.iter().all(|p| !p.ends_with("blocks/v/3")), "{got:?}");
        // Once synced, a directory's own entry is durable: a new object in it needs only the
        // directory's fsync, and a new directory below it that directory's and its own.
        synced();
        s.put("blocks/v/1/7/0/2", pattern(10, 5)).await.unwrap();
        s.put("blocks/v/1/9/0/0", pattern(10, 6)).await.unwrap();
        s.sync().unwrap();
        let got = synced();
        let want = [
            "blocks/v/1",
            "blocks/v/1/7/0",
            "blocks/v/1/7/0/2",
            "blocks/v/1/9",
            "blocks/v/1/9/0",
            "blocks/v/1/9/0/0",
        ];
        assert_eq!(got, want);
        // A synced object reads back from a fresh store on the same directory.
        drop(s);
        let again = store(&dir);
        let back = again.get_range("blocks/v/1/7/0/1", 0..10).await.unwrap();
        assert_eq!(back, pattern(10, 2));
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_this_and_every_later_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (s, _log) = recording(&dir, Some("bad"));
        s.put("ok/1", pattern(10, 1)).await.unwrap();
        s.put("bad/1", pattern(10, 2)).await.unwrap();
        let err = s.sync().unwrap_err();
        assert!(err.to_string().contains("bad"), "{err}");
        assert!(err.to_string().contains("reopened"), "{err}");
        // The objects stay readable, but no later sync may report anything durable.
        assert_eq!(s.get_range("bad/1", 0..10).await.unwrap(), pattern(10, 2));
        s.put("ok/2", pattern(10, 3)).await.unwrap();
        assert!(s.sync().is_err());
        assert!(s.sync().is_err());
    }
}
