//! The key codec: every metadata key the core writes is built here.
//!
//! Invariant (K1): no key is ever a strict prefix of another key. holt loses data when one
//! key is a prefix of another (see `docs/design.md`), so every family is built from
//! - a one-byte family tag first,
//! - fixed-width big-endian integers,
//! - names (which never contain 0x00) terminated by 0x00,
//! - and, for versioned families, a fixed-width *inverted* version last, so that the newest
//!   version of a record sorts first and "newest version <= V" is one ordered seek.
//!
//! Byte layouts are documented in `docs/design.md` ("Key encoding").

/// Family tags.
pub mod tag {
    /// Volume-wide singletons (counters, config): `S name 00`.
    pub const SYSTEM: u8 = b'S';
    /// Layer records: `L layer`.
    pub const LAYER: u8 = b'L';
    /// Workspace records: `W ws`.
    pub const WORKSPACE: u8 = b'W';
    /// Inode attributes: `I layer ino inv(version)`.
    pub const INODE: u8 = b'I';
    /// Directory entries: `D layer dir hash name 00 inv(version)`.
    pub const DENTRY: u8 = b'D';
    /// Chunk manifests: `C layer ino chunk inv(version)`.
    pub const CHUNK: u8 = b'C';
    /// Extended attributes: `X layer ino name 00 inv(version)`.
    pub const XATTR: u8 = b'X';
    /// Change log: `G layer version` (not inverted: oldest first).
    pub const CHANGE: u8 = b'G';
    /// Unlinked-but-open inodes to reap: `O ws ino`.
    pub const ORPHAN: u8 = b'O';
    /// Snapshot records: `N id` (ids share the workspace id space: both are views).
    pub const SNAPSHOT: u8 = b'N';
}

/// Inverts a version so that newer versions sort first.
pub fn inv(version: u64) -> u64 {
    !version
}

fn with_capacity(tag: u8, cap: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(cap);
    k.push(tag);
    k
}

fn push_u64(k: &mut Vec<u8>, v: u64) {
    k.extend_from_slice(&v.to_be_bytes());
}

/// Reads a big-endian u64 at `at`, if the key is long enough.
pub fn read_u64(key: &[u8], at: usize) -> Option<u64> {
    key.get(at..at + 8)
        .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
}

/// `S name 00`.
pub fn system(name: &str) -> Vec<u8> {
    debug_assert!(!name.as_bytes().contains(&0));
    let mut k = with_capacity(tag::SYSTEM, name.len() + 2);
    k.extend_from_slice(name.as_bytes());
    k.push(0);
    k
}

/// `L layer`.
pub fn layer(layer: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::LAYER, 9);
    push_u64(&mut k, layer);
    k
}

/// `W ws`.
pub fn workspace(ws: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::WORKSPACE, 9);
    push_u64(&mut k, ws);
    k
}

/// `N id`.
pub fn snapshot(id: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::SNAPSHOT, 9);
    push_u64(&mut k, id);
    k
}

/// Prefix of every record of one object (inode, chunk index, ...) in one layer: the part
/// before the inverted version. Appending `inv(v)` gives a full key.
pub fn inode_prefix(layer: u64, ino: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::INODE, 25);
    push_u64(&mut k, layer);
    push_u64(&mut k, ino);
    k
}

/// Prefix of all inode records of a layer.
pub fn inode_layer_prefix(layer: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::INODE, 9);
    push_u64(&mut k, layer);
    k
}

/// The directory-entry hash of a name; also the readdir cookie of the entry.
///
/// Cookies 0..=2 are reserved (start, `.`, `..`), and the top bit is kept clear so frontends
/// can use it; so the hash is folded into `[3, 2^63)`.
pub fn name_hash(name: &[u8]) -> u64 {
    let h = xxhash_rust::xxh3::xxh3_64(name) & 0x7fff_ffff_ffff_ffff;
    if h < 3 {
        h + 3
    } else {
        h
    }
}

/// Prefix of the entries of one directory in one layer.
pub fn dentry_dir_prefix(layer: u64, dir: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::DENTRY, 17);
    push_u64(&mut k, layer);
    push_u64(&mut k, dir);
    k
}

/// Prefix of the versions of one entry: `D layer dir hash name 00`.
pub fn dentry_prefix(layer: u64, dir: u64, name: &[u8]) -> Vec<u8> {
    debug_assert!(!name.contains(&0));
    let mut k = with_capacity(tag::DENTRY, 26 + name.len() + 8);
    push_u64(&mut k, layer);
    push_u64(&mut k, dir);
    push_u64(&mut k, name_hash(name));
    k.extend_from_slice(name);
    k.push(0);
    k
}

/// Decodes `(hash, name, version)` from a full dentry key.
pub fn parse_dentry(key: &[u8]) -> Option<(u64, &[u8], u64)> {
    if key.first() != Some(&tag::DENTRY) || key.len() < 1 + 24 + 1 + 8 {
        return None;
    }
    let hash = read_u64(key, 17)?;
    let name = &key[25..key.len() - 9];
    if key[key.len() - 9] != 0 || name.contains(&0) {
        return None;
    }
    let version = !read_u64(key, key.len() - 8)?;
    Some((hash, name, version))
}

/// Prefix of the versions of one chunk manifest: `C layer ino chunk`.
pub fn chunk_prefix(layer: u64, ino: u64, chunk: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::CHUNK, 33);
    push_u64(&mut k, layer);
    push_u64(&mut k, ino);
    push_u64(&mut k, chunk);
    k
}

/// Prefix of the versions of one xattr: `X layer ino name 00`.
pub fn xattr_prefix(layer: u64, ino: u64, name: &[u8]) -> Vec<u8> {
    let mut k = with_capacity(tag::XATTR, 18 + name.len() + 8);
    push_u64(&mut k, layer);
    push_u64(&mut k, ino);
    k.extend_from_slice(name);
    k.push(0);
    k
}

/// Prefix of all xattrs of an inode in a layer.
pub fn xattr_ino_prefix(layer: u64, ino: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::XATTR, 17);
    push_u64(&mut k, layer);
    push_u64(&mut k, ino);
    k
}

/// Decodes `(name, version)` from a full xattr key.
pub fn parse_xattr(key: &[u8]) -> Option<(&[u8], u64)> {
    if key.first() != Some(&tag::XATTR) || key.len() < 1 + 16 + 1 + 8 || key[key.len() - 9] != 0 {
        return None;
    }
    Some((&key[17..key.len() - 9], !read_u64(key, key.len() - 8)?))
}

/// `G layer version`.
pub fn change(layer: u64, version: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::CHANGE, 17);
    push_u64(&mut k, layer);
    push_u64(&mut k, version);
    k
}

/// Prefix of the orphans of one workspace: `O ws`.
pub fn orphan_ws_prefix(ws: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::ORPHAN, 9);
    push_u64(&mut k, ws);
    k
}

/// Prefix of all chunk manifests of an inode in a layer: `C layer ino`.
pub fn chunk_ino_prefix(layer: u64, ino: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::CHUNK, 17);
    push_u64(&mut k, layer);
    push_u64(&mut k, ino);
    k
}

/// `O ws ino`.
pub fn orphan(ws: u64, ino: u64) -> Vec<u8> {
    let mut k = with_capacity(tag::ORPHAN, 17);
    push_u64(&mut k, ws);
    push_u64(&mut k, ino);
    k
}

/// Appends the inverted version to a record prefix, making a full versioned key.
pub fn versioned(mut prefix: Vec<u8>, version: u64) -> Vec<u8> {
    push_u64(&mut prefix, inv(version));
    prefix
}

/// The version encoded in the last 8 bytes of a versioned key.
pub fn version_of(key: &[u8]) -> Option<u64> {
    key.len()
        .checked_sub(8)
        .and_then(|at| read_u64(key, at))
        .map(|i| !i)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// K1: a sample of keys from every family, including names that are prefixes of each
    /// other and integers that differ only in the last byte, is prefix-free.
    #[test]
    fn keys_are_prefix_free() {
        let mut keys = vec![
            system("version"),
            system("versions"),
            system("ino"),
            layer(1),
            layer(256),
            workspace(0),
            snapshot(0),
            snapshot(300),
        ];
        for v in [1u64, 2, 255, 256, u64::MAX - 1] {
            for ino in [1u64, 42, 4096] {
                keys.push(versioned(inode_prefix(1, ino), v));
                keys.push(versioned(chunk_prefix(1, ino, 0), v));
                keys.push(versioned(chunk_prefix(1, ino, 4096), v));
                for name in ["a", "ab", "abc", "b"] {
                    keys.push(versioned(dentry_prefix(1, ino, name.as_bytes()), v));
                    keys.push(versioned(xattr_prefix(1, ino, name.as_bytes()), v));
                }
            }
            keys.push(change(1, v));
        }
        keys.sort();
        keys.dedup();
        for w in keys.windows(2) {
            assert!(
                !w[1].starts_with(&w[0]),
                "{:?} is a prefix of {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn newest_version_sorts_first() {
        let a = versioned(inode_prefix(1, 7), 10);
        let b = versioned(inode_prefix(1, 7), 11);
        assert!(b < a);
        assert_eq!(version_of(&a), Some(10));
    }

    #[test]
    fn dentry_round_trip() {
        let k = versioned(dentry_prefix(3, 9, b"hello"), 77);
        let (h, name, v) = parse_dentry(&k).unwrap();
        assert_eq!((h, name, v), (name_hash(b"hello"), &b"hello"[..], 77));
        let k = versioned(xattr_prefix(3, 9, b"user.x"), 5);
        assert_eq!(parse_xattr(&k), Some((&b"user.x"[..], 5)));
    }

    #[test]
    fn hashes_avoid_reserved_cookies() {
        for i in 0..10_000u32 {
            let h = name_hash(i.to_string().as_bytes());
            assert!((3..1 << 63).contains(&h));
        }
    }
}
