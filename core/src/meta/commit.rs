//! Group commit: many metadata transactions, one durable store commit.
//!
//! Metadata operations are serialized by the core's writer lock; each produces a list of
//! [`Op`]s and hands it to [`Committer::submit`], which makes it visible at once through an
//! in-memory *overlay* and queues it. A committer thread drains the queue, merges every
//! queued transaction into one atomic store batch (one WAL fsync for all of them) and then
//! retires their overlay entries. While a commit is in flight new transactions queue up and
//! share the next one, so concurrent and back-to-back operations share fsyncs.
//!
//! Invariants:
//! - C1. Reads ([`Committer::get`], [`Committer::scan`]) see every submitted transaction:
//!   the overlay is consulted before the store, and an overlay entry is removed only after
//!   the store commit that contains it returned.
//! - C2. Transactions reach the store in submission order, whole: a merged batch is one
//!   atomic store commit, so a crash keeps a prefix of the submitted transactions.
//! - C3. [`Committer::wait_durable`] for a sequence number returns `Ok` only once that
//!   transaction (and every earlier one) is durable.
//! - C4. After a failed store commit the committer is *poisoned*: reads still see the
//!   overlay (what callers were told), but every later submit and wait fails with the
//!   error, so nothing is acknowledged as durable that is not.

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

/// A sequence number identifying one submitted transaction.
pub(crate) type Seq = u64;

struct State {
    /// Submitted but not yet committed writes: key -> (seq of last writer, value or delete).
    overlay: BTreeMap<Vec<u8>, (Seq, Option<Vec<u8>>)>,
    queue: Vec<(Seq, Vec<Op>)>,
    next_seq: Seq,
    /// Every transaction up to this one is durable.
    durable: Seq,
    failed: Option<StoreError>,
    shutdown: bool,
}

struct Shared {
    store: Arc<dyn MetaStore>,
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
    pub fn new(store: Arc<dyn MetaStore>) -> Self {
        let (durable_tx, durable_rx) = watch::channel(0);
        let shared = Arc::new(Shared {
            store,
            state: Mutex::new(State {
                overlay: BTreeMap::new(),
                queue: Vec::new(),
                next_seq: 1,
                durable: 0,
                failed: None,
                shutdown: false,
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
        st.queue.push((seq, ops));
        drop(st);
        self.shared.work.notify_one();
        Ok(seq)
    }

    /// The newest submitted sequence number.
    pub fn last_submitted(&self) -> Seq {
        self.shared.state.lock().next_seq - 1
    }

    /// Waits until transaction `seq` (and all before it) is durable.
    pub async fn wait_durable(&self, seq: Seq) -> Result<(), StoreError> {
        let mut rx = self.durable_rx.clone();
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
        // C1: snapshot the overlay *before* reading the store.
        let pending: Vec<(Vec<u8>, Option<Vec<u8>>)> = {
            let st = self.shared.state.lock();
            st.overlay
                .range(from.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, (_, v))| (k.clone(), v.clone()))
                .collect()
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

fn run(shared: &Shared) {
    loop {
        let (taken, last_seq) = {
            let mut st = shared.state.lock();
            while st.queue.is_empty() && !st.shutdown {
                shared.work.wait(&mut st);
            }
            if st.queue.is_empty() && st.shutdown {
                return;
            }
            let mut ops = 0;
            let mut bytes = 0;
            let mut n = 0;
            for (_, q) in &st.queue {
                let qb: usize = q
                    .iter()
                    .map(|o| match o {
                        Op::Put(k, v) => k.len() + v.len(),
                        Op::Delete(k) => k.len(),
                    })
                    .sum();
                if n > 0
                    && (ops + q.len() > MAX_OPS_PER_COMMIT || bytes + qb > MAX_BYTES_PER_COMMIT)
                {
                    break;
                }
                ops += q.len();
                bytes += qb;
                n += 1;
            }
            let taken: Vec<(Seq, Vec<Op>)> = st.queue.drain(..n).collect();
            let last = taken.last().map(|(s, _)| *s).unwrap_or(0);
            (taken, last)
        };
        let mut _g = shared.commits.lock();
        *_g += 1;
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
        let result = shared.store.commit(&batch);
        drop(_g);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemStore;

    fn put(k: &str, v: &str) -> Op {
        Op::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    #[test]
    fn reads_see_submitted_and_committed() {
        let store = Arc::new(MemStore::new());
        let c = Committer::new(store.clone());
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
        let c = Committer::new(store);
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
        let c = Arc::new(Committer::new(store.clone()));
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
        let c = Committer::new(Arc::new(Failing));
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
        let c = Arc::new(Committer::new(store.clone()));
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
}
