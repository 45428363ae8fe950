//! Conformance suite for every [`MetaStore`].
//!
//! Each behaviour is written once, as a function over `&dyn MetaStore`, and instantiated
//! for [`MemStore`] (the reference), [`HoltStore`] and [`RedbStore`] (each in a temporary
//! directory) by the `for_each_store!` macro. Tests that need a restart or a process kill
//! are written once over an [`Engine`] and run on both durable engines (`holt_durable`,
//! `redb_durable`). The regression tests for the measured holt 0.9.2 defects (see
//! `docs/decisions/0001-holt-metadata-engine.md`) run on holt in `holt_only`; `redb_only`
//! checks that redb stores what holt cannot (see
//! `docs/decisions/0003-redb-default-metadata-engine.md`).
//!
//! Keys in the regression tests are shaped like NoKV keys (family tag byte first,
//! fixed-width big-endian integers, names terminated by 0x00, fixed-width inverted version
//! last), built by the small helpers below. They are not the production codec, which lives
//! in `meta::keys`; they follow the same rule, that no key is a strict prefix of another.

use std::path::Path;

use super::{
    Batch, Entry, HoltStore, MemStore, MetaStore, Op, RedbStore, StoreError, MAX_VALUE_LEN,
};

// ---------------------------------------------------------------------------------------
// Helpers

fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// `I | BE(layer) | BE(ino) | BE(!version)`
fn inode_key(layer: u64, ino: u64, version: u64) -> Vec<u8> {
    [&b"I"[..], &be(layer), &be(ino), &be(!version)].concat()
}

/// `C | BE(layer) | BE(ino) | BE(chunk) | BE(!version)`
fn chunk_key(layer: u64, ino: u64, chunk: u64, version: u64) -> Vec<u8> {
    [&b"C"[..], &be(layer), &be(ino), &be(chunk), &be(!version)].concat()
}

/// `D | BE(layer) | BE(dir) | name | 0x00 | BE(!version)`
fn dentry_key(layer: u64, dir: u64, name: &[u8], version: u64) -> Vec<u8> {
    [&b"D"[..], &be(layer), &be(dir), name, &[0], &be(!version)].concat()
}

/// `X | BE(layer) | BE(ino) | name | 0x00 | BE(!version)`
fn xattr_key(layer: u64, ino: u64, name: &[u8], version: u64) -> Vec<u8> {
    [&b"X"[..], &be(layer), &be(ino), name, &[0], &be(!version)].concat()
}

/// The smallest key greater than `key`: where the next page of a scan starts.
fn successor(key: &[u8]) -> Vec<u8> {
    [key, &[0]].concat()
}

/// A pair of `keys` in which the first is a strict prefix of the second, if any.
fn prefix_violation(keys: &[Vec<u8>]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut sorted = keys.to_vec();
    sorted.sort();
    sorted.dedup();
    // In sorted order every key extending `k` directly follows `k`.
    sorted
        .windows(2)
        .find(|w| w[1].starts_with(&w[0]))
        .map(|w| (w[0].clone(), w[1].clone()))
}

fn commit_with(store: &dyn MetaStore, build: impl FnOnce(&mut Batch)) -> bool {
    let mut batch = Batch::new();
    build(&mut batch);
    store.commit(&batch).expect("commit")
}

fn put(store: &dyn MetaStore, key: &[u8], value: &[u8]) {
    assert!(commit_with(store, |b| {
        b.put(key, value);
    }));
}

fn keys_of(entries: &[Entry]) -> Vec<Vec<u8>> {
    entries.iter().map(|(k, _)| k.clone()).collect()
}

/// Every entry under `prefix`, read in pages of `page` by repeated scans.
fn scan_paged(store: &dyn MetaStore, prefix: &[u8], page: usize) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let mut start = prefix.to_vec();
    loop {
        let got = store.scan(prefix, &start, page).expect("scan");
        assert!(got.len() <= page, "scan returned more than its limit");
        let Some((last, _)) = got.last() else { break };
        start = successor(last);
        let full = got.len() == page;
        out.extend(got);
        if !full {
            break;
        }
    }
    out
}

/// Sizes of the files under `dir`: `(apparent, allocated)` bytes (for reports, not checks).
fn dir_bytes(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let (apparent, allocated) = if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            (meta.len(), meta.blocks() * 512)
        };
        total.0 += apparent;
        total.1 += allocated;
    }
    total
}

/// Asserts `got` is exactly `expected` (sorted, no duplicates), reporting the first
/// difference rather than two huge vectors.
fn assert_same_keys(got: &[Vec<u8>], expected: &[Vec<u8>]) {
    if let Some(i) = got.windows(2).position(|w| w[0] >= w[1]) {
        panic!(
            "keys out of order or repeated at {i}: {:02x?} then {:02x?}",
            got[i],
            got[i + 1]
        );
    }
    if let Some(i) = (0..got.len().min(expected.len())).find(|&i| got[i] != expected[i]) {
        panic!(
            "key {i} differs: got {:02x?}, expected {:02x?}",
            got[i], expected[i]
        );
    }
    assert_eq!(got.len(), expected.len(), "number of keys");
}

// ---------------------------------------------------------------------------------------
// Behaviour shared by every store

fn get_put_delete(s: &dyn MetaStore) {
    assert_eq!(s.get(b"a1").unwrap(), None);
    assert_eq!(s.get_versioned(b"a1").unwrap(), None);
    put(s, b"a1", b"one");
    assert_eq!(s.get(b"a1").unwrap().as_deref(), Some(&b"one"[..]));
    assert_eq!(s.get_versioned(b"a1").unwrap().unwrap().value, b"one");
    assert!(commit_with(s, |b| {
        b.delete(b"a1".to_vec());
    }));
    assert_eq!(s.get(b"a1").unwrap(), None);
    // Deleting an absent key is not an error.
    assert!(commit_with(s, |b| {
        b.delete(b"a1".to_vec());
    }));
    // Empty values are values.
    put(s, b"a2", b"");
    assert_eq!(s.get(b"a2").unwrap(), Some(vec![]));
}

fn overwrite(s: &dyn MetaStore) {
    put(s, b"k1", b"first");
    put(s, b"k1", b"second, longer value");
    put(s, b"k1", b"3");
    assert_eq!(s.get(b"k1").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(
        s.scan(b"k", b"", 10).unwrap(),
        vec![(b"k1".to_vec(), b"3".to_vec())]
    );
}

fn empty_batch(s: &dyn MetaStore) {
    assert!(s.commit(&Batch::new()).unwrap());
    // A guard-only batch reports its guards and writes nothing.
    put(s, b"g1", b"v");
    assert!(commit_with(s, |b| {
        b.assert_absent(b"g2".to_vec());
    }));
    assert!(!commit_with(s, |b| {
        b.assert_absent(b"g1".to_vec());
    }));
    assert_eq!(s.scan(b"g", b"", 10).unwrap().len(), 1);
}

/// Keys `p1`..`p9` and neighbours outside the prefix on both sides.
fn load_scan_fixture(s: &dyn MetaStore) {
    assert!(commit_with(s, |b| {
        b.put(b"o9".to_vec(), b"before".to_vec());
        for i in (1..=9u8).rev() {
            b.put(vec![b'p', b'0' + i], vec![i]);
        }
        b.put(b"q0".to_vec(), b"after".to_vec());
    }));
}

fn p(i: u8) -> Vec<u8> {
    vec![b'p', b'0' + i]
}

fn scan_prefix_in_order(s: &dyn MetaStore) {
    load_scan_fixture(s);
    let all = s.scan(b"p", b"", 100).unwrap();
    assert_eq!(all, (1..=9).map(|i| (p(i), vec![i])).collect::<Vec<_>>());
    assert_eq!(keys_of(&s.scan(b"", b"", 100).unwrap()).len(), 11);
    assert!(s.scan(b"r", b"", 100).unwrap().is_empty());
    // A key equal to the prefix is part of the prefix.
    assert_eq!(keys_of(&s.scan(b"p5", b"", 100).unwrap()), vec![p(5)]);
}

fn scan_start_is_inclusive(s: &dyn MetaStore) {
    load_scan_fixture(s);
    assert_eq!(
        keys_of(&s.scan(b"p", &p(4), 3).unwrap()),
        vec![p(4), p(5), p(6)]
    );
    // A start that is not a key begins at the next key.
    assert_eq!(
        keys_of(&s.scan(b"p", b"p4\x00", 2).unwrap()),
        vec![p(5), p(6)]
    );
    assert_eq!(keys_of(&s.scan(b"p", b"p45", 2).unwrap()), vec![p(5), p(6)]);
    // Start at the last key, and at the prefix itself.
    assert_eq!(keys_of(&s.scan(b"p", &p(9), 5).unwrap()), vec![p(9)]);
    assert_eq!(keys_of(&s.scan(b"p", b"p", 2).unwrap()), vec![p(1), p(2)]);
    assert_eq!(keys_of(&s.scan(b"p5", b"p5", 2).unwrap()), vec![p(5)]);
}

fn scan_start_before_prefix(s: &dyn MetaStore) {
    load_scan_fixture(s);
    // Empty, before the prefix, shorter, and longer than the prefix but before its
    // first key.
    for start in [&b""[..], b"a", b"o9", b"o\xff\xff", b"p\x00"] {
        let got = keys_of(&s.scan(b"p", start, 2).unwrap());
        assert_eq!(got, vec![p(1), p(2)], "start {start:02x?}");
    }
    // Shorter than the prefix and a prefix of it.
    assert_eq!(keys_of(&s.scan(b"p5", b"p", 9).unwrap()), vec![p(5)]);
}

fn scan_start_past_end(s: &dyn MetaStore) {
    load_scan_fixture(s);
    for start in [&b"p9\x00"[..], b"pa", b"q", b"q0", b"\xff"] {
        assert!(
            s.scan(b"p", start, 10).unwrap().is_empty(),
            "start {start:02x?}"
        );
    }
}

fn scan_limit_and_pages(s: &dyn MetaStore) {
    load_scan_fixture(s);
    assert!(s.scan(b"p", b"", 0).unwrap().is_empty());
    assert_eq!(keys_of(&s.scan(b"p", b"", 1).unwrap()), vec![p(1)]);
    assert_eq!(s.scan(b"p", b"", 9).unwrap().len(), 9);
    assert_eq!(s.scan(b"p", b"", usize::MAX).unwrap().len(), 9);
    for page in 1..=10 {
        let all = scan_paged(s, b"p", page);
        assert_eq!(
            keys_of(&all),
            (1..=9).map(p).collect::<Vec<_>>(),
            "page size {page}"
        );
    }
}

fn absent_guard_is_all_or_nothing(s: &dyn MetaStore) {
    put(s, b"taken", b"x");
    let applied = commit_with(s, |b| {
        b.put(b"new1".to_vec(), b"1".to_vec());
        b.delete(b"taken".to_vec());
        b.assert_absent(b"free".to_vec());
        b.assert_absent(b"taken".to_vec());
        b.put(b"new2".to_vec(), b"2".to_vec());
    });
    assert!(!applied);
    assert_eq!(s.get(b"new1").unwrap(), None);
    assert_eq!(s.get(b"new2").unwrap(), None);
    assert_eq!(s.get(b"taken").unwrap().as_deref(), Some(&b"x"[..]));
    // The same batch without the failing guard applies.
    assert!(commit_with(s, |b| {
        b.assert_absent(b"free".to_vec());
        b.put(b"new1".to_vec(), b"1".to_vec());
    }));
    assert_eq!(s.get(b"new1").unwrap().as_deref(), Some(&b"1"[..]));
}

fn version_guard_is_all_or_nothing(s: &dyn MetaStore) {
    put(s, b"ver", b"v1");
    let v1 = s.get_versioned(b"ver").unwrap().unwrap().version;
    // Current version: applies.
    assert!(commit_with(s, |b| {
        b.assert_version(b"ver".to_vec(), v1);
        b.put(b"ver".to_vec(), b"v2".to_vec());
        b.put(b"side".to_vec(), b"a".to_vec());
    }));
    let v2 = s.get_versioned(b"ver").unwrap().unwrap().version;
    assert_ne!(v1, v2);
    // Stale version: nothing applies.
    assert!(!commit_with(s, |b| {
        b.put(b"side".to_vec(), b"b".to_vec());
        b.assert_version(b"ver".to_vec(), v1);
        b.put(b"ver".to_vec(), b"v3".to_vec());
    }));
    assert_eq!(s.get(b"ver").unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(s.get(b"side").unwrap().as_deref(), Some(&b"a"[..]));
    // Version of an absent key: fails.
    assert!(!commit_with(s, |b| {
        b.assert_version(b"nokey".to_vec(), v2);
        b.put(b"side".to_vec(), b"c".to_vec());
    }));
    // A version that went stale through a delete and re-create.
    assert!(commit_with(s, |b| {
        b.delete(b"ver".to_vec());
    }));
    put(s, b"ver", b"v2");
    assert!(!commit_with(s, |b| {
        b.assert_version(b"ver".to_vec(), v2);
        b.put(b"side".to_vec(), b"d".to_vec());
    }));
    assert_eq!(s.get(b"side").unwrap().as_deref(), Some(&b"a"[..]));
    // Several guards: all must hold.
    let v = s.get_versioned(b"ver").unwrap().unwrap().version;
    assert!(!commit_with(s, |b| {
        b.assert_version(b"ver".to_vec(), v);
        b.assert_absent(b"side".to_vec());
        b.put(b"side".to_vec(), b"e".to_vec());
    }));
    assert!(commit_with(s, |b| {
        b.assert_version(b"ver".to_vec(), v);
        b.assert_absent(b"other".to_vec());
        b.put(b"side".to_vec(), b"e".to_vec());
    }));
    assert_eq!(s.get(b"side").unwrap().as_deref(), Some(&b"e"[..]));
}

fn guards_see_state_before_batch(s: &dyn MetaStore) {
    put(s, b"gv", b"1");
    let v = s.get_versioned(b"gv").unwrap().unwrap().version;
    // The ops write the guarded keys, yet the guards hold against the prior state.
    assert!(commit_with(s, |b| {
        b.put(b"gn".to_vec(), b"x".to_vec());
        b.put(b"gv".to_vec(), b"2".to_vec());
        b.assert_absent(b"gn".to_vec());
        b.assert_version(b"gv".to_vec(), v);
    }));
    assert_eq!(s.get(b"gn").unwrap().as_deref(), Some(&b"x"[..]));
    assert_eq!(s.get(b"gv").unwrap().as_deref(), Some(&b"2"[..]));
}

fn version_changes_on_every_write(s: &dyn MetaStore) {
    let mut seen = std::collections::HashSet::new();
    for i in 0..20u8 {
        // Same value every time: the version must still move.
        put(s, b"hot", b"same");
        let v = s.get_versioned(b"hot").unwrap().unwrap().version;
        assert!(seen.insert(v), "version {v} repeated at write {i}");
        put(s, b"other", &[i]);
    }
    // A version survives reads and writes of other keys.
    let v = s.get_versioned(b"hot").unwrap().unwrap().version;
    put(s, b"other", b"z");
    assert_eq!(s.get_versioned(b"hot").unwrap().unwrap().version, v);
}

fn later_op_on_same_key_wins(s: &dyn MetaStore) {
    put(s, b"w3", b"old");
    assert!(commit_with(s, |b| {
        b.put(b"w1".to_vec(), b"a".to_vec());
        b.put(b"w1".to_vec(), b"b".to_vec());
        b.put(b"w2".to_vec(), b"a".to_vec());
        b.delete(b"w2".to_vec());
        b.delete(b"w3".to_vec());
        b.put(b"w3".to_vec(), b"new".to_vec());
        b.put(b"w4".to_vec(), b"a".to_vec());
        b.delete(b"w4".to_vec());
        b.put(b"w4".to_vec(), b"c".to_vec());
    }));
    assert_eq!(s.get(b"w1").unwrap().as_deref(), Some(&b"b"[..]));
    assert_eq!(s.get(b"w2").unwrap(), None);
    assert_eq!(s.get(b"w3").unwrap().as_deref(), Some(&b"new"[..]));
    assert_eq!(s.get(b"w4").unwrap().as_deref(), Some(&b"c"[..]));
    assert_eq!(keys_of(&s.scan(b"w", b"", 10).unwrap()).len(), 3);
}

fn value_size_limit(s: &dyn MetaStore) {
    let max = vec![0xabu8; MAX_VALUE_LEN];
    put(s, b"big", &max);
    assert_eq!(s.get(b"big").unwrap().as_deref(), Some(&max[..]));
    let mut batch = Batch::new();
    batch.put(b"v1".to_vec(), b"small".to_vec());
    batch.delete(b"big".to_vec());
    batch.put(b"v2".to_vec(), vec![1u8; MAX_VALUE_LEN + 1]);
    match s.commit(&batch) {
        Err(StoreError::ValueTooLarge { len, max }) => {
            assert_eq!((len, max), (MAX_VALUE_LEN + 1, MAX_VALUE_LEN));
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert_eq!(s.get(b"v1").unwrap(), None);
    assert_eq!(s.get(b"v2").unwrap(), None);
    assert_eq!(s.get(b"big").unwrap().as_deref(), Some(&max[..]));
    // The store still works afterwards.
    put(s, b"v1", b"ok");
    assert_eq!(s.get(b"v1").unwrap().as_deref(), Some(&b"ok"[..]));
}

/// NoKV-shaped keys of several families in one layer: `n` keys in total, about two
/// thirds dentries (in directories of 1,000) and one third inodes. Returns them sorted.
fn nokv_shaped_keys(n: u64) -> Vec<Vec<u8>> {
    let dentries = n * 2 / 3;
    let mut keys: Vec<Vec<u8>> = (0..dentries)
        .map(|i| dentry_key(1, 1000 + i / 1000, format!("file-{i:07}.rs").as_bytes(), 7))
        .chain((dentries..n).map(|i| inode_key(1, i, 3)))
        .collect();
    keys.sort();
    keys
}

fn value_for(key: &[u8]) -> Vec<u8> {
    // Distinct per key, so a mixed-up value is caught; a dentry-sized payload.
    let h = xxhash_rust::xxh3::xxh3_64(key);
    [&h.to_le_bytes()[..], &[0x5a; 24]].concat()
}

fn write_in_batches(s: &dyn MetaStore, keys: &[Vec<u8>], per_batch: usize) {
    // Insert in a different order than sorted, as a real workload would.
    let mut order: Vec<&Vec<u8>> = keys.iter().collect();
    order.sort_by_key(|k| xxhash_rust::xxh3::xxh3_64(k));
    for chunk in order.chunks(per_batch) {
        let mut batch = Batch::new();
        for key in chunk {
            batch.put(key.to_vec(), value_for(key));
        }
        assert!(s.commit(&batch).unwrap());
    }
}

/// Every key under each family prefix, and under the empty prefix, by pages: every key
/// exactly once, in order, with its own value.
fn assert_full_paged_scans(s: &dyn MetaStore, expected: &[Vec<u8>]) {
    for family in [&b"D"[..], b"I"] {
        let prefix = [family, &be(1)[..]].concat();
        let want: Vec<Vec<u8>> = expected
            .iter()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect();
        let got = scan_paged(s, &prefix, 1000);
        assert_same_keys(&keys_of(&got), &want);
        for (k, v) in &got {
            assert_eq!(v, &value_for(k), "value of {k:02x?}");
        }
    }
    let got = scan_paged(s, b"", 4096);
    assert_same_keys(&keys_of(&got), expected);
    // One directory listing (the readdir path): exactly its 1,000 entries.
    let dir = [&b"D"[..], &be(1), &be(1007)].concat();
    assert_eq!(scan_paged(s, &dir, 97).len(), 1000);
}

fn many_nokv_keys_paged_scan(s: &dyn MetaStore) {
    let keys = nokv_shaped_keys(30_000);
    write_in_batches(s, &keys, 1000);
    assert_full_paged_scans(s, &keys);
}

/// Keys of one inode (42) across families, with integer fields full of 0x00 bytes and
/// several versions, built by the prefix-free rule.
fn integer_suffixed_keys() -> Vec<Vec<u8>> {
    let mut keys = Vec::new();
    for version in [1u64, 2, 0x100] {
        keys.push(inode_key(1, 42, version));
        keys.push(inode_key(1, 0x2a00, version));
        for chunk in [0u64, 1, 0x2a, 4096, 1 << 32] {
            keys.push(chunk_key(1, 42, chunk, version));
        }
        for name in [&b"a"[..], b"ab", b"a\x01", b"\x01", b"README.md"] {
            keys.push(dentry_key(1, 42, name, version));
            keys.push(xattr_key(1, 42, name, version));
        }
    }
    keys.push(inode_key(0, 0, 0));
    keys.push(inode_key(u64::MAX, u64::MAX, u64::MAX));
    keys.sort();
    keys
}

fn integer_suffixed_keys_roundtrip(s: &dyn MetaStore) {
    let keys = integer_suffixed_keys();
    write_in_batches(s, &keys, 7);
    for k in &keys {
        assert_eq!(s.get(k).unwrap(), Some(value_for(k)), "key {k:02x?}");
    }
    assert_same_keys(&keys_of(&s.scan(b"", b"", usize::MAX).unwrap()), &keys);
    let ino42 = [&b"C"[..], &be(1), &be(42)].concat();
    assert_eq!(s.scan(&ino42, b"", 100).unwrap().len(), 15);
}

/// Two key sets of tiny records: 20,000 sequential 9-byte keys with empty values,
/// written one key per batch, and 60,000 inode-shaped keys with scattered inode numbers
/// and 1-byte values (tombstone-like), 1,000 per batch.
fn small_record_workloads() -> [(Vec<Vec<u8>>, Vec<u8>, usize); 2] {
    let sequential = (0..20_000u64)
        .map(|i| [&b"m"[..], &be(i)].concat())
        .collect();
    let scattered = (0..60_000u64)
        .map(|i| inode_key(1, xxhash_rust::xxh3::xxh3_64(&be(i)), 1))
        .collect();
    [(sequential, Vec::new(), 1), (scattered, vec![0], 1000)]
}

/// Many small records must all be stored. holt 0.9.2 fails this: see `holt_small_records`.
fn many_small_records(s: &dyn MetaStore) {
    for (keys, value, per_batch) in small_record_workloads() {
        for chunk in keys.chunks(per_batch) {
            let mut batch = Batch::new();
            for k in chunk {
                batch.put(k.clone(), value.clone());
            }
            assert!(s.commit(&batch).unwrap());
        }
        for k in &keys {
            assert_eq!(s.get(k).unwrap().as_ref(), Some(&value), "key {k:02x?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Instantiation

fn holt_store() -> (tempfile::TempDir, HoltStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = HoltStore::open(&dir.path().join("meta")).unwrap();
    (dir, store)
}

fn redb_store() -> (tempfile::TempDir, RedbStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("meta")).unwrap();
    (dir, store)
}

macro_rules! for_each_store {
    ($($case:ident),* $(,)?) => {
        mod mem {
            $(
                #[test]
                fn $case() {
                    super::$case(&super::MemStore::new());
                }
            )*
        }

        mod holt {
            $(
                #[test]
                fn $case() {
                    let (_dir, store) = super::holt_store();
                    super::$case(&store);
                }
            )*
        }

        mod redb {
            $(
                #[test]
                fn $case() {
                    let (_dir, store) = super::redb_store();
                    super::$case(&store);
                }
            )*
        }
    };
}

for_each_store!(
    get_put_delete,
    overwrite,
    empty_batch,
    scan_prefix_in_order,
    scan_start_is_inclusive,
    scan_start_before_prefix,
    scan_start_past_end,
    scan_limit_and_pages,
    absent_guard_is_all_or_nothing,
    version_guard_is_all_or_nothing,
    guards_see_state_before_batch,
    version_changes_on_every_write,
    later_op_on_same_key_wins,
    value_size_limit,
    many_nokv_keys_paged_scan,
    integer_suffixed_keys_roundtrip,
);

#[test]
fn mem_many_small_records() {
    many_small_records(&MemStore::new());
}

/// holt 0.9.2 defect: once a blob's slot table (10,240 slots) fills before its bytes do,
/// `atomic` inserts fail with "alloc: blob slot table exhausted" (or "spillover retry loop
/// exhausted"), for that key and for every later insert, and the failing batch stays
/// partly applied in memory. 9-byte keys with empty values stop at 10,197 keys;
/// inode-shaped keys with scattered inodes and 1-byte values near 46,000. The adapter
/// cannot avoid it; `holt_only::small_record_defect_fails_stop` pins the containment.
#[test]
#[ignore = "holt 0.9.2 upstream defect: blob slot table exhaustion with small records"]
fn holt_many_small_records() {
    let (_dir, store) = holt_store();
    many_small_records(&store);
}

#[test]
fn codec_sample_keys_are_prefix_free() {
    // The holt defect of strict-prefix keys is avoided only by the codec rule. The key
    // sets of these tests follow it...
    assert_eq!(prefix_violation(&integer_suffixed_keys()), None);
    assert_eq!(prefix_violation(&nokv_shaped_keys(30_000)), None);
    // ...and the check catches the shape that breaks holt: `i + BE(42)` beside
    // `i + BE(42) + BE(4096)`.
    let bad = vec![
        [&b"i"[..], &be(42)].concat(),
        [&b"i"[..], &be(42), &be(4096)].concat(),
    ];
    assert!(prefix_violation(&bad).is_some());
}

// ---------------------------------------------------------------------------------------
// Durable engines: restarts and process kills, instantiated for holt and redb

/// A durable engine under test: how to open it in a data directory, and how to close it
/// as close to a crash as one process can.
trait Engine {
    type Store: MetaStore;
    /// Open (or create) the store in `DATA/meta`.
    fn open(data: &Path) -> Self::Store;
    /// Close without the engine's orderly shutdown work, where it has any.
    fn close_uncleanly(store: Self::Store);
}

struct Holt;

impl Engine for Holt {
    type Store = HoltStore;
    fn open(data: &Path) -> HoltStore {
        HoltStore::open(&data.join("meta")).unwrap()
    }
    fn close_uncleanly(store: HoltStore) {
        // No final checkpoint: the next open replays the WAL.
        store.close_without_checkpoint();
    }
}

struct Redb;

impl Engine for Redb {
    type Store = RedbStore;
    fn open(data: &Path) -> RedbStore {
        RedbStore::open(&data.join("meta")).unwrap()
    }
    fn close_uncleanly(store: RedbStore) {
        // No checkpoint: the commits since the last one are durable only in the commit
        // log, and the next open replays them. Dropping releases the file lock, which a
        // test in this process needs to reopen it. A real crash is in
        // `killed_writer_loses_no_ack`.
        drop(store);
    }
}

mod durable {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    pub(super) fn reopen_keeps_everything<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        let keys = integer_suffixed_keys();
        let (v_before, big) = {
            let s = E::open(dir.path());
            write_in_batches(&s, &keys, 10);
            let big = vec![7u8; MAX_VALUE_LEN];
            put(&s, b"big", &big);
            put(&s, b"gone", b"x");
            assert!(commit_with(&s, |b| {
                b.delete(b"gone".to_vec());
            }));
            s.checkpoint().unwrap();
            (s.get_versioned(&keys[3]).unwrap().unwrap().version, big)
        };
        for _ in 0..2 {
            let s = E::open(dir.path());
            for k in &keys {
                assert_eq!(s.get(k).unwrap(), Some(value_for(k)));
            }
            assert_eq!(s.get(b"big").unwrap(), Some(big.clone()));
            assert_eq!(s.get(b"gone").unwrap(), None);
            // Version tokens survive a restart.
            assert_eq!(
                s.get_versioned(&keys[3]).unwrap().unwrap().version,
                v_before
            );
            assert_eq!(s.scan(b"", b"", usize::MAX).unwrap().len(), keys.len() + 1);
        }
    }

    /// A version token must never be handed out again after a restart, whether the store
    /// was closed in order or not. (holt resumes its sequence from the WAL, which a
    /// checkpoint empties, and its store re-seeds it; redb's store persists a counter.)
    pub(super) fn versions_do_not_repeat_after_reopen<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = E::open(dir.path());
            for i in 0..60u8 {
                put(&s, &[b'k', i], b"v");
            }
            s.checkpoint().unwrap();
        }
        for round in 0..3 {
            let s = E::open(dir.path());
            let old: Vec<(Vec<u8>, u64)> = (0..60u8)
                .map(|i| {
                    let k = vec![b'k', i];
                    let v = s.get_versioned(&k).unwrap().unwrap().version;
                    (k, v)
                })
                .collect();
            let (hot, stale) = old.iter().max_by_key(|(_, v)| *v).cloned().unwrap();
            // Advance the sequence towards the stale token, then rewrite the key.
            for _ in 0..stale {
                put(&s, b"scratch", b"s");
                if s.get_versioned(b"scratch").unwrap().unwrap().version + 1 >= stale {
                    break;
                }
            }
            put(&s, &hot, b"changed");
            let now = s.get_versioned(&hot).unwrap().unwrap().version;
            assert!(
                now > stale,
                "round {round}: rewrite got version {now}, old token {stale}"
            );
            assert!(!commit_with(&s, |b| {
                b.assert_version(hot.clone(), stale);
                b.put(hot.clone(), b"aba".to_vec());
            }));
            put(&s, &hot, b"v");
            if round == 1 {
                E::close_uncleanly(s);
            }
        }
    }

    pub(super) fn regression_300k_keys_checkpoint_paged_scan_reopen<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        let keys = nokv_shaped_keys(300_000);
        let t = Instant::now();
        {
            let s = E::open(dir.path());
            write_in_batches(&s, &keys, 1000);
            eprintln!("300k: wrote 300 batches of 1,000 keys in {:?}", t.elapsed());
            let c = Instant::now();
            s.checkpoint().unwrap();
            eprintln!("300k: checkpoint in {:?}", c.elapsed());
            let (apparent, allocated) = dir_bytes(dir.path());
            eprintln!("300k: files of {apparent} bytes, {allocated} allocated");
            let c = Instant::now();
            assert_full_paged_scans(&s, &keys);
            eprintln!("300k: paged scans in {:?}", c.elapsed());
        }
        let c = Instant::now();
        let s = E::open(dir.path());
        eprintln!("300k: reopen in {:?}", c.elapsed());
        assert_full_paged_scans(&s, &keys);
        // Writes after the reopen still land and list correctly.
        let extra = dentry_key(1, 1007, b"zz-after-reopen", 1);
        put(&s, &extra, &value_for(&extra));
        let dir_prefix = [&b"D"[..], &be(1), &be(1007)].concat();
        assert_eq!(scan_paged(&s, &dir_prefix, 333).len(), 1001);
        eprintln!("300k: total {:?}", t.elapsed());
    }

    pub(super) fn regression_integer_suffixed_keys_checkpoint_reopen<E: Engine>() {
        let dir = tempfile::tempdir().unwrap();
        let keys = integer_suffixed_keys();
        {
            let s = E::open(dir.path());
            // One key per batch, then all of them again: many checkpointable versions.
            write_in_batches(&s, &keys, 1);
            s.checkpoint().unwrap();
            write_in_batches(&s, &keys, keys.len());
            s.checkpoint().unwrap();
        }
        let s = E::open(dir.path());
        integer_suffixed_keys_roundtrip_after_reopen(&s, &keys);
        drop(s);
        let s = E::open(dir.path());
        integer_suffixed_keys_roundtrip_after_reopen(&s, &keys);
    }

    fn integer_suffixed_keys_roundtrip_after_reopen(s: &dyn MetaStore, keys: &[Vec<u8>]) {
        for k in keys {
            assert_eq!(s.get(k).unwrap(), Some(value_for(k)), "key {k:02x?}");
        }
        assert_same_keys(&keys_of(&scan_paged(s, b"", 5)), keys);
    }

    /// A second open of a store that is open fails with `Locked`, naming the directory.
    pub(super) fn second_open_is_locked<E: Engine>(
        open: impl Fn(&Path) -> Result<E::Store, StoreError>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let _s = E::open(dir.path());
        let t = Instant::now();
        match open(&dir.path().join("meta")) {
            Err(StoreError::Locked { holder }) => assert!(holder.contains("meta"), "{holder}"),
            Err(other) => panic!("expected Locked, got {other:?}"),
            Ok(_) => panic!("second open succeeded"),
        }
        eprintln!("second open refused after {:?}", t.elapsed());
    }

    const CHILD_DIR: &str = "NOKV_STORE_CRASH_CHILD_DIR";

    fn crash_key(batch: u64, i: u64) -> Vec<u8> {
        [&b"K"[..], &be(batch), &be(i)].concat()
    }

    /// Not a test on its own: the writer process of `killed_writer_loses_no_ack`, which
    /// runs the test binary again with the engine's `crash_child_writer` selected and
    /// `CHILD_DIR` set to the data directory.
    pub(super) fn crash_child_writer<E: Engine>() {
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            return;
        };
        let s = E::open(Path::new(&dir));
        let mut out = std::io::stdout().lock();
        let deadline = Instant::now() + Duration::from_secs(60);
        for batch in 0u64.. {
            let mut b = Batch::new();
            for i in 0..10 {
                b.put(crash_key(batch, i), batch.to_be_bytes().to_vec());
            }
            assert!(s.commit(&b).unwrap());
            writeln!(out, "ACK {batch}").unwrap();
            out.flush().unwrap();
            if Instant::now() > deadline {
                break;
            }
        }
    }

    /// A writer killed with SIGKILL (for holt across background checkpoints): every
    /// acknowledged batch is present, every batch is whole, and versions keep rising after
    /// recovery. `child` is the full name of the engine's `crash_child_writer` test;
    /// `preload` keys (NoKV-shaped, no `K` family) are written and the store closed
    /// before the writer starts, to make recovery work on a larger store.
    pub(super) fn killed_writer_loses_no_ack<E: Engine>(child: &str, preload: &[Vec<u8>]) {
        let dir = tempfile::tempdir().unwrap();
        if !preload.is_empty() {
            let s = E::open(dir.path());
            write_in_batches(&s, preload, 1000);
            let (apparent, allocated) = dir_bytes(dir.path());
            eprintln!(
                "preloaded {} keys: files of {apparent} bytes, {allocated} allocated",
                preload.len()
            );
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", child, "--nocapture"])
            .args(["--test-threads", "1"])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut acked: Option<u64> = None;
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            if let Some(n) = line.unwrap().strip_prefix("ACK ") {
                acked = Some(n.parse().unwrap());
                // Run past a few background checkpoints (one per second) before the kill.
                if started.elapsed() > Duration::from_millis(2500) {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let acked = acked.expect("the writer acknowledged nothing");

        let t = Instant::now();
        let s = E::open(dir.path());
        eprintln!("reopen after the kill took {:?}", t.elapsed());
        let all = scan_paged(&s, b"K", 1000);
        let mut batches = std::collections::BTreeMap::<u64, u64>::new();
        for (k, v) in &all {
            let batch = u64::from_be_bytes(k[1..9].try_into().unwrap());
            assert_eq!(v, &batch.to_be_bytes());
            *batches.entry(batch).or_default() += 1;
        }
        assert!(
            batches.values().all(|&n| n == 10),
            "a batch was applied in part"
        );
        let last = *batches.keys().last().expect("nothing survived");
        assert!(
            last >= acked,
            "acknowledged batch {acked} lost (last present {last})"
        );
        assert_eq!(
            batches.len() as u64,
            last + 1,
            "a gap in the committed batches"
        );
        let highest = all
            .iter()
            .map(|(k, _)| s.get_versioned(k).unwrap().unwrap().version)
            .max()
            .unwrap();
        put(&s, b"after-crash", b"x");
        assert!(s.get_versioned(b"after-crash").unwrap().unwrap().version > highest);
        let preloaded = scan_paged(&s, b"D", 4096).len() + scan_paged(&s, b"I", 4096).len();
        assert_eq!(preloaded, preload.len(), "preloaded keys after recovery");
        eprintln!(
            "killed writer after {} acknowledged batches; {} present",
            acked + 1,
            last + 1
        );
    }
}

/// Instantiates the `durable` tests for one engine, in a module named after it.
macro_rules! durable_tests {
    ($module:ident, $engine:ty, $open:expr) => {
        mod $module {
            use super::durable;

            #[test]
            fn reopen_keeps_everything() {
                durable::reopen_keeps_everything::<$engine>();
            }

            #[test]
            fn versions_do_not_repeat_after_reopen() {
                durable::versions_do_not_repeat_after_reopen::<$engine>();
            }

            #[test]
            fn regression_300k_keys_checkpoint_paged_scan_reopen() {
                durable::regression_300k_keys_checkpoint_paged_scan_reopen::<$engine>();
            }

            #[test]
            fn regression_integer_suffixed_keys_checkpoint_reopen() {
                durable::regression_integer_suffixed_keys_checkpoint_reopen::<$engine>();
            }

            #[test]
            fn second_open_is_locked() {
                durable::second_open_is_locked::<$engine>($open);
            }

            #[test]
            fn crash_child_writer() {
                durable::crash_child_writer::<$engine>();
            }

            #[test]
            fn killed_writer_loses_no_ack() {
                durable::killed_writer_loses_no_ack::<$engine>(
                    concat!(module_path!(), "::crash_child_writer")
                        // The test harness names tests without the crate.
                        .split_once("::")
                        .unwrap()
                        .1,
                    &[],
                );
            }
        }
    };
}

durable_tests!(holt_durable, super::Holt, |dir: &std::path::Path| {
    // Without background checkpoints, as before: the lock is what is tested.
    super::HoltStore::open_with(dir, None)
});
durable_tests!(redb_durable, super::Redb, |dir: &std::path::Path| {
    super::RedbStore::open(dir)
});

// ---------------------------------------------------------------------------------------
// holt only: the measured defects and what its adapter does about them

mod holt_only {
    use super::*;

    /// Defect 4 and the WAL path: everything acknowledged survives a close that skips the
    /// checkpoint, so reopen must replay the WAL.
    #[test]
    fn close_without_checkpoint_replays_wal() {
        let dir = tempfile::tempdir().unwrap();
        let meta = dir.path().join("meta");
        let keys = nokv_shaped_keys(3000);
        {
            let s = HoltStore::open_with(&meta, None).unwrap();
            write_in_batches(&s, &keys[..1000], 100);
            s.checkpoint().unwrap();
            // These are only in the WAL.
            write_in_batches(&s, &keys[1000..], 100);
            assert!(commit_with(&s, |b| {
                b.delete(keys[0].clone());
            }));
            s.close_without_checkpoint();
        }
        let s = HoltStore::open_with(&meta, None).unwrap();
        assert_same_keys(&keys_of(&scan_paged(&s, b"", 500)), &keys[1..]);
        for k in &keys[1..] {
            assert_eq!(s.get(k).unwrap(), Some(value_for(k)));
        }
    }

    /// A batch whose WAL record exceeds holt's 16 MiB limit is refused up front: nothing
    /// applied, and the store stays usable (holt rejects it before touching the tree).
    #[test]
    fn oversized_batch_is_rejected_cleanly() {
        let (_dir, s) = holt_store();
        put(&s, b"before", b"x");
        let mut batch = Batch::new();
        for i in 0..300u32 {
            batch.put(
                [&b"big"[..], &i.to_be_bytes()].concat(),
                vec![1u8; MAX_VALUE_LEN],
            );
        }
        batch.delete(b"before".to_vec());
        let err = s.commit(&batch).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        assert!(s.scan(b"big", b"", 10).unwrap().is_empty());
        assert_eq!(s.get(b"before").unwrap().as_deref(), Some(&b"x"[..]));
        // So is a key over holt's limit (65,534 bytes).
        let mut batch = Batch::new();
        batch.put(b"small".to_vec(), b"s".to_vec());
        batch.put(vec![b'L'; 70_000], b"v".to_vec());
        let err = s.commit(&batch).unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        assert_eq!(s.get(b"small").unwrap(), None);
        put(&s, b"after", b"y");
        s.checkpoint().unwrap();
    }

    #[test]
    fn empty_key_is_reserved() {
        let (_dir, s) = holt_store();
        let err = s
            .commit(&{
                let mut b = Batch::new();
                b.put(Vec::new(), b"x".to_vec());
                b
            })
            .unwrap_err();
        assert!(matches!(err, StoreError::Io(_)), "{err:?}");
        // Keys beginning with 0x00 are ordinary keys, untouched by the marker writes.
        put(&s, b"\x00", b"z");
        put(&s, b"\x00\x01", b"o");
        s.checkpoint().unwrap();
        assert_eq!(s.get(b"\x00").unwrap().as_deref(), Some(&b"z"[..]));
        assert_eq!(s.scan(b"", b"", 10).unwrap().len(), 2);
    }

    /// Defect 2 (a key that is a strict prefix of another) must fail stop, never lose an
    /// acknowledged write. holt refuses the second key of such a pair inside `atomic` when
    /// the longer key continues with 0x00 (its internal terminator); the store then
    /// poisons itself, and after a restart the failed batch is absent and all else is
    /// there. Other continuations work. The codec rule keeps NoKV out of both cases.
    #[test]
    fn regression_strict_prefix_pair_fails_stop() {
        let short = [&b"i"[..], &be(42)].concat();
        let continuations: [&[u8]; 5] = [&be(4096), b"\x00", b"\x00\x00\x00", b"\x01", b"\xff"];
        for cont in continuations {
            let long = [&short[..], cont].concat();
            for (first, second) in [(&short, &long), (&long, &short)] {
                for same_batch in [false, true] {
                    let case = format!("{:02x?} first, same batch {same_batch}", &first[9..]);
                    let dir = tempfile::tempdir().unwrap();
                    let meta = dir.path().join("meta");
                    let mut batch = Batch::new();
                    batch.put(b"a-side".to_vec(), b"s".to_vec());
                    batch.put(second.clone(), b"second".to_vec());
                    let outcome = {
                        let s = HoltStore::open_with(&meta, None).unwrap();
                        put(&s, b"acked", b"x");
                        if same_batch {
                            batch
                                .ops
                                .insert(0, Op::Put(first.clone(), b"first".to_vec()));
                        } else {
                            put(&s, first, b"first");
                            s.checkpoint().unwrap();
                        }
                        let outcome = s.commit(&batch);
                        if outcome.is_err() {
                            let after = s.get(b"acked").unwrap_err();
                            assert!(matches!(after, StoreError::Closed(_)), "{case}: {after:?}");
                            assert!(
                                s.checkpoint().is_err(),
                                "{case}: poisoned store checkpointed"
                            );
                        } else {
                            s.checkpoint().unwrap();
                        }
                        outcome
                    };
                    let s = HoltStore::open_with(&meta, None).unwrap();
                    assert_eq!(
                        s.get(b"acked").unwrap().as_deref(),
                        Some(&b"x"[..]),
                        "{case}"
                    );
                    match outcome {
                        Ok(applied) => {
                            assert!(applied, "{case}");
                            assert_eq!(
                                s.get(first).unwrap().as_deref(),
                                Some(&b"first"[..]),
                                "{case}"
                            );
                            assert_eq!(
                                s.get(second).unwrap().as_deref(),
                                Some(&b"second"[..]),
                                "{case}"
                            );
                            assert_eq!(
                                s.get(b"a-side").unwrap().as_deref(),
                                Some(&b"s"[..]),
                                "{case}"
                            );
                        }
                        Err(_) => {
                            // The whole failed batch is absent; an earlier commit stays.
                            assert_eq!(s.get(second).unwrap(), None, "{case}");
                            assert_eq!(s.get(b"a-side").unwrap(), None, "{case}");
                            assert_eq!(s.get(first).unwrap().is_some(), !same_batch, "{case}");
                        }
                    }
                }
            }
        }
    }

    /// The small-record defect (see `holt_many_small_records`) must fail stop: the commit
    /// that hits it returns an error, the store refuses everything after it, and after a
    /// restart every acknowledged batch is there and the failed one is absent.
    #[test]
    fn small_record_defect_fails_stop() {
        for (keys, value, per_batch) in small_record_workloads() {
            let dir = tempfile::tempdir().unwrap();
            let meta = dir.path().join("meta");
            let mut acked = 0;
            let mut failed = None;
            {
                let s = HoltStore::open(&meta).unwrap();
                for chunk in keys.chunks(per_batch) {
                    let mut batch = Batch::new();
                    for k in chunk {
                        batch.put(k.clone(), value.clone());
                    }
                    match s.commit(&batch) {
                        Ok(applied) => {
                            assert!(applied);
                            acked += chunk.len();
                        }
                        Err(e) => {
                            failed = Some(chunk.to_vec());
                            eprintln!("small records: commit failed after {acked} keys: {e}");
                            let after = s.get(&keys[0]).unwrap_err();
                            assert!(matches!(after, StoreError::Closed(_)), "{after:?}");
                            break;
                        }
                    }
                }
            }
            let s = HoltStore::open(&meta).unwrap();
            for k in &keys[..acked] {
                assert_eq!(
                    s.get(k).unwrap().as_ref(),
                    Some(&value),
                    "acknowledged key lost"
                );
            }
            for k in failed.iter().flatten() {
                assert_eq!(s.get(k).unwrap(), None, "failed batch partly applied");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// redb only: what holt 0.9.2 cannot do

mod redb_only {
    use std::time::Instant;

    use super::*;

    /// The workload that exhausts holt's blob slot tables (`holt_many_small_records`), at
    /// six times the scale where holt stops: 300,000 inode-shaped keys with scattered
    /// inodes and 1-byte values, and 100,000 sequential 9-byte keys with empty values, in
    /// atomic batches of 1,000. Every key is readable, by get and by scan, after a reopen.
    #[test]
    fn many_small_records_300k_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let scattered: Vec<Vec<u8>> = (0..300_000u64)
            .map(|i| inode_key(1, xxhash_rust::xxh3::xxh3_64(&be(i)), 1))
            .collect();
        let sequential: Vec<Vec<u8>> = (0..100_000u64)
            .map(|i| [&b"m"[..], &be(i)].concat())
            .collect();
        let sets = [(&scattered, vec![0u8]), (&sequential, Vec::new())];
        let t = Instant::now();
        {
            let s = Redb::open(dir.path());
            for (keys, value) in &sets {
                for chunk in keys.chunks(1000) {
                    let mut batch = Batch::new();
                    for k in chunk {
                        batch.put(k.clone(), value.clone());
                    }
                    assert!(s.commit(&batch).unwrap());
                }
            }
            eprintln!("small records: wrote 400 batches in {:?}", t.elapsed());
        }
        let c = Instant::now();
        let s = Redb::open(dir.path());
        for (keys, value) in &sets {
            for k in keys.iter() {
                assert_eq!(s.get(k).unwrap().as_ref(), Some(value), "key {k:02x?}");
            }
        }
        let mut sorted = scattered.clone();
        sorted.sort();
        let got = scan_paged(&s, &[&b"I"[..], &be(1)].concat(), 4096);
        assert_same_keys(&keys_of(&got), &sorted);
        assert_eq!(scan_paged(&s, b"m", 4096).len(), sequential.len());
        eprintln!("small records: reopen and read back in {:?}", c.elapsed());
    }

    /// redb has none of holt's shape limits: the empty key, keys that are strict prefixes of
    /// others (0x00 continuations included), keys over 64 KiB and a batch of 300 maximum-size
    /// values all commit and survive a reopen. The codec rule (prefix-free keys) stays, for
    /// the sake of holt volumes.
    #[test]
    fn accepts_what_holt_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let short = [&b"i"[..], &be(42)].concat();
        let mut expected: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (Vec::new(), b"empty key".to_vec()),
            (short.clone(), b"short".to_vec()),
            ([&short[..], b"\x00"].concat(), b"nul".to_vec()),
            ([&short[..], &be(4096)].concat(), b"long".to_vec()),
            (vec![b'L'; 70_000], b"big key".to_vec()),
        ];
        {
            let s = Redb::open(dir.path());
            // The pair in one batch, and the rest in separate ones.
            assert!(commit_with(&s, |b| {
                b.put(expected[2].0.clone(), expected[2].1.clone());
                b.put(expected[1].0.clone(), expected[1].1.clone());
            }));
            for (k, v) in [&expected[0], &expected[3], &expected[4]] {
                put(&s, k, v);
            }
            let mut batch = Batch::new();
            for i in 0..300u32 {
                let k = [&b"big"[..], &i.to_be_bytes()].concat();
                let v = vec![i as u8; MAX_VALUE_LEN];
                batch.put(k.clone(), v.clone());
                expected.push((k, v));
            }
            assert!(s.commit(&batch).unwrap());
        }
        expected.sort();
        let s = Redb::open(dir.path());
        for (k, v) in &expected {
            assert_eq!(
                s.get(k).unwrap().as_ref(),
                Some(v),
                "key {:02x?}",
                &k[..k.len().min(12)]
            );
        }
        assert_eq!(s.scan(b"", b"", usize::MAX).unwrap(), expected);
        assert_eq!(s.scan(&short, b"", 10).unwrap().len(), 3);
    }
}

// ---------------------------------------------------------------------------------------
// Measurement (not a check): commit rates of the durable engines

/// Commits per second of 1-op and 1,000-op batches of fresh NoKV-shaped keys, for each
/// durable engine. Run with
/// `cargo test -p nokv-core store::conformance::commit_rates -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn commit_rates() {
    fn measure(name: &str, s: &dyn MetaStore) {
        for (per_batch, batches) in [(1usize, 1000u64), (1000, 100)] {
            let t = std::time::Instant::now();
            for n in 0..batches {
                let mut batch = Batch::new();
                for i in 0..per_batch as u64 {
                    let key = dentry_key(1, per_batch as u64, format!("f{n}-{i}").as_bytes(), 1);
                    let value = value_for(&key);
                    batch.put(key, value);
                }
                assert!(s.commit(&batch).unwrap());
            }
            let secs = t.elapsed().as_secs_f64();
            eprintln!(
                "{name}: {batches} batches of {per_batch} op(s) in {secs:.2} s: {:.0} commits/s, {:.0} ops/s",
                batches as f64 / secs,
                (batches * per_batch as u64) as f64 / secs
            );
        }
    }
    let dir = tempfile::tempdir().unwrap();
    measure("redb", &Redb::open(&dir.path().join("redb")));
    measure("holt", &Holt::open(&dir.path().join("holt")));
}

/// Recovery after a SIGKILL on a store of 300,000 keys, for each durable engine (the
/// checks of `killed_writer_loses_no_ack`, with the reopen time printed). Run with
/// `cargo test -p nokv-core store::conformance::recovery_after_kill_300k -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn recovery_after_kill_300k() {
    let keys = nokv_shaped_keys(300_000);
    eprintln!("redb:");
    durable::killed_writer_loses_no_ack::<Redb>(
        "store::conformance::redb_durable::crash_child_writer",
        &keys,
    );
    eprintln!("holt:");
    durable::killed_writer_loses_no_ack::<Holt>(
        "store::conformance::holt_durable::crash_child_writer",
        &keys,
    );
}
