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
//! Commits are serialised by the log's mutex: guards are read under it (memtable first, then
//! redb), so no other commit can slip in between the check and the writes; a failed guard
//! leaves everything untouched. Reads look in the memtable first and then in redb, under the
//! memtable's read lock, which a commit takes for writing only to insert its rows and a
//! checkpoint only to empty it after redb holds the rows: a read sees the memtable and redb
//! of one state (a checkpoint changes redb only by adding what the memtable already shows).
//!
//! Durability comes from the commit log `DIR/meta.log` ([`super::redb_log`], decision 0012),
//! not from redb's own sync: a successful commit is appended to the log and synced there,
//! then applied to an in-memory table of the rows written since the last checkpoint (the
//! *memtable*; no redb transaction per commit). Every [`redb_log::CHECKPOINT_RECORDS`]
//! commits, on [`MetaStore::checkpoint`] and on open after a crash, a *checkpoint* writes the
//! memtable into redb in one synced redb commit that also records the version counter and
//! the next log epoch, then empties the memtable and starts the log over. Opening replays the
//! records of the current epoch, in order and with their original version tokens, into the
//! memtable and takes a checkpoint.
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
//! 1. Every row of `nokv_meta` (and of the memtable) is at least 8 bytes; its first 8 are a
//!    version token that no other write, before or after, has carried, and that is at most
//!    `last_version` (the stored counter after a checkpoint; in memory in between).
//! 2. Both tables exist once `open` has returned.
//! 3. One process (one `RedbStore`) has the file open for writing; a second open fails with
//!    [`StoreError::Locked`].

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::{Mutex, RwLock};
use redb::{Database, ReadableDatabase, TableDefinition};

use super::redb_log::{self, Log};

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

/// Rows committed since the last checkpoint: key -> stored row (version token + value), or
/// `None` for a delete.
type MemTable = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// A key and its stored row (version token + value).
type StoredRow = (Vec<u8>, Vec<u8>);

/// Durable metadata store on a redb database file. See the module docs.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// The commit log and the version counter; the lock orders commits (log order =
    /// memtable order, L1).
    log: Mutex<Logged>,
    /// What the log holds that redb does not yet.
    mem: RwLock<MemTable>,
}

/// The state commits change under the log's lock.
struct Logged {
    log: Log,
    /// The highest version token handed out.
    last_version: u64,
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
        let last_version = stored_last_version(&db).map_err(|e| store_error(e, &path))?;
        let store = RedbStore {
            db,
            path,
            log: Mutex::new(Logged { log, last_version }),
            mem: RwLock::new(MemTable::new()),
        };
        if !records.is_empty() {
            tracing::info!(records = records.len(), "replaying the metadata commit log");
            let mut logged = store.log.lock();
            for r in &records {
                // Exactly as it first applied: same rows, same version token.
                store.apply(&r.ops, r.token);
                logged.last_version = logged.last_version.max(r.token);
            }
            store.checkpoint_locked(&mut logged)?;
        }
        Ok(store)
    }

    /// Writes `ops` into the memtable, stamping every put with `token`.
    fn apply(&self, ops: &[Op], token: u64) {
        let mut mem = self.mem.write();
        for op in ops {
            match op {
                Op::Put(key, value) => {
                    let mut row = Vec::with_capacity(TOKEN_LEN + value.len());
                    row.extend_from_slice(&token.to_be_bytes());
                    row.extend_from_slice(value);
                    mem.insert(key.clone(), Some(row));
                }
                Op::Delete(key) => {
                    mem.insert(key.clone(), None);
                }
            }
        }
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
        let mem = self.mem.read();
        let versioned = |stored: &[u8]| {
            self.decode(key, stored).map(|(version, value)| Versioned {
                value: value.to_vec(),
                version,
            })
        };
        if let Some(row) = mem.get(key) {
            return row.as_deref().map(versioned).transpose();
        }
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        drop(mem); // redb's state now includes every row the memtable lost since
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        let Some(row) = table.get(key).map_err(|e| self.err(e))? else {
            return Ok(None);
        };
        versioned(row.value()).map(Some)
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
        let (recent, txn) = {
            let mem = self.mem.read();
            // Only up to the `limit`-th live row: the result cannot reach past it, and the
            // memtable may hold many deletions of superseded versions of one record (a
            // directory's inode after thousands of creates in it) right after its newest
            // version, which is all a versioned read needs.
            let mut recent: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
            let mut live = 0;
            for (k, v) in
                mem.range::<[u8], _>((std::ops::Bound::Included(from), std::ops::Bound::Unbounded))
            {
                if live == limit || !k.starts_with(prefix) {
                    break;
                }
                live += usize::from(v.is_some());
                recent.push((k.clone(), v.clone()));
            }
            // Begun under the lock: redb and the copy show one state (module docs).
            (recent, self.db.begin_read().map_err(|e| self.err(e))?)
        };
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        let mut stored = table.range(from..).map_err(|e| self.err(e))?;
        let mut recent = recent.into_iter().peekable();
        // The next (key, stored row) of redb within the prefix.
        let mut next_stored = || -> Result<Option<StoredRow>, StoreError> {
            match stored.next() {
                Some(row) => {
                    let (k, v) = row.map_err(|e| self.err(e))?;
                    let k = k.value();
                    if !k.starts_with(prefix) {
                        return Ok(None);
                    }
                    Ok(Some((k.to_vec(), v.value().to_vec())))
                }
                None => Ok(None),
            }
        };
        let mut old = next_stored()?;
        loop {
            // The smaller key goes first; on a tie the memtable's row replaces redb's.
            let take_recent = match (recent.peek(), &old) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((rk, _)), Some((ok, _))) => rk <= ok,
            };
            let (key, row) = if take_recent {
                let (rk, row) = recent.next().expect("peeked");
                if old.as_ref().is_some_and(|(ok, _)| *ok == rk) {
                    old = next_stored()?;
                }
                (rk, row)
            } else {
                let (ok, row) = old.take().expect("matched");
                old = next_stored()?;
                (ok, Some(row))
            };
            let Some(row) = row else { continue }; // deleted since the checkpoint
            let (_, value) = self.decode(&key, &row)?;
            out.push((key.clone(), value.to_vec()));
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
        let mut logged = self.log.lock();
        // Guards see the state before the batch: all are read before any op applies, and
        // no other commit runs while the log is locked.
        for guard in &batch.guards {
            let holds = match guard {
                Guard::Absent(key) => self.read(key)?.is_none(),
                Guard::Version(key, want) => self.read(key)?.is_some_and(|v| v.version == *want),
            };
            if !holds {
                return Ok(false);
            }
        }
        if batch.ops.is_empty() {
            return Ok(true); // nothing to write: no reason to pay for a sync
        }
        let mut token = 0;
        if batch.ops.iter().any(|op| matches!(op, Op::Put(..))) {
            token = logged.last_version.checked_add(1).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "{}: version counter exhausted",
                    self.path.display()
                ))
            })?;
        }
        // The commit is durable once its record is (L3); if the append fails, nothing
        // applies.
        let Logged { log, .. } = &mut *logged;
        log.append(token, &batch.ops)
            .map_err(|e| io_error(&e, log.path()))?;
        self.apply(&batch.ops, token);
        logged.last_version = logged.last_version.max(token);
        if logged.log.wants_checkpoint() {
            // If redb fails now, the logged commit is replayed on the next open: the caller
            // hears an error for a commit that survives, as after a crash before the reply.
            self.checkpoint_locked(&mut logged)?;
        }
        Ok(true)
    }

    fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpoint_locked(&mut self.log.lock())
    }
}

impl RedbStore {
    /// Writes the memtable into redb in one synced commit that also stores the version
    /// counter and the next log epoch, then empties the memtable and starts the log over (L2).
    fn checkpoint_locked(&self, logged: &mut Logged) -> Result<(), StoreError> {
        if logged.log.is_empty() {
            return Ok(()); // redb holds everything since the last checkpoint
        }
        let epoch = current_epoch(&self.db)
            .map_err(|e| self.err(e))?
            .unwrap_or(0)
            + 1;
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            // Commits wait on the log's lock, so the memtable does not change meanwhile;
            // readers keep seeing it until it is emptied below.
            let mem = self.mem.read();
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            for (key, row) in mem.iter() {
                match row {
                    Some(row) => {
                        meta.insert(key.as_slice(), row.as_slice())
                            .map_err(|e| self.err(e))?;
                    }
                    None => {
                        meta.remove(key.as_slice()).map_err(|e| self.err(e))?;
                    }
                }
            }
            let mut counters = txn.open_table(COUNTERS).map_err(|e| self.err(e))?;
            counters
                .insert(LAST_VERSION, logged.last_version)
                .map_err(|e| self.err(e))?;
            counters.insert(LOG_EPOCH, epoch).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.mem.write().clear();
        logged.log.restart(epoch);
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

/// The version counter as of the last checkpoint.
fn stored_last_version(db: &Database) -> Result<u64, redb::Error> {
    let txn = db.begin_read()?;
    let counters = txn.open_table(COUNTERS)?;
    Ok(counters.get(LAST_VERSION)?.map_or(0, |g| g.value()))
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

    /// Reads merge the memtable (rows since the last checkpoint) with redb: newer rows
    /// replace older ones, deletes hide them, and scans stay in key order with their start
    /// and limit, on either side of a checkpoint. Checked against a map after every commit.
    #[test]
    fn reads_merge_the_memtable_with_redb() {
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let key = |n: u64| format!("p{:03}", n * 7 % 50).into_bytes();
        for i in 0..3 * redb_log::CHECKPOINT_RECORDS {
            let mut b = Batch::new();
            b.put(key(i), i.to_be_bytes().to_vec());
            model.insert(key(i), i.to_be_bytes().to_vec());
            if i % 3 == 0 {
                b.delete(key(i / 2));
                model.remove(&key(i / 2));
            }
            b.put(format!("q{i}").into_bytes(), vec![1]); // outside the scanned prefix
            assert!(store.commit(&b).unwrap());
            for (start, limit) in [
                (&b"p"[..], 1000),
                (&b"p"[..], 1),
                (&b"p"[..], 2),
                (&b"p010"[..], 5),
                (&b"p049"[..], 3),
            ] {
                let got = store.scan(b"p", start, limit).unwrap();
                let want: Vec<(Vec<u8>, Vec<u8>)> = model
                    .range(start.to_vec()..)
                    .take(limit)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                assert_eq!(got, want, "after commit {i}, from {start:?}");
            }
            for n in 0..50u64 {
                let k = format!("p{n:03}").into_bytes();
                assert_eq!(
                    store.get(&k).unwrap(),
                    model.get(&k).cloned(),
                    "{n} after {i}"
                );
            }
        }
        // Reopened: everything came back from redb and the log.
        drop(store);
        let store = RedbStore::open(dir.path()).unwrap();
        let all: BTreeMap<Vec<u8>, Vec<u8>> =
            store.scan(b"p", b"", 1000).unwrap().into_iter().collect();
        assert_eq!(all, model);
    }

    /// The shape of a versioned read after many updates of one record: its newest version
    /// first, then the deletions of the versions it superseded (in the memtable), shadowing
    /// rows that reached redb at a checkpoint. Limited scans stop at the limit-th live row and
    /// still never return a deleted one.
    #[test]
    fn limited_scans_over_many_memtable_deletions() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path()).unwrap();
        let key = |n: u32| format!("v{n:05}").into_bytes();
        // Versions 100..=1000 reach redb at a checkpoint.
        let mut b = Batch::new();
        for n in 100..=1000 {
            b.put(key(n), n.to_be_bytes().to_vec());
        }
        assert!(store.commit(&b).unwrap());
        store.checkpoint().unwrap();
        // One commit: a newer version 50, every old one deleted but 700 and 1000.
        let mut b = Batch::new();
        b.put(key(50), 50u32.to_be_bytes().to_vec());
        for n in (100..1000).filter(|n| *n != 700) {
            b.delete(key(n));
        }
        assert!(store.commit(&b).unwrap());
        let row = |n: u32| (key(n), n.to_be_bytes().to_vec());
        assert_eq!(store.scan(b"v", b"", 1).unwrap(), vec![row(50)]);
        assert_eq!(store.scan(b"v", b"", 2).unwrap(), vec![row(50), row(700)]);
        assert_eq!(
            store.scan(b"v", b"", 10).unwrap(),
            vec![row(50), row(700), row(1000)]
        );
        assert_eq!(store.scan(b"v", &key(51), 1).unwrap(), vec![row(700)]);
        assert_eq!(store.scan(b"v", &key(701), 5).unwrap(), vec![row(1000)]);
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
        assert!(
            copy.log.lock().log.is_empty(),
            "replay ends with a checkpoint"
        );
        assert!(
            copy.mem.read().is_empty(),
            "the checkpoint empties the memtable"
        );
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
