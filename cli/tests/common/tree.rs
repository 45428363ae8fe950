//! Host directory trees for the CLI tests: build them, copy them cheaply (hard links), and
//! compare two of them (kinds, bytes, permission bits, file modification times, symlink
//! targets).

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// What a tree holds at one relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Directory with its permission bits.
    Dir(u32),
    /// Regular file: permission bits, mtime (s, ns), content.
    File(u32, (i64, i64), Vec<u8>),
    /// Symbolic link target.
    Symlink(PathBuf),
}

/// Every entry under `root` (relative paths; the root itself is `""`).
pub fn read_tree(root: &Path) -> BTreeMap<String, Entry> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let p = root.join(&rel);
        let m = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let key = rel.to_string_lossy().into_owned();
        let perm = m.permissions().mode() & 0o7777;
        if m.file_type().is_symlink() {
            out.insert(key, Entry::Symlink(std::fs::read_link(&p).unwrap()));
        } else if m.is_dir() {
            out.insert(key, Entry::Dir(perm));
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(rel.join(e.unwrap().file_name()));
            }
        } else {
            let content = std::fs::read(&p).unwrap();
            out.insert(key, Entry::File(perm, (m.mtime(), m.mtime_nsec()), content));
        }
    }
    out
}

/// Panics with the first difference between the trees at `a` and `b`.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let (ta, tb) = (read_tree(a), read_tree(b));
    let ka: Vec<&String> = ta.keys().collect();
    let kb: Vec<&String> = tb.keys().collect();
    assert_eq!(
        ka,
        kb,
        "{} and {} list different paths",
        a.display(),
        b.display()
    );
    for (k, ea) in &ta {
        let eb = &tb[k];
        if ea != eb {
            let short = |e: &Entry| match e {
                Entry::File(p, t, c) => format!("file {p:o} {t:?} {} bytes", c.len()),
                other => format!("{other:?}"),
            };
            panic!(
                "{k:?} differs: {} has {}, {} has {}",
                a.display(),
                short(ea),
                b.display(),
                short(eb)
            );
        }
    }
}

/// Copies tree `src` to `dst` with hard links for files (same content and mtime, no cost).
pub fn link_copy(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        let (s, d) = (e.path(), dst.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            link_copy(&s, &d);
            let mode = std::fs::metadata(&s).unwrap().permissions().mode();
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&s).unwrap(), &d).unwrap();
        } else {
            std::fs::hard_link(&s, &d).unwrap();
        }
    }
}

/// Replaces `path` (possibly a hard link) with a new file holding `content`.
pub fn rewrite(path: &Path, content: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, content).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The seed tree: 20 small files `f00`..`f19`, 5 files of 20 KiB (stored as objects) in
/// `big/`, a nested directory with a read-only file, an executable, a symlink and an
/// empty directory.
pub fn seed_tree(root: &Path) {
    std::fs::create_dir_all(root.join("big")).unwrap();
    std::fs::create_dir_all(root.join("docs/deep")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    for i in 0..20 {
        std::fs::write(
            root.join(format!("f{i:02}")),
            format!("file {i} of the base\n"),
        )
        .unwrap();
    }
    for i in 0..5 {
        std::fs::write(root.join(format!("big/b{i}")), noise(i, 20 << 10)).unwrap();
    }
    std::fs::write(root.join("docs/readme.md"), b"# base\n").unwrap();
    std::fs::write(root.join("docs/deep/ro.txt"), b"read only\n").unwrap();
    std::fs::set_permissions(
        root.join("docs/deep/ro.txt"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::write(root.join("run.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("docs/readme.md", root.join("readme")).unwrap();
}
