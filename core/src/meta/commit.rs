//! Group commit: many metadata transactions, one durable store commit.
//!
//! Metadata operations are serialized by the core's writer lock; each produces a list of
//! [`Op`]s and hands it to [`Committer::submit`], which makes it visible at once through an
//! in-memory *overlay* and queues it. A committer thread drains the queue, merges every
//! queued transaction into one atomic store batch (one WAL fsync for all of them) and then
//! retires their overlay entries. While a commit is in flight new transactions queue up and
//! share the next one, so concurrent and back-to-back operations share fsyncs.
//!
//! While durability waits are frequent, the committer *lingers*: when nobody waits yet, it
//! lets transactions gather for up to [`LINGER`] after the first one was queued, and the
//! next durability wait ([`Committer::wait_durable`]) ends the linger at once. An NFS client
//! that creates, writes and COMMITs file after file then pays one store commit per file
//! (its CREATE rides with its COMMIT) instead of waiting for the CREATE's commit in flight
//! and then its own. With no recent wait ([`WAITED_RECENTLY`]) it commits at once: lingering
//! then saves store commits but nobody's latency, and on a VM it leaves the CPUs idle long
//! enough that every wakeup gets slower (measured: FUSE file creation 1.5x slower).
//!
//! A durability wait that finds no store commit in progress and nothing for the barrier to
//! sync commits the queue itself, on the waiting thread ([`Committer::commit_here`]): on a
//! 2-vCPU VM, waking the committer thread and being woken by it cost about as much as the
//! log sync of the commit itself.
//!
//! Invariants:
//! - C1. Reads ([`Committer::get`], [`Committer::scan`]) see every submitted transaction:
//!   the overlay is consulted before the store, and an overlay entry is removed only after
//!   the store commit that contains it returned.
//! - C2. Transactions reach the store in submission order, whole: a merged batch is one
//!   atomic store commit, so a crash keeps a prefix of the submitted transactions. Batches
//!   are taken from the queue and committed under one lock (`Shared::commits`), whichever
//!   thread commits them.
//! - C3. [`Committer::wait_durable`] for a sequence number returns `Ok` only once that
//!   transaction (and every earlier one) is durable.
//! - C4. After a failed store commit the committer is *poisoned*: reads still see the
//!   overlay (what callers were told), but every later submit and wait fails with the
//!   error, so nothing is acknowledged as durable that is not.
//! - C5. Before each store commit the committer runs its *barrier* (the object store's
//!   `sync`), after taking the batch: every object put before a transaction of the batch was
//!   submitted is durable before that transaction's metadata is (D1). Publishing a file
//!   therefore never waits for an object fsync; one barrier covers every file of a batch.
//!   A failed barrier poisons the committer like a failed store commit (C4).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::store::{Batch, MetaStore, Op, StoreError};

/// Most ops merged into one store commit (bounds WAL record size).
const MAX_OPS_PER_COMMIT: usize = 8192;
/// Most value bytes merged into one store commit.
const MAX_BYTES_PER_COMMIT: usize = 4 << 20;
/// How long queued transactions wait for company when nobody waits for them. Bounds how
/// long an operation stays not durable without an `fsync` (plus one store commit).
pub(crate) const LINGER: std::time::Duration = std::time::Duration::from_millis(10);
/// Lingering is on while the last durability wait is at most this old.
const WAITED_RECENTLY: std::time::Duration = std::time::Duration::from_secs(1);

/// A sequence number identifying one submitted transaction.
pub(crate) type Seq = u64;

/// One submitted transaction waiting in the queue.
type Queued = (Seq, Vec<Op>);

/// Runs before every store commit (C5).
pub(crate) type Barrier = Box<dyn ObjectBarrier>;

/// What the committer runs before each store commit: the object store's `sync`.
pub(crate) trait ObjectBarrier: Send + Sync {
    /// Makes every object put so far durable. Blocking.
    fn sync(&self) -> Result<(), StoreError>;
    /// Whether [`Self::sync`] has nothing to do now, so that a commit is only a store
    /// commit: short enough to run on a waiting caller's thread.
    fn is_clear(&self) -> bool;
}

/// A closure barrier (tests): always run, never assumed slow.
impl<F: Fn() -> Result<(), StoreError> + Send + Sync> ObjectBarrier for F {
    fn sync(&self) -> Result<(), StoreError> {
        self()
    }
    fn is_clear(&self) -> bool {
        true
    }
}

struct State {
    /// Submitted but not yet committed writes: key -> (seq of last writer, value or delete).
    overlay: BTreeMap<Vec<u8>, (Seq, Option<Vec<u8>>)>,
    queue: Vec<Queued>,
    /// Ops and value bytes in `queue`.
    queued_ops: usize,
    queued_bytes: usize,
    /// When the oldest queued transaction was queued.
    queued_since: Option<std::time::Instant>,
    /// The newest sequence number somebody waits to be durable (ends the linger).
    wanted: Seq,
    /// When somebody last waited for durability (turns lingering on).
    last_wait: Option<std::time::Instant>,
    next_seq: Seq,
    /// Every transaction up to this one is durable.
    durable: Seq,
    failed: Option<StoreError>,
    shutdown: bool,
    /// The committer thread waits for an empty queue to fill (the only time a submit has
    /// to wake it: while it lingers it wakes at its deadline by itself).
    idle: bool,
}

struct Shared {
    store: Arc<dyn MetaStore>,
    barrier: Barrier,
    state: Mutex<State>,
    work: Condvar,
    /// Signalled after every store commit (success or failure).
    done: Condvar,
    durable_tx: watch::Sender<Seq>,
    /// Held while the committer applies a batch; counts store commits.
    commits: Mutex<u64>,
}

/// The group committer. Dropping it flushes everything queued.
pub(crate) struct Committer {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
    durable_rx: watch::Receiver<Seq>,
}

impl Committer {
    /// A committer over `store` that runs `barrier` before each store commit.
    pub fn new(store: Arc<dyn MetaStore>, barrier: Barrier) -> Self {
        let (durable_tx, durable_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            store,
            barrier,
            state: Mutex::new(State {
                overlay: BTreeMap::new(),
                queue: Vec::new(),
                queued_ops: 0,
                queued_bytes: 0,
                queued_since: None,
                wanted: 0,
                last_wait: None,
                next_seq: 1,
                durable: 0,
                failed: None,
                shutdown: false,
                idle: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable_tx,
            commits: Mutex::new(0),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("nokv-commit".into())
            .spawn(move || run(&s))
            .expect("spawn committer thread");
        Committer {
            shared,
            thread: Mutex::new(Some(thread)),
            durable_rx,
        }
    }

    /// The underlying store (for reads that must bypass nothing: the overlay is separate).
    pub fn store(&self) -> &Arc<dyn MetaStore> {
        &self.shared.store
    }

    /// Makes `ops` visible now and queues them for the next group commit.
    pub fn submit(&self, ops: Vec<Op>) -> Result<Seq, StoreError> {
        let mut st = self.shared.state.lock();
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        if st.shutdown {
            return Err(StoreError::Closed("volume is shutting down".into()));
        }
        crate::store::check_value_sizes(&Batch {
            guards: vec![],
            ops: ops.clone(),
        })?;
        let seq = st.next_seq;
        st.next_seq += 1;
        for op in &ops {
            let v = match op {
                Op::Put(_, v) => Some(v.clone()),
                Op::Delete(_) => None,
            };
            st.overlay.insert(op.key().to_vec(), (seq, v));
        }
        st.queued_ops += ops.len();
        st.queued_bytes += ops.iter().map(op_bytes).sum::<usize>();
        st.queued_since.get_or_insert_with(std::time::Instant::now);
        st.queue.push((seq, ops));
        // Wake the committer only when it waits for work or its batch is full; waking it
        // during its linger for every submit would cost a context switch each.
        let wake = (st.idle && st.queue.len() == 1)
            || st.queued_ops >= MAX_OPS_PER_COMMIT
            || st.queued_bytes >= MAX_BYTES_PER_COMMIT;
        drop(st);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(seq)
    }

    /// The newest submitted sequence number.
    pub fn last_submitted(&self) -> Seq {
        self.shared.state.lock().next_seq - 1
    }

    /// Waits until transaction `seq` (and all before it) is durable.
    ///
    /// When no store commit is in progress and the barrier is clear, the commit runs right
    /// here, on the caller's thread (see [`Self::commit_here`]).
    pub async fn wait_durable(&self, seq: Seq) -> Result<(), StoreError> {
        if let Some(done) = self.commit_here(seq) {
            return done;
        }
        let mut rx = self.durable_rx.clone();
        self.want(seq);
        loop {
            if let Some(e) = &self.shared.state.lock().failed {
                return Err(e.clone());
            }
            if *rx.borrow_and_update() >= seq {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Closed("committer stopped".into()));
            }
        }
    }

    /// Blocking variant of [`Self::wait_durable`] for non-async callers (shutdown, tests).
    pub fn wait_durable_blocking(&self, seq: Seq) -> Result<(), StoreError> {
        if let Some(done) = self.commit_here(seq) {
            return done;
        }
        self.want(seq);
        let mut st = self.shared.state.lock();
        loop {
            if let Some(e) = &st.failed {
                return Err(e.clone());
            }
            if st.durable >= seq {
                return Ok(());
            }
            self.shared.done.wait(&mut st);
        }
    }

    /// Makes `seq` durable on the calling thread when nobody else is committing and the
    /// barrier is clear: the waiter takes the queue (everything up to and past `seq`) and
    /// commits it itself. That saves two thread hand-offs per durability wait (waking the
    /// committer, and the committer waking the waiter), which on a small VM cost as much as
    /// the log sync itself. `None` when the committer thread has to do it (a commit is in
    /// flight, or objects must be synced first, which is too slow for a caller's thread).
    ///
    /// Commits stay in submission order (C2): every batch is taken from the queue and
    /// committed while holding `commits`.
    fn commit_here(&self, seq: Seq) -> Option<Result<(), StoreError>> {
        let mut count = self.shared.commits.try_lock()?;
        loop {
            let mut st = self.shared.state.lock();
            st.last_wait = Some(std::time::Instant::now());
            if let Some(e) = &st.failed {
                return Some(Err(e.clone()));
            }
            if st.durable >= seq {
                return Some(Ok(()));
            }
            if !self.shared.barrier.is_clear() {
                return None;
            }
            let (taken, last) = take_batch(&mut st)?;
            drop(st);
            *count += 1;
            commit_batch(&self.shared, taken, last);
        }
    }

    /// Ends the linger for everything up to `seq`: somebody waits for it.
    fn want(&self, seq: Seq) {
        let mut st = self.shared.state.lock();
        st.last_wait = Some(std::time::Instant::now());
        if seq > st.wanted {
            st.wanted = seq;
            drop(st);
            self.shared.work.notify_one();
        }
    }

    /// The value of `key` including uncommitted transactions.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some((_, v)) = self.shared.state.lock().overlay.get(key) {
            return Ok(v.clone());
        }
        self.shared.store.get(key)
    }

    /// Up to `limit` entries under `prefix` from `start` (inclusive), including uncommitted
    /// transactions.
    pub fn scan(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<crate::store::Entry>, StoreError> {
        let from: Vec<u8> = if start > prefix {
            start.to_vec()
        } else {
            prefix.to_vec()
        };
        // C1: snapshot the overlay *before* reading the store. Only up to the `limit`-th
        // live pending entry: the result cannot reach past it (the overlay may hold many
        // versions of one record, e.g. a directory's inode while files are created in it).
        let pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let st = self.shared.state.lock();
            let mut live = 0;
            let mut out = Vec::new();
            for (k, (_, v)) in st.overlay.range(from.clone()..) {
                if live == limit || !k.starts_with(prefix) {
                    break;
                }
                live += usize::from(v.is_some());
                out.push((k.clone(), v.clone()));
            }
            out
        };
        if pending.is_empty() {
            return self.shared.store.scan(prefix, &from, limit);
        }
        let mut out = Vec::with_capacity(limit.min(1024));
        let mut pi = pending.into_iter().peekable();
        let mut cursor = from;
        let page = limit.clamp(1, 1024);
        'pages: loop {
            let stored = self.shared.store.scan(prefix, &cursor, page)?;
            let exhausted = stored.len() < page;
            let page_end = stored.last().map(|(k, _)| k.clone());
            for (k, v) in stored {
                // Emit overlay entries that sort before this stored key.
                while let Some((pk, _)) = pi.peek() {
                    if *pk < k {
                        let (pk, pv) = pi.next().expect("peeked");
                        if let Some(pv) = pv {
                            out.push((pk, pv));
                            if out.len() == limit {
                                break 'pages;
                            }
                        }
                    } else {
                        break;
                    }
                }
                let item = match pi.peek() {
                    Some((pk, _)) if *pk == k => pi.next().expect("peeked").1.map(|pv| (k, pv)),
                    _ => Some((k, v)),
                };
                if let Some(item) = item {
                    out.push(item);
                    if out.len() == limit {
                        break 'pages;
                    }
                }
            }
            if exhausted {
                for (pk, pv) in pi.by_ref() {
                    if let Some(pv) = pv {
                        out.push((pk, pv));
                        if out.len() == limit {
                            break;
                        }
                    }
                }
                break;
            }
            let mut next = page_end.expect("non-empty page");
            next.push(0);
            cursor = next;
        }
        Ok(out)
    }

    /// Number of store commits so far (each is one WAL fsync on a durable store).
    pub fn store_commits(&self) -> u64 {
        *self.shared.commits.lock()
    }

    /// Waits until everything submitted so far is durable.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let seq = self.last_submitted();
        self.wait_durable_blocking(seq)
    }

    /// Flushes and stops the committer thread. Idempotent.
    pub fn shutdown(&self) -> Result<(), StoreError> {
        let res = self.flush_blocking();
        self.shared.state.lock().shutdown = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
        res
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put(k, v) => k.len() + v.len(),
        Op::Delete(k) => k.len(),
    }
}

fn run(shared: &Shared) {
    loop {
        {
            let mut st = shared.state.lock();
            while st.queue.is_empty() && !st.shutdown {
                st.idle = true;
                shared.work.wait(&mut st);
            }
            st.idle = false;
            if st.queue.is_empty() && st.shutdown {
                return;
            }
            // Linger (while waits are frequent) until somebody waits, the batch is full, or
            // the window of the oldest queued transaction closed. A waiter that commits
            // the queue itself (`Committer::commit_here`) starts a new window: the deadline
            // is taken again from the queue after every wake-up.
            let linger = st.last_wait.is_some_and(|t| t.elapsed() <= WAITED_RECENTLY);
            while linger
                && !st.shutdown
                && !st.queue.is_empty()
                && st.wanted <= st.durable
                && st.queued_ops < MAX_OPS_PER_COMMIT
                && st.queued_bytes < MAX_BYTES_PER_COMMIT
            {
                let deadline = st.queued_since.unwrap_or_else(std::time::Instant::now) + LINGER;
                if std::time::Instant::now() >= deadline {
                    break;
                }
                shared.work.wait_until(&mut st, deadline);
            }
        }
        // C2: a batch is taken and committed under `commits` (a waiter may have committed
        // the queue itself meanwhile, `Committer::commit_here`).
        let mut count = shared.commits.lock();
        let Some((taken, last)) = take_batch(&mut shared.state.lock()) else {
            continue;
        };
        *count += 1;
        commit_batch(shared, taken, last);
    }
}

/// Takes the oldest queued transactions, as many as fit in one store commit; `None` when
/// the queue is empty. The caller holds `Shared::commits`.
fn take_batch(st: &mut State) -> Option<(Vec<Queued>, Seq)> {
    if st.queue.is_empty() {
        return None;
    }
    let mut ops = 0;
    let mut bytes = 0;
    let mut n = 0;
    for (_, q) in &st.queue {
        let qb: usize = q.iter().map(op_bytes).sum();
        if n > 0 && (ops + q.len() > MAX_OPS_PER_COMMIT || bytes + qb > MAX_BYTES_PER_COMMIT) {
            break;
        }
        ops += q.len();
        bytes += qb;
        n += 1;
    }
    let taken: Vec<Queued> = st.queue.drain(..n).collect();
    st.queued_ops -= ops;
    st.queued_bytes -= bytes;
    st.queued_since = if st.queue.is_empty() {
        None
    } else {
        Some(std::time::Instant::now())
    };
    let last = taken.last().map(|(s, _)| *s).unwrap_or(0);
    Some((taken, last))
}

/// Runs the barrier and commits `taken` as one store batch, then retires its overlay
/// entries and wakes the waiters (or poisons the committer, C4). The caller holds
/// `Shared::commits`.
fn commit_batch(shared: &Shared, taken: Vec<Queued>, last_seq: Seq) {
    // Merge: the last op on each key wins; order between distinct keys is irrelevant
    // inside one atomic batch.
    let mut merged: BTreeMap<Vec<u8>, Op> = BTreeMap::new();
    for (_, ops) in taken {
        for op in ops {
            merged.insert(op.key().to_vec(), op);
        }
    }
    let batch = Batch {
        guards: Vec::new(),
        ops: merged.into_values().collect(),
    };
    // C5: the batch is taken, so every object its transactions reference was put.
    let result = shared
        .barrier
        .sync()
        .and_then(|()| shared.store.commit(&batch));
    let mut st = shared.state.lock();
    shared.done.notify_all();
    match result {
        Ok(true) => {
            st.overlay.retain(|_, (seq, _)| *seq > last_seq);
            st.durable = last_seq;
            drop(st);
            shared.durable_tx.send_replace(last_seq);
        }
        Ok(false) => {
            st.failed = Some(StoreError::Io(
                "unguarded group commit reported a guard failure".into(),
            ));
            drop(st);
            shared.durable_tx.send_modify(|_| {});
        }
        Err(e) => {
            tracing::error!(error = %e, "metadata commit failed; volume is now read-only until restart");
            st.failed = Some(e);
            drop(st);
            shared.durable_tx.send_modify(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn no_barrier() -> Barrier {
        Box::new(|| Ok(()))
    }

    fn put(k: &str, v: &str) -> Op {
        Op::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn reads_see_submitted_and_committed() {
        let store = Arc::new(MemStore::new());
        let c = Committer::new(store.clone(), no_barrier());
        let s1 = c.submit(vec![put("a1", "x"), put("a3", "y")]).unwrap();
        let _ = c
            .submit(vec![Op::Delete(b"a3".to_vec()), put("a2", "z")])
            .unwrap();
        assert_eq!(c.get(b"a3").unwrap(), None);
        let all = c.scan(b"a", b"", 10).unwrap();
        assert_eq!(all.len(), 2);
        c.wait_durable_blocking(s1).unwrap();
        c.flush_blocking().unwrap();
        assert_eq!(store.get(b"a2").unwrap(), Some(b"z".to_vec()));
        assert_eq!(store.get(b"a3").unwrap(), None);
        assert_eq!(c.scan(b"a", b"a2", 10).unwrap().len(), 1);
    }

    #[test]
    fn scan_merges_overlay_with_store_pages() {
        let store = Arc::new(MemStore::new());
        let mut b = Batch::new();
        for i in 0..3000u32 {
            b.put(format!("k{i:05}"), "s");
        }
        store.commit(&b).unwrap();
        let c = Committer::new(store, no_barrier());
        // Hold the committer's commit lock so the overlay stays populated.
        let g = c.shared.commits.lock();
        let mut ops = Vec::new();
        for i in (0..3000u32).step_by(2) {
            ops.push(Op::Delete(format!("k{i:05}").into_bytes()));
        }
        ops.push(put("k99999", "o"));
        c.submit(ops).unwrap();
        let got = c.scan(b"k", b"", 10_000).unwrap();
        assert_eq!(got.len(), 1501);
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
        let page = c.scan(b"k", b"k00100", 3).unwrap();
        let keys: Vec<_> = page
            .iter()
            .map(|(k, _)| String::from_utf8(k.clone()).unwrap())
            .collect();
        assert_eq!(keys, ["k00101", "k00103", "k00105"]);
        drop(g);
        c.flush_blocking().unwrap();
        assert_eq!(c.scan(b"k", b"", 10_000).unwrap().len(), 1501);
    }

    /// A store whose commits take a while, like an fsync.
    struct SlowStore(MemStore);

    impl MetaStore for SlowStore {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.0.get(key)
        }
        fn get_versioned(&self, key: &[u8]) -> Result<Option<crate::store::Versioned>, StoreError> {
            self.0.get_versioned(key)
        }
        fn scan(
            &self,
            p: &[u8],
            s: &[u8],
            l: usize,
        ) -> Result<Vec<crate::store::Entry>, StoreError> {
            self.0.scan(p, s, l)
        }
        fn commit(&self, b: &Batch) -> Result<bool, StoreError> {
            std::thread::sleep(std::time::Duration::from_millis(2));
            self.0.commit(b)
        }
        fn checkpoint(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    #[test]
    fn concurrent_durable_operations_share_commits() {
        let store = Arc::new(SlowStore(MemStore::new()));
        let c = Arc::new(Committer::new(store.clone(), no_barrier()));
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let s = c.submit(vec![put(&format!("t{t}-{i:04}"), "v")]).unwrap();
                        c.wait_durable_blocking(s).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(store.0.len(), 400);
        // 400 durable operations; with 8 waiting at a time they share commits.
        let commits = c.store_commits();
        assert!(
            commits < 200,
            "{commits} commits for 400 durable operations"
        );
        // Back-to-back operations without waits are merged too.
        let before = c.store_commits();
        let mut last = 0;
        for i in 0..1000 {
            last = c.submit(vec![put(&format!("b{i:04}"), "v")]).unwrap();
        }
        c.wait_durable_blocking(last).unwrap();
        let used = c.store_commits() - before;
        assert!(
            used < 100,
            "{used} commits for 1000 back-to-back operations"
        );
    }

    #[test]
    fn failed_commit_poisons_and_keeps_reads_consistent() {
        struct Failing;
        impl MetaStore for Failing {
            fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(None)
            }
            fn get_versioned(
                &self,
                _: &[u8],
            ) -> Result<Option<crate::store::Versioned>, StoreError> {
                Ok(None)
            }
            fn scan(
                &self,
                _: &[u8],
                _: &[u8],
                _: usize,
            ) -> Result<Vec<crate::store::Entry>, StoreError> {
                Ok(vec![])
            }
            fn commit(&self, _: &Batch) -> Result<bool, StoreError> {
                Err(StoreError::NoSpace("disk full".into()))
            }
            fn checkpoint(&self) -> Result<(), StoreError> {
                Ok(())
            }
        }
        let c = Committer::new(Arc::new(Failing), no_barrier());
        let s = c.submit(vec![put("k", "v")]).unwrap();
        assert_eq!(
            c.wait_durable_blocking(s),
            Err(StoreError::NoSpace("disk full".into()))
        );
        assert_eq!(c.get(b"k").unwrap(), Some(b"v".to_vec()));
        assert!(c.submit(vec![put("k2", "v")]).is_err());
    }

    #[test]
    fn many_threads_share_commits() {
        let store = Arc::new(MemStore::new());
        let c = Arc::new(Committer::new(store.clone(), no_barrier()));
        let hs: Vec<_> = (0..8)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let s = c.submit(vec![put(&format!("t{t}-{i:04}"), "v")]).unwrap();
                        c.wait_durable_blocking(s).unwrap();
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(store.len(), 1600);
    }

    /// C5: the barrier runs before every store commit, after the batch was taken, and a
    /// failing barrier keeps the batch out of the store and poisons the committer.
    #[test]
    fn the_barrier_runs_before_each_store_commit() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let store = Arc::new(MemStore::new());
        let calls = Arc::new(AtomicUsize::new(0));
        let fail = Arc::new(AtomicBool::new(false));
        // What the store held when the barrier last ran.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let barrier: Barrier = {
            let (store, calls, fail, seen) =
                (store.clone(), calls.clone(), fail.clone(), seen.clone());
            Box::new(move || {
                calls.fetch_add(1, Ordering::SeqCst);
                *seen.lock() = store.scan(b"", b"", 100).unwrap();
                if fail.load(Ordering::SeqCst) {
                    return Err(StoreError::Io("injected barrier failure".into()));
                }
                Ok(())
            })
        };
        let c = Committer::new(store.clone(), barrier);
        let s1 = c.submit(vec![put("a", "1")]).unwrap();
        c.wait_durable_blocking(s1).unwrap();
        assert!(calls.load(Ordering::SeqCst) >= 1);
        assert!(seen.lock().is_empty(), "the barrier ran after the commit");
        assert_eq!(store.get(b"a").unwrap(), Some(b"1".to_vec()));

        fail.store(true, Ordering::SeqCst);
        let s2 = c.submit(vec![put("b", "2")]).unwrap();
        let err = c.wait_durable_blocking(s2).unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(
            store.get(b"b").unwrap(),
            None,
            "committed past a failed barrier"
        );
        assert_eq!(c.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert!(c.submit(vec![put("c", "3")]).is_err());
    }

    /// A store that records which thread made each commit and what it held.
    struct Recording {
        inner: MemStore,
        commits: Mutex<Vec<(std::thread::ThreadId, Vec<Vec<u8>>)>>,
    }

    impl MetaStore for Recording {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn get_versioned(&self, key: &[u8]) -> Result<Option<crate::store::Versioned>, StoreError> {
            self.inner.get_versioned(key)
        }
        fn scan(
            &self,
            prefix: &[u8],
            start: &[u8],
            limit: usize,
        ) -> Result<Vec<crate::store::Entry>, StoreError> {
            self.inner.scan(prefix, start, limit)
        }
        fn commit(&self, b: &Batch) -> Result<bool, StoreError> {
            let keys = b.ops.iter().map(|op| op.key().to_vec()).collect();
            self.commits
                .lock()
                .push((std::thread::current().id(), keys));
            self.inner.commit(b)
        }
        fn checkpoint(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// An idle committer lets the waiter commit on its own thread; a barrier with objects to
    /// sync sends the work back to the committer thread.
    #[test]
    fn an_idle_committer_lets_the_waiter_commit() {
        use std::sync::atomic::{AtomicBool, Ordering};
        struct Flagged(Arc<AtomicBool>);
        impl ObjectBarrier for Flagged {
            fn sync(&self) -> Result<(), StoreError> {
                self.0.store(false, Ordering::SeqCst);
                Ok(())
            }
            fn is_clear(&self) -> bool {
                !self.0.load(Ordering::SeqCst)
            }
        }
        let store = Arc::new(Recording {
            inner: MemStore::new(),
            commits: Mutex::new(Vec::new()),
        });
        let unsynced = Arc::new(AtomicBool::new(false));
        let c = Committer::new(store.clone(), Box::new(Flagged(unsynced.clone())));
        let me = std::thread::current().id();
        let s = c.submit(vec![put("a", "1")]).unwrap();
        c.wait_durable_blocking(s).unwrap();
        let s = c.submit(vec![put("b", "2")]).unwrap();
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(c.wait_durable(s))
            .unwrap();
        unsynced.store(true, Ordering::SeqCst);
        let s = c.submit(vec![put("c", "3")]).unwrap();
        c.wait_durable_blocking(s).unwrap();
        let commits = store.commits.lock().clone();
        let by: Vec<(bool, Vec<Vec<u8>>)> =
            commits.into_iter().map(|(t, k)| (t == me, k)).collect();
        assert_eq!(
            by,
            vec![
                (true, vec![b"a".to_vec()]),
                (true, vec![b"b".to_vec()]),
                (false, vec![b"c".to_vec()]),
            ]
        );
        assert_eq!(store.inner.get(b"c").unwrap(), Some(b"3".to_vec()));
    }

    /// C2 with waiters and the committer thread committing side by side: every thread's
    /// transactions reach the store in the order it submitted them.
    #[test]
    fn commits_keep_submission_order_whoever_commits() {
        let store = Arc::new(Recording {
            inner: MemStore::new(),
            commits: Mutex::new(Vec::new()),
        });
        let c = Arc::new(Committer::new(store.clone(), no_barrier()));
        let hs: Vec<_> = (0..6)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..300 {
                        let s = c.submit(vec![put(&format!("t{t}-{i:04}"), "v")]).unwrap();
                        // Half the threads wait for every transaction, half now and then.
                        if t % 2 == 0 || i % 7 == 0 {
                            c.wait_durable_blocking(s).unwrap();
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        c.flush_blocking().unwrap();
        let mut last: BTreeMap<Vec<u8>, (usize, Vec<u8>)> = BTreeMap::new();
        let commits = store.commits.lock();
        for (n, (_, keys)) in commits.iter().enumerate() {
            for k in keys {
                let thread = k[..k.iter().position(|b| *b == b'-').unwrap()].to_vec();
                if let Some((m, prev)) = last.get(&thread) {
                    assert!(*m <= n && prev < k, "{k:?} committed before {prev:?}");
                }
                last.insert(thread, (n, k.clone()));
            }
        }
        assert_eq!(store.inner.len(), 1800);
    }

    /// Without any durability wait a transaction still becomes durable by itself.
    #[test]
    fn nobody_needs_to_wait_for_a_commit() {
        let store = Arc::new(MemStore::new());
        let c = Committer::new(store.clone(), no_barrier());
        c.submit(vec![put("a", "1")]).unwrap();
        let t0 = std::time::Instant::now();
        while store.get(b"a").unwrap().is_none() {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "never committed"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// While durability waits are frequent, transactions submitted close together share a
    /// store commit even when nobody waits for each one.
    #[test]
    fn lingering_after_a_wait_batches_unwaited_transactions() {
        let store = Arc::new(MemStore::new());
        let c = Committer::new(store.clone(), no_barrier());
        let s = c.submit(vec![put("w", "0")]).unwrap();
        c.wait_durable_blocking(s).unwrap();
        let before = c.store_commits();
        let mut last = 0;
        for i in 0..50 {
            last = c.submit(vec![put(&format!("k{i:02}"), "v")]).unwrap();
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        c.wait_durable_blocking(last).unwrap();
        let commits = c.store_commits() - before;
        // Committing eagerly makes about one commit per transaction here.
        assert!(commits <= 20, "{commits} store commits for 50 transactions");
        assert_eq!(store.len(), 51);
    }
}
