//! `RedbStore`: the durable [`MetaStore`] on a redb 4 database file.
//!
//! This module owns every use of the `redb` crate: the database file `DIR/meta.redb`, its
//! two tables, the encoding of stored values, version tokens, and the conversion of redb
//! errors into [`StoreError`]. No redb type crosses its boundary.
//!
//! Tables:
//! - `nokv_meta` (`&[u8] -> &[u8]`): one row per key. The stored value is the key's version
//!   token (8 bytes, big-endian) followed by the caller's value.
//! - `nokv_counters` (`&str -> u64`): the row `last_version`, the highest version token
//!   ever handed out, and the row `log_epoch`, the commit log's current epoch.
//!
//! Every commit is one redb write transaction: guards are read inside it, so no other
//! commit can slip in between the check and the writes (redb runs one write transaction at
//! a time); a failed guard aborts the transaction, which leaves the files untouched.
//!
//! Durability comes from the commit log `DIR/meta.log` ([`super::redb_log`], decision 0012),
//! not from redb's own sync: a successful transaction is first appended to the log and synced
//! there, then committed in redb with `Durability::None` (in redb's memory, no file write).
//! Every [`redb_log::CHECKPOINT_RECORDS`] commits, on [`MetaStore::checkpoint`] and on open
//! after a crash, a *checkpoint* makes redb durable (one synced redb commit that also records
//! the next log epoch) and starts the log over. Opening replays the records of the current
//! epoch, in order and with their original version tokens, onto redb's last durable state.
//! So a process kill or power loss at any point leaves each acknowledged transaction present
//! and each unacknowledged one present or absent, never half-applied. Group commit in the
//! core amortises the log sync over many operations.
//!
//! Version tokens: a commit that puts at least one key takes `last_version + 1`, stamps it on
//! every key it puts and stores it back in `nokv_counters`, in the same transaction (and the
//! same log record). Because the counter is persisted with the data it numbers, tokens never
//! repeat, across restarts and crashes included, and a stale [`super::Guard::Version`] always
//! fails.
//!
//! After a crash redb also repairs its allocator state on the next open (a walk of the file,
//! proportional to its size).
//!
//! Invariants:
//! 1. Every row of `nokv_meta` is at least 8 bytes; its first 8 are a version token that no
//!    other write, before or after, has carried, and that is at most `last_version`.
//! 2. Both tables exist once `open` has returned.
//! 3. One process (one `RedbStore`) has the file open for writing; a second open fails with
//!    [`StoreError::Locked`].

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::redb_log::{self, Log, Record};

use super::{check_value_sizes, Batch, Entry, Guard, MetaStore, Op, StoreError, Versioned};

/// The database file inside the store directory.
pub(crate) const FILE_NAME: &str = "meta.redb";

const META: TableDefinition<&[u8], &[u8]> = TableDefinition::new("nokv_meta");
const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("nokv_counters");
const LAST_VERSION: &str = "last_version";
/// The commit log's current epoch (`redb_log`, L2).
const LOG_EPOCH: &str = "log_epoch";

/// Bytes of the version token in front of every stored value.
const TOKEN_LEN: usize = 8;

/// Durable metadata store on a redb database file. See the module docs.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// The commit log; its lock also orders commits (log order = redb order, L1).
    log: Mutex<Log>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Open or create the store in `dir` (created if missing), in the file `dir/meta.redb`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error(&e, dir))?;
        let path = dir.join(FILE_NAME);
        let warned = AtomicBool::new(false);
        let shown = path.clone();
        let db = Database::builder()
            .set_repair_callback(move |_| {
                if !warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(path = %shown.display(), "metadata store was not closed cleanly; repairing");
                }
            })
            .create(&path)
            .map_err(|e| store_error(e, &path))?;
        let log_path = dir.join(redb_log::FILE_NAME);
        let log_err = |e: io::Error| io_error(&e, &log_path);
        let epoch = create_tables(&db).map_err(|e| store_error(e, &path))?;
        let (log, records) = match epoch {
            Some(epoch) => Log::open(dir, epoch).map_err(log_err)?,
            None => {
                // A new database (or one from before the log, whose every commit is
                // durable): no record can belong to it, whatever a stray file holds.
                match fs::remove_file(&log_path) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(log_err(e)),
                    _ => {}
                }
                set_epoch(&db, 1).map_err(|e| store_error(e, &path))?;
                Log::open(dir, 1).map_err(log_err)?
            }
        };
        let store = RedbStore {
            db,
            path,
            log: Mutex::new(log),
        };
        if !records.is_empty() {
            tracing::info!(records = records.len(), "replaying the metadata commit log");
            for r in &records {
                store.replay(r)?;
            }
            store.checkpoint()?;
        }
        Ok(store)
    }

    /// Applies a logged commit again, exactly as it first applied (same version token).
    fn replay(&self, r: &Record) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Io(format!("{}: {e}", self.path.display())))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            let mut counters = txn.open_table(COUNTERS).map_err(|e| self.err(e))?;
            let last = counters
                .get(LAST_VERSION)
                .map_err(|e| self.err(e))?
                .map_or(0, |g| g.value());
            if r.token > last {
                counters
                    .insert(LAST_VERSION, r.token)
                    .map_err(|e| self.err(e))?;
            }
            self.apply(&mut meta, &r.ops, r.token)?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    /// Writes `ops` into `meta`, stamping every put with `token`.
    fn apply(
        &self,
        meta: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
        ops: &[Op],
        token: u64,
    ) -> Result<(), StoreError> {
        let mut row = Vec::new();
        for op in ops {
            match op {
                Op::Put(key, value) => {
                    row.clear();
                    row.extend_from_slice(&token.to_be_bytes());
                    row.extend_from_slice(value);
                    meta.insert(key.as_slice(), row.as_slice())
                        .map_err(|e| self.err(e))?;
                }
                Op::Delete(key) => {
                    meta.remove(key.as_slice()).map_err(|e| self.err(e))?;
                }
            }
        }
        Ok(())
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        store_error(e, &self.path)
    }

    fn corrupt(&self, key: &[u8]) -> StoreError {
        StoreError::Corrupt(format!(
            "{}: value of key {key:02x?} is shorter than its version token",
            self.path.display()
        ))
    }

    /// Split a stored row into its version token and the caller's value.
    fn decode<'a>(&self, key: &[u8], stored: &'a [u8]) -> Result<(u64, &'a [u8]), StoreError> {
        match stored.split_first_chunk::<TOKEN_LEN>() {
            Some((token, value)) => Ok((u64::from_be_bytes(*token), value)),
            None => Err(self.corrupt(key)),
        }
    }

    fn read(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        let Some(row) = table.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        let (version, value) = self.decode(key, row.value())?;
        Ok(Some(Versioned {
            value: value.to_vec(),
            version,
        }))
    }
}

impl MetaStore for RedbStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read(key)?.map(|v| v.value))
    }

    fn get_versioned(&self, key: &[u8]) -> Result<Option<Versioned>, StoreError> {
        self.read(key)
    }

    fn scan(&self, prefix: &[u8], start: &[u8], limit: usize) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        // A start that sorts after the whole prefix yields a first key outside it, which
        // ends the scan at once.
        let from = start.max(prefix);
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        for row in table.range(from..).map_err(|e| self.err(e))? {
            let (key, stored) = row.map_err(|e| self.err(e))?;
            let key = key.value();
            if !key.starts_with(prefix) {
                break;
            }
            let (_, value) = self.decode(key, stored.value())?;
            out.push((key.to_vec(), value.to_vec()));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn commit(&self, batch: &Batch) -> Result<bool, StoreError> {
        check_value_sizes(batch)?;
        if batch.is_empty() {
            return Ok(true);
        }
        let mut log = self.log.lock();
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        // Durable through the log instead (module docs); redb catches up at checkpoints.
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Io(format!("{}: {e}", self.path.display())))?;
        let token = {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            // Guards see the state before the batch: all are read before any op applies.
            for guard in &batch.guards {
                let holds = match guard {
                    Guard::Absent(key) => {
                        meta.get(key.as_slice()).map_err(|e| self.err(e))?.is_none()
                    }
                    Guard::Version(key, want) => {
                        match meta.get(key.as_slice()).map_err(|e| self.err(e))? {
                            Some(row) => self.decode(key, row.value())?.0 == *want,
                            None => false,
                        }
                    }
                };
                if !holds {
                    drop(meta);
                    txn.abort().map_err(|e| self.err(e))?;
                    return Ok(false);
                }
            }
            if batch.ops.is_empty() {
                drop(meta);
                // Nothing to write: no reason to pay for a sync.
                txn.abort().map_err(|e| self.err(e))?;
                return Ok(true);
            }
            let mut token = 0;
            if batch.ops.iter().any(|op| matches!(op, Op::Put(..))) {
                let mut counters = txn.open_table(COUNTERS).map_err(|e| self.err(e))?;
                let last = counters
                    .get(LAST_VERSION)
                    .map_err(|e| self.err(e))?
                    .map_or(0, |g| g.value());
                token = last.checked_add(1).ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "{}: version counter exhausted",
                        self.path.display()
                    ))
                })?;
                counters
                    .insert(LAST_VERSION, token)
                    .map_err(|e| self.err(e))?;
            }
            self.apply(&mut meta, &batch.ops, token)?;
            token
        };
        // The commit is durable once its record is (L3); an error here drops `txn`
        // uncommitted, which aborts it: nothing applies.
        log.append(token, &batch.ops)
            .map_err(|e| io_error(&e, log.path()))?;
        // If redb fails now, the logged commit is replayed on the next open: the caller
        // hears an error for a commit that may survive, as after a crash before the reply.
        txn.commit().map_err(|e| self.err(e))?;
        if log.wants_checkpoint() {
            self.checkpoint_locked(&mut log)?;
        }
        Ok(true)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_locked(&mut self.log.lock())
    }
}

impl RedbStore {
    /// Makes redb durable with everything logged, under the next epoch, then starts the
    /// log over (L2).
    fn checkpoint_locked(&self, log: &mut Log) -> Result<(), StoreError> {
        if log.is_empty() {
            return Ok(()); // redb is durable since the last checkpoint
        }
        let epoch = current_epoch(&self.db)
            .map_err(|e| self.err(e))?
            .unwrap_or(0)
            + 1;
        set_epoch(&self.db, epoch).map_err(|e| self.err(e))?;
        log.restart(epoch);
        Ok(())
    }
}

/// Invariant 2, so that readers never meet a missing table; returns the log epoch, `None`
/// for a database that has none yet.
fn create_tables(db: &Database) -> Result<Option<u64>, redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(META)?;
    txn.open_table(COUNTERS)?;
    txn.commit()?;
    current_epoch(db)
}

fn current_epoch(db: &Database) -> Result<Option<u64>, redb::Error> {
    let txn = db.begin_read()?;
    let counters = txn.open_table(COUNTERS)?;
    Ok(counters.get(LOG_EPOCH)?.map(|g| g.value()))
}

/// A durable commit of `epoch` as the log's epoch (with everything committed before it).
fn set_epoch(db: &Database, epoch: u64) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(COUNTERS)?.insert(LOG_EPOCH, epoch)?;
    txn.commit()?;
    Ok(())
}

/// Convert a redb error for the database file at `path`.
fn store_error(e: impl Into<redb::Error>, path: &Path) -> StoreError {
    let e: redb::Error = e.into();
    match e {
        redb::Error::Io(io) => io_error(&io, path),
        redb::Error::Corrupted(msg) => StoreError::Corrupt(format!("{}: {msg}", path.display())),
        redb::Error::DatabaseAlreadyOpen | redb::Error::LockProtocolMismatch => {
            // The lock records no holder; the volume's own LOCK file names it.
            StoreError::Locked {
                holder: format!("{}: {e}", path.display()),
            }
        }
        // After a failed write redb refuses further use until the file is reopened.
        redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
            StoreError::Closed(format!("{}: {e}", path.display()))
        }
        other => StoreError::Io(format!("{}: {other}", path.display())),
    }
}

fn io_error(e: &io::Error, path: &Path) -> StoreError {
    let full = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        );
    if full {
        StoreError::NoSpace(format!("{}: {e}", path.display()))
    } else {
        StoreError::Io(format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_mapping() {
        let path = Path::new("/nonexistent-nokv-test/meta.redb");
        let nospc = redb::Error::Io(io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(matches!(store_error(nospc, path), StoreError::NoSpace(_)));
        let quota = redb::StorageError::Io(io::Error::from_raw_os_error(libc::EDQUOT));
        assert!(matches!(store_error(quota, path), StoreError::NoSpace(_)));
        let eio = redb::Error::Io(io::Error::from_raw_os_error(libc::EIO));
        assert!(matches!(store_error(eio, path), StoreError::Io(_)));
        let corrupt = redb::StorageError::Corrupted("bad page".into());
        assert!(matches!(store_error(corrupt, path), StoreError::Corrupt(_)));
        assert!(matches!(
            store_error(redb::DatabaseError::DatabaseAlreadyOpen, path),
            StoreError::Locked { .. }
        ));
        assert!(matches!(
            store_error(redb::StorageError::PreviousIo, path),
            StoreError::Closed(_)
        ));
        assert!(matches!(
            store_error(redb::Error::TableDoesNotExist("x".into()), path),
            StoreError::Io(_)
        ));
    }

    /// A row too short to hold a version token is reported as corruption, not a panic.
    #[test]
    fn short_row_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        {
            let txn = store.db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(&b"short"[..], &b"1234"[..])
                .unwrap();
            txn.commit().unwrap();
        }
        assert!(matches!(store.get(b"short"), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            store.scan(b"", b"", 10),
            Err(StoreError::Corrupt(_))
        ));
    }

    /// The counter is the only source of tokens: it survives a reopen and every put of a
    /// commit carries the same new token.
    #[test]
    fn tokens_come_from_the_persisted_counter() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RedbStore::open(dir.path()).unwrap();
            let mut b = Batch::new();
            b.put(b"a".to_vec(), b"1".to_vec())
                .put(b"b".to_vec(), b"2".to_vec());
            assert!(store.commit(&b).unwrap());
            let a = store.get_versioned(b"a").unwrap().unwrap().version;
            let bv = store.get_versioned(b"b").unwrap().unwrap().version;
            assert_eq!((a, bv), (1, 1));
            // A delete-only batch takes no token.
            let mut d = Batch::new();
            d.delete(b"b".to_vec());
            assert!(store.commit(&d).unwrap());
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let mut b = Batch::new();
        b.put(b"c".to_vec(), b"3".to_vec());
        assert!(store.commit(&b).unwrap());
        assert_eq!(store.get_versioned(b"c").unwrap().unwrap().version, 2);
    }

    /// A crash image taken between checkpoints (the files copied while the store is open
    /// and idle): redb's file holds only the last durable commit, and reopening the copy
    /// replays the log, with the same version tokens; a checkpoint then empties the log.
    #[test]
    fn commits_since_the_last_checkpoint_come_back_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        for i in 0..10u32 {
            let mut b = Batch::new();
            b.put(format!("k{i}").into_bytes(), i.to_be_bytes().to_vec());
            if i > 0 {
                b.delete(format!("k{}", i - 1).into_bytes());
            }
            assert!(store.commit(&b).unwrap());
        }
        let image = tempfile::tempdir().unwrap();
        for f in [FILE_NAME, redb_log::FILE_NAME] {
            std::fs::copy(dir.path().join(f), image.path().join(f)).unwrap();
        }
        let copy = RedbStore::open(image.path()).unwrap();
        assert_eq!(copy.get(b"k8").unwrap(), None);
        let v = copy.get_versioned(b"k9").unwrap().unwrap();
        assert_eq!((v.value, v.version), (9u32.to_be_bytes().to_vec(), 10));
        assert!(copy.log.lock().is_empty(), "replay ends with a checkpoint");
        drop(copy);
        // The same image without its log: the commits were not in redb's file.
        std::fs::remove_file(image.path().join(redb_log::FILE_NAME)).unwrap();
        for f in [FILE_NAME, redb_log::FILE_NAME] {
            std::fs::copy(dir.path().join(f), image.path().join(f)).unwrap();
        }
        std::fs::write(image.path().join(redb_log::FILE_NAME), b"").unwrap();
        let bare = RedbStore::open(image.path()).unwrap();
        assert_eq!(bare.get(b"k9").unwrap(), None, "only the log held them");
    }
}
