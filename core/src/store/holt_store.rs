//! `HoltStore`: the durable [`MetaStore`] on a file-backed holt 0.9.2 tree.
//!
//! This module owns every use of the `holt` crate: opening the tree, translating batches,
//! scans and version tokens, checkpointing, and converting `holt::Error` into
//! [`StoreError`]. No holt type crosses its boundary.
//!
//! holt is used only through a safe subset, because of defects measured on 0.9.2 (see
//! `docs/decisions/0001-holt-metadata-engine.md`):
//! - Every write is one `Tree::atomic` batch. Plain `put`/`delete` buffer and flush in
//!   O(n^2) and stall for minutes at ~500k keys; batches do not.
//! - Durability is `Wal { sync: true }`: with `sync: false` a plain kill loses acknowledged
//!   writes. A commit returns only after its WAL record is on stable storage.
//! - Scans are plain prefix ranges. A delimiter scan silently drops entries after a
//!   checkpoint on a large tree, so none is ever issued.
//! - Values above [`super::MAX_VALUE_LEN`] are rejected before the batch reaches holt.
//!   holt itself also refuses, before applying anything, keys over 65,534 bytes and
//!   batches whose WAL record exceeds 16 MiB (an `Io` error; the store stays usable).
//! - Callers keep keys prefix-free (the key codec's rule). holt refuses a key that
//!   extends an existing key with a 0x00 byte (or is extended so by one) in the middle of
//!   applying a batch; the adapter turns that into a failed, poisoned commit (below).
//!
//! Known limit not avoidable here: holt 0.9.2 fails inserts once a blob's slot table fills
//! before its bytes do (many tiny records, e.g. ~10k 9-byte keys with empty values). The
//! commit fails and poisons the store; nothing acknowledged is lost (see the ADR).
//!
//! Two more holt behaviours are handled here:
//! - **Version tokens.** holt's record versions are leaf sequence numbers, and a reopened
//!   tree resumes numbering at (highest sequence still in the WAL) + 1, which is 1 once a
//!   checkpoint has emptied the WAL. Versions written before the restart could then be
//!   handed out again, so a stale [`Guard::Version`] could pass (ABA). The adapter
//!   therefore owns the WAL truncation points: holt's background checkpointer is off,
//!   checkpoints run here (from a background thread every second when there were
//!   commits, and on drop) with commits held off, and each checkpoint is immediately followed by a *marker* record (a no-op delete of
//!   the empty key) that carries the current sequence into the new WAL. A file
//!   `nokv-checkpoint.pending` brackets the checkpoint; if it is found at open, the process
//!   died between truncation and marker, and the adapter scans for the highest live version
//!   and burns sequence numbers past it before accepting writes.
//! - **Failed batches.** A batch that fails after holt started applying it (for instance
//!   when the WAL write fails) may stay visible in memory although it is not durable. Such
//!   an error poisons the store: every later call returns [`StoreError::Closed`], and
//!   nothing is checkpointed, so the unacknowledged batch never reaches disk.
//!
//! Invariants:
//! 1. Every record version of a live key is lower than the next sequence holt will assign.
//! 2. The empty key is never stored (it is the marker key); commits reject it.
//! 3. After a poisoning error no state is read from or written to the tree.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use holt::{
    CheckpointConfig, Durability, KeyRangeEntry, RangeEntry, RecordVersion, Tree, TreeBuilder,
};
use parking_lot::{Condvar, Mutex, RwLock};

use super::{check_value_sizes, Batch, Entry, Guard, MetaStore, Op, StoreError, Versioned};

/// How often the background thread checkpoints a tree that has taken commits.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);

/// Present on disk while a checkpoint may have emptied the WAL without a marker after it.
const PENDING_FILE: &str = "nokv-checkpoint.pending";

/// Deleted (a no-op) to put a record carrying the current sequence into the WAL.
const MARKER_KEY: &[u8] = b"";

/// Sequence numbers consumed per batch when repairing the version floor. Each costs one
/// queued delete in a batch that fails its guard, well under holt's 16 MiB record limit.
const BURN_CHUNK: u64 = 65_536;

/// Durable metadata store on a file-backed holt tree. See the module docs.
pub struct HoltStore {
    shared: Arc<Shared>,
    background: Option<Background>,
    checkpoint_on_drop: bool,
}

struct Shared {
    tree: Tree,
    dir: PathBuf,
    /// Commits hold it shared, checkpoints exclusively, so no commit lands between a WAL
    /// truncation and the marker that follows it.
    gate: RwLock<()>,
    /// Set when a commit since the last checkpoint changed the tree.
    dirty: AtomicBool,
    /// The first error that may have left an unacknowledged batch visible.
    poison: OnceLock<String>,
}

struct Background {
    stop: Arc<(Mutex<bool>, Condvar)>,
    handle: Option<JoinHandle<()>>,
}

impl HoltStore {
    /// Open or create the store in `dir`, with background checkpoints.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, Some(CHECKPOINT_INTERVAL))
    }

    /// Open with an explicit background checkpoint interval (`None`: only explicit and
    /// drop-time checkpoints).
    pub(crate) fn open_with(dir: &Path, interval: Option<Duration>) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error(&e, dir))?;
        let tree = TreeBuilder::new(dir)
            .durability(Durability::Wal { sync: true })
            .checkpoint(CheckpointConfig {
                enabled: false,
                ..CheckpointConfig::default()
            })
            .open()
            .map_err(|e| store_error(e, dir))?;
        let shared = Arc::new(Shared {
            tree,
            dir: dir.to_path_buf(),
            gate: RwLock::new(()),
            dirty: AtomicBool::new(false),
            poison: OnceLock::new(),
        });
        if shared.pending_path().exists() {
            shared.restore_version_floor()?;
        }
        let background = interval.map(|every| Background::spawn(Arc::clone(&shared), every));
        Ok(Self {
            shared,
            background,
            checkpoint_on_drop: true,
        })
    }

    /// Drop the store as a crash would leave it: no final checkpoint (the WAL is replayed
    /// on the next open). Commits are already durable.
    #[cfg(test)]
    pub(crate) fn close_without_checkpoint(mut self) {
        self.checkpoint_on_drop = false;
    }
}

impl Drop for HoltStore {
    fn drop(&mut self) {
        if let Some(background) = self.background.take() {
            background.stop();
        }
        if self.checkpoint_on_drop && self.shared.poison.get().is_none() {
            if let Err(e) = self.shared.checkpoint() {
                tracing::warn!(dir = %self.shared.dir.display(), error = %e, "final checkpoint failed");
            }
        }
    }
}

impl Background {
    fn spawn(shared: Arc<Shared>, every: Duration) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("nokv-holt-ckpt".into())
            .spawn(move || loop {
                {
                    let (flag, cv) = &*signal;
                    let mut stopped = flag.lock();
                    if !*stopped {
                        cv.wait_for(&mut stopped, every);
                    }
                    if *stopped {
                        return;
                    }
                }
                if shared.dirty.load(Ordering::Acquire) && shared.poison.get().is_none() {
                    if let Err(e) = shared.checkpoint() {
                        tracing::warn!(dir = %shared.dir.display(), error = %e, "background checkpoint failed");
                    }
                }
            })
            .expect("spawn checkpoint thread");
        Self {
            stop,
            handle: Some(handle),
        }
    }

    fn stop(mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock() = true;
        cv.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Shared {
    fn pending_path(&self) -> PathBuf {
        self.dir.join(PENDING_FILE)
    }

    fn check_poison(&self) -> Result<(), StoreError> {
        match self.poison.get() {
            Some(cause) => Err(StoreError::Closed(format!(
                "poisoned by an earlier failure: {cause}"
            ))),
            None => Ok(()),
        }
    }

    fn err(&self, e: holt::Error) -> StoreError {
        store_error(e, &self.dir)
    }

    /// Checkpoint, then re-seed the emptied WAL with the marker (invariant 1).
    fn checkpoint(&self) -> Result<(), StoreError> {
        let _exclusive = self.gate.write();
        self.check_poison()?;
        self.dirty.store(false, Ordering::Release);
        let pending = self.pending_path();
        create_durably(&pending).map_err(|e| io_error(&e, &self.dir))?;
        if let Err(e) = self.tree.checkpoint() {
            self.dirty.store(true, Ordering::Release);
            return Err(self.err(e));
        }
        self.write_marker()?;
        // Losing this removal to a crash only costs one unnecessary repair at open.
        fs::remove_file(&pending).map_err(|e| io_error(&e, &self.dir))
    }

    /// A durable WAL record whose sequence exceeds every version assigned so far.
    fn write_marker(&self) -> Result<(), StoreError> {
        self.tree
            .atomic(|b| b.delete(MARKER_KEY))
            .map(drop)
            .map_err(|e| self.err(e))
    }

    /// Re-establish invariant 1 after a crash between a checkpoint's WAL truncation and its
    /// marker. Costs a key scan plus one sequence number per version to skip.
    fn restore_version_floor(&self) -> Result<(), StoreError> {
        let _exclusive = self.gate.write();
        let mut highest = 0u64;
        for entry in self.tree.scan_keys(b"") {
            if let KeyRangeEntry::Key { version, .. } = entry.map_err(|e| self.err(e))? {
                highest = highest.max(version.as_u64());
            }
        }
        tracing::warn!(
            dir = %self.dir.display(),
            highest,
            "interrupted checkpoint found: skipping record versions up to the highest live one"
        );
        // holt resumes at 1 or above, so consuming `highest` numbers puts it past them.
        let mut burned = 0u64;
        while burned < highest {
            let n = (highest - burned).min(BURN_CHUNK);
            // The guard fails (no live record has version 0), so nothing is applied or
            // logged, but holt has reserved a sequence number for every queued op.
            let applied = self
                .tree
                .atomic(|b| {
                    b.assert_version(MARKER_KEY, RecordVersion::from_raw(0));
                    for _ in 0..n {
                        b.delete(MARKER_KEY);
                    }
                })
                .map_err(|e| self.err(e))?;
            debug_assert!(!applied);
            burned += n;
        }
        self.write_marker()?;
        fs::remove_file(self.pending_path()).map_err(|e| io_error(&e, &self.dir))
    }

    /// Record `e` as the poison cause unless holt rejected the batch before applying any
    /// of it.
    fn poison_unless_rejected(&self, e: &holt::Error) {
        let rejected = matches!(
            root_cause(e),
            holt::Error::KeyTooLong { .. }
                | holt::Error::ValueTooLong { .. }
                | holt::Error::WalRecordTooLarge { .. }
                | holt::Error::ReadOnly
        );
        if !rejected {
            let _ = self.poison.set(e.to_string());
        }
    }
}

impl MetaStore for HoltStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let shared = &self.shared;
        shared.check_poison()?;
        shared.tree.get(key).map_err(|e| shared.err(e))
    }

    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let shared = &self.shared;
        shared.check_poison()?;
        let record = shared.tree.get_record(key).map_err(|e| shared.err(e))?;
        Ok(record.map(|r| Versioned {
            value: r.value,
            version: r.version.as_u64(),
        }))
    }

    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        let shared = &self.shared;
        shared.check_poison()?;
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut range = shared.tree.range().prefix(prefix);
        if start > prefix {
            if !start.starts_with(prefix) {
                // `start` differs from `prefix` at a higher byte: it sorts after every key
                // of the prefix.
                return Ok(out);
            }
            // holt's lower bound is exclusive; the trait's is inclusive. Reading `start`
            // first, then the keys after it, is what a cursor positioned at `start` does.
            if let Some(value) = shared.tree.get(start).map_err(|e| shared.err(e))? {
                out.push((start.to_vec(), value));
                if out.len() == limit {
                    return Ok(out);
                }
            }
            range = range.start_after(start);
        }
        for entry in range {
            match entry.map_err(|e| shared.err(e))? {
                RangeEntry::Key { key, value, .. } => out.push((key, value)),
                // Only a delimiter scan yields anything else, and none is issued.
                _ => return Err(StoreError::Io("holt returned a non-key range entry".into())),
            }
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn commit(&self, batch: &Batch) -> Result<bool, StoreError> {
        check_value_sizes(batch)?;
        if batch.ops.iter().any(|op| op.key().is_empty()) {
            return Err(StoreError::Io(
                "the empty key is reserved by the holt store".into(),
            ));
        }
        let shared = &self.shared;
        let _shared_gate = shared.gate.read();
        shared.check_poison()?;
        // Guards go first: holt evaluates a batch in order, and the trait checks every
        // guard against the state before the batch.
        let result = shared.tree.atomic(|b| {
            for guard in &batch.guards {
                match guard {
                    Guard::Absent(key) => b.assert_absent(key),
                    Guard::Version(key, version) => {
                        b.assert_version(key, RecordVersion::from_raw(*version))
                    }
                }
            }
            for op in &batch.ops {
                match op {
                    Op::Put(key, value) => b.put(key, value),
                    Op::Delete(key) => b.delete(key),
                }
            }
        });
        match result {
            Ok(applied) => {
                if applied && !batch.ops.is_empty() {
                    shared.dirty.store(true, Ordering::Release);
                }
                Ok(applied)
            }
            Err(e) => {
                shared.poison_unless_rejected(&e);
                Err(shared.err(e))
            }
        }
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.shared.checkpoint()
    }
}

fn root_cause(e: &holt::Error) -> &holt::Error {
    match e {
        holt::Error::Atomic { source, .. } => root_cause(source),
        other => other,
    }
}

/// Convert a holt error; `dir` is the store directory, used to classify failures holt
/// reports without their OS error.
fn store_error(e: holt::Error, dir: &Path) -> StoreError {
    match root_cause(&e) {
        holt::Error::BlobStoreIo(io) => io_error(io, dir),
        holt::Error::NodeCorrupt { .. } | holt::Error::ReplaySanityFailed { .. } => {
            StoreError::Corrupt(e.to_string())
        }
        holt::Error::ReadOnly | holt::Error::TreeDropped => StoreError::Closed(e.to_string()),
        // The WAL flusher keeps only a static message, not the OS error; a full disk at
        // that moment is the likely cause.
        holt::Error::Internal(_) if disk_full(dir) => StoreError::NoSpace(e.to_string()),
        _ => StoreError::Io(e.to_string()),
    }
}

fn io_error(e: &io::Error, dir: &Path) -> StoreError {
    let enospc = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        );
    if enospc {
        StoreError::NoSpace(format!("{}: {e}", dir.display()))
    } else if e.kind() == io::ErrorKind::WouldBlock {
        // holt's only blocking failure is its exclusive flock on the directory; flock does
        // not record the holder, so the message (with the path) is all there is.
        StoreError::Locked {
            holder: e.to_string(),
        }
    } else {
        StoreError::Io(format!("{}: {e}", dir.display()))
    }
}

/// True when the filesystem holding `dir` has under 1 MiB available.
fn disk_full(dir: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is NUL-terminated and `st` is writable storage for one statvfs.
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return false;
    }
    // SAFETY: statvfs succeeded, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    st.f_bavail.saturating_mul(st.f_frsize) < 1 << 20
}

/// Create `path` and make its existence durable.
fn create_durably(path: &Path) -> io::Result<()> {
    File::create(path)?.sync_all()?;
    match path.parent() {
        Some(parent) => File::open(parent)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tree(dir: &Path) -> Tree {
        TreeBuilder::new(dir)
            .durability(Durability::Wal { sync: true })
            .checkpoint(CheckpointConfig {
                enabled: false,
                ..CheckpointConfig::default()
            })
            .open()
            .unwrap()
    }

    fn write_keys(tree: &Tree, n: u8) -> u64 {
        for i in 0..n {
            tree.atomic(|b| b.put(&[b'k', i], b"v")).unwrap();
        }
        tree.get_record(&[b'k', n - 1])
            .unwrap()
            .unwrap()
            .version
            .as_u64()
    }

    /// Documents the upstream behaviour the marker protocol exists for: after a checkpoint
    /// has emptied the WAL, a reopened holt 0.9.2 tree numbers versions from 1 again. If
    /// this starts failing, holt persists its sequence and the marker can go.
    #[test]
    fn holt_restarts_versions_after_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let highest = {
            let tree = raw_tree(dir.path());
            let highest = write_keys(&tree, 50);
            tree.checkpoint().unwrap();
            highest
        };
        let tree = raw_tree(dir.path());
        tree.atomic(|b| b.put(b"new", b"v")).unwrap();
        let fresh = tree.get_record(b"new").unwrap().unwrap().version.as_u64();
        assert_eq!((highest, fresh), (50, 1));
    }

    /// A crash between a checkpoint's WAL truncation and its marker leaves the pending
    /// file and an empty WAL; open must move the sequence past every live version.
    #[test]
    fn interrupted_checkpoint_restores_version_floor() {
        let dir = tempfile::tempdir().unwrap();
        let highest = {
            let tree = raw_tree(dir.path());
            write_keys(&tree, 200);
            // Enough versions that the repair burns in more than one batch.
            tree.atomic(|b| {
                for i in 0..BURN_CHUNK + 100 {
                    // 32-byte values: with tiny ones holt fails near 10k keys (see the
                    // `small_records` conformance tests).
                    b.put(&[&b"m"[..], &i.to_be_bytes()].concat(), &[7; 32]);
                }
            })
            .unwrap();
            tree.checkpoint().unwrap();
            let last = [&b"m"[..], &(BURN_CHUNK + 99).to_be_bytes()].concat();
            tree.get_record(&last).unwrap().unwrap().version.as_u64()
        };
        File::create(dir.path().join(PENDING_FILE)).unwrap();
        let store = HoltStore::open_with(dir.path(), None).unwrap();
        assert!(!dir.path().join(PENDING_FILE).exists());
        let mut batch = Batch::new();
        batch.put(b"new".to_vec(), b"v".to_vec());
        assert!(store.commit(&batch).unwrap());
        let fresh = store.get_versioned(b"new").unwrap().unwrap().version;
        assert!(fresh > highest, "version {fresh} not above {highest}");
        assert_eq!(store.scan(b"k", b"", 1000).unwrap().len(), 200);
    }

    #[test]
    fn error_mapping() {
        let dir = Path::new("/nonexistent-nokv-test");
        let nospc = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(matches!(io_error(&nospc, dir), StoreError::NoSpace(_)));
        let locked = io::Error::new(io::ErrorKind::WouldBlock, "held");
        assert!(matches!(io_error(&locked, dir), StoreError::Locked { .. }));
        let wrapped = holt::Error::Atomic {
            kind: holt::AtomicErrorKind::DefinitelyNotApplied,
            source: Box::new(holt::Error::BlobStoreIo(io::Error::from_raw_os_error(
                libc::EDQUOT,
            ))),
        };
        assert!(matches!(store_error(wrapped, dir), StoreError::NoSpace(_)));
        let corrupt = holt::Error::node_corrupt("test");
        assert!(matches!(store_error(corrupt, dir), StoreError::Corrupt(_)));
        assert!(matches!(
            store_error(holt::Error::NotFound, dir),
            StoreError::Io(_)
        ));
    }
}
