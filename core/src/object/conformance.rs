//! One behaviour suite for every [`ObjectStore`]: the `fs` and in-memory stores run it in unit
//! tests, the S3 store runs it against a real server (`tests/tests/s3_seaweedfs.rs`).
//!
//! Each check works under a caller-chosen `prefix` (e.g. `run-1234/`) and touches nothing
//! outside it, so runs can share a bucket. Checks panic on the first difference from the
//! [`ObjectStore`] contract. Compiled for unit tests and with the `test-support` feature.

use bytes::Bytes;

use super::{ObjectErrorKind, ObjectMeta, ObjectStore};

/// What a backend is expected to report beyond the trait's minimum.
#[derive(Debug, Clone, Copy, Default)]
pub struct Expect {
    /// `list` reports real modification times (not 0).
    pub modified_times: bool,
}

/// Deterministic test bytes: `len` bytes that differ with `seed`.
pub fn pattern(len: usize, seed: u64) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect::<Vec<_>>()
        .into()
}

/// Every check below with small sizes (a 1 MiB object, 50 keys).
pub async fn run_all(store: &dyn ObjectStore, prefix: &str, expect: Expect) {
    round_trip(store, prefix).await;
    ranges_past_the_end(store, prefix).await;
    empty_object(store, prefix).await;
    missing_key(store, prefix).await;
    delete_is_idempotent(store, prefix).await;
    list_recursive(store, prefix, expect).await;
    large_object(store, prefix, 1 << 20).await;
    many_keys(store, prefix, 50).await;
}

/// A put is read back whole and by interior ranges.
pub async fn round_trip(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}rt/blocks/1/2/3/0/0");
    let data = pattern(10_000, 1);
    store.put(&key, data.clone()).await.unwrap();
    assert_eq!(store.get_range(&key, 0..10_000).await.unwrap(), data);
    assert_eq!(
        store.get_range(&key, 100..250).await.unwrap(),
        data.slice(100..250)
    );
    assert_eq!(
        store.get_range(&key, 9_999..10_000).await.unwrap(),
        data.slice(9_999..)
    );
}

/// Ranges that cross or start past the end are clamped; empty ranges still check existence.
pub async fn ranges_past_the_end(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}clamp/k");
    let data = pattern(10, 2);
    store.put(&key, data.clone()).await.unwrap();
    assert_eq!(
        store.get_range(&key, 5..100).await.unwrap(),
        data.slice(5..)
    );
    assert_eq!(store.get_range(&key, 0..u64::MAX).await.unwrap(), data);
    assert!(store.get_range(&key, 10..20).await.unwrap().is_empty());
    assert!(store.get_range(&key, 50..60).await.unwrap().is_empty());
    assert!(store.get_range(&key, 3..3).await.unwrap().is_empty());
    let missing = format!("{prefix}clamp/missing");
    let err = store.get_range(&missing, 3..3).await.unwrap_err();
    assert_eq!(err.kind(), ObjectErrorKind::NotFound, "{err}");
}

/// A zero-length object exists and reads back empty.
pub async fn empty_object(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}empty/e");
    store.put(&key, Bytes::new()).await.unwrap();
    assert!(store.get_range(&key, 0..10).await.unwrap().is_empty());
    assert_eq!(sizes(store.list(&key).await.unwrap()), [(key, 0)]);
}

/// Reading a missing key is `NotFound`, and the message names the key.
pub async fn missing_key(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}missing/no/such/key");
    let err = store.get_range(&key, 0..10).await.unwrap_err();
    assert_eq!(err.kind(), ObjectErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains(&key), "{err}");
}

/// Deleting removes the object; deleting again, or deleting what never was, succeeds.
pub async fn delete_is_idempotent(store: &dyn ObjectStore, prefix: &str) {
    let key = format!("{prefix}del/a/b");
    store.put(&key, pattern(3, 3)).await.unwrap();
    store.delete(&key).await.unwrap();
    let err = store.get_range(&key, 0..3).await.unwrap_err();
    assert_eq!(err.kind(), ObjectErrorKind::NotFound, "{err}");
    assert!(store
        .list(&format!("{prefix}del/"))
        .await
        .unwrap()
        .is_empty());
    store.delete(&key).await.unwrap();
    store
        .delete(&format!("{prefix}del/never/was"))
        .await
        .unwrap();
}

/// `list` is recursive, matches a prefix that ends mid-name, and reports sizes.
pub async fn list_recursive(store: &dyn ObjectStore, prefix: &str, expect: Expect) {
    let p = format!("{prefix}ls/");
    for (name, len) in [
        ("a/b/1", 1),
        ("a/b/2", 2),
        ("a/bc/3", 3),
        ("a/c/d/4", 4),
        ("z", 5),
    ] {
        store
            .put(&format!("{p}{name}"), pattern(len, len as u64))
            .await
            .unwrap();
    }
    let all = store.list(&p).await.unwrap();
    if expect.modified_times {
        assert!(
            all.iter().all(|m| m.modified_secs > 1_600_000_000),
            "{all:?}"
        );
    }
    let key = |name: &str, len: u64| (format!("{p}{name}"), len);
    assert_eq!(
        sizes(all),
        [
            key("a/b/1", 1),
            key("a/b/2", 2),
            key("a/bc/3", 3),
            key("a/c/d/4", 4),
            key("z", 5)
        ]
    );
    assert_eq!(
        sizes(store.list(&format!("{p}a/b")).await.unwrap()),
        [key("a/b/1", 1), key("a/b/2", 2), key("a/bc/3", 3)]
    );
    assert_eq!(
        sizes(store.list(&format!("{p}a/b/")).await.unwrap()).len(),
        2
    );
    assert_eq!(
        sizes(store.list(&format!("{p}a/c")).await.unwrap()),
        [key("a/c/d/4", 4)]
    );
    assert!(store
        .list(&format!("{p}nothing/here/"))
        .await
        .unwrap()
        .is_empty());
}

/// A `size`-byte object survives a round trip; ranged reads across it match by checksum.
pub async fn large_object(store: &dyn ObjectStore, prefix: &str, size: usize) {
    use xxhash_rust::xxh3::xxh3_64;
    let key = format!("{prefix}large/{size}");
    let data = pattern(size, size as u64);
    store.put(&key, data.clone()).await.unwrap();
    let whole = store.get_range(&key, 0..size as u64).await.unwrap();
    assert_eq!(whole.len(), size);
    assert_eq!(xxh3_64(&whole), xxh3_64(&data));
    // Block-sized pieces, an odd-sized piece straddling them, and the tail past the end.
    let block = (size / 5).max(1) as u64;
    let size = size as u64;
    let ranges = [
        0..block,
        block..2 * block,
        block / 2..3 * block + 17,
        size - 100..size + 4096,
    ];
    for r in ranges {
        let got = store.get_range(&key, r.clone()).await.unwrap();
        let want = &data[r.start as usize..r.end.min(size) as usize];
        assert_eq!(got.len(), want.len(), "range {r:?}");
        assert_eq!(xxh3_64(&got), xxh3_64(want), "range {r:?}");
    }
}

/// `count` keys spread over directories are all listed, with the right sizes.
pub async fn many_keys(store: &dyn ObjectStore, prefix: &str, count: usize) {
    let p = format!("{prefix}many/");
    let keys: Vec<String> = (0..count).map(|i| format!("{p}{}/{i}", i % 7)).collect();
    for (i, key) in keys.iter().enumerate() {
        store.put(key, pattern(i % 50, i as u64)).await.unwrap();
    }
    let listed = sizes(store.list(&p).await.unwrap());
    let mut want: Vec<(String, u64)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (k.clone(), (i % 50) as u64))
        .collect();
    want.sort();
    assert_eq!(listed, want);
}

/// `(key, size)` pairs, sorted: listing order is unspecified.
fn sizes(list: Vec<ObjectMeta>) -> Vec<(String, u64)> {
    let mut out: Vec<_> = list.into_iter().map(|m| (m.key, m.size)).collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::MemObjectStore;

    #[tokio::test]
    async fn memory_store_passes() {
        run_all(&MemObjectStore::new(), "p/", Expect::default()).await;
    }
}
