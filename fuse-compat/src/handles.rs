//! Per-mount state the kernel refers to by number: open file and directory handles (`fh`),
//! and the kernel's lookup count of each inode.
//!
//! Handles are real per-open objects: every `open`, `create` and `opendir` allocates a
//! fresh `fh` mapped to a [`Handle`], dropped on `release`/`releasedir`. Per-open state
//! (the file id, how it was opened) lives here, so more can be attached later without
//! changing the protocol code.
//!
//! Lookup counts mirror what the kernel holds: each entry reply adds one, `forget` removes
//! what the kernel says it dropped, and an inode at zero leaves the table. The table is
//! therefore bounded by the kernel's own inode cache (which it shrinks under memory
//! pressure or `drop_caches`); the core keeps no per-inode state for FUSE at all.

use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use nokv_core::FileId;

/// What an open handle refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Handle {
    /// The open file or directory.
    pub id: FileId,
    /// A directory handle (`opendir`), else a file handle.
    pub dir: bool,
    /// Opened for writing.
    pub write: bool,
    /// The core's private result scope of an open `/.nokv/` control file.
    pub scope: Option<u64>,
}

/// The open handles of one mount.
#[derive(Debug, Default)]
pub(crate) struct Handles {
    next: AtomicU64,
    map: DashMap<u64, Handle>,
}

impl Handles {
    /// Registers `h` and returns its new `fh` (never 0).
    pub(crate) fn open(&self, h: Handle) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        self.map.insert(fh, h);
        fh
    }

    pub(crate) fn get(&self, fh: u64) -> Option<Handle> {
        self.map.get(&fh).map(|h| *h)
    }

    /// Drops handle `fh`, returning what it was.
    pub(crate) fn close(&self, fh: u64) -> Option<Handle> {
        self.map.remove(&fh).map(|(_, h)| h)
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

/// The kernel's lookup count per inode number.
#[derive(Debug, Default)]
pub(crate) struct Lookups {
    map: DashMap<u64, u64>,
}

impl Lookups {
    /// The kernel received one more reference to `ino` (an entry reply).
    pub(crate) fn add(&self, ino: u64) {
        *self.map.entry(ino).or_insert(0) += 1;
    }

    /// The kernel dropped `n` references to `ino`.
    pub(crate) fn forget(&self, ino: u64, n: u64) {
        if let dashmap::Entry::Occupied(mut e) = self.map.entry(ino) {
            let left = e.get().saturating_sub(n);
            if left == 0 {
                e.remove();
            } else {
                *e.get_mut() = left;
            }
        }
    }

    /// Inodes the kernel currently references.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// The inode numbers the kernel currently references.
    pub(crate) fn inos(&self) -> Vec<u64> {
        self.map.iter().map(|e| *e.key()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_fresh_and_released() {
        let h = Handles::default();
        let a = h.open(Handle {
            id: FileId(7),
            dir: false,
            write: true,
            scope: None,
        });
        let b = h.open(Handle {
            id: FileId(7),
            dir: false,
            write: false,
            scope: None,
        });
        assert_ne!(a, b);
        assert_ne!(a, 0);
        assert!(h.get(a).unwrap().write);
        assert!(!h.get(b).unwrap().write);
        assert_eq!(h.close(a).unwrap().id, FileId(7));
        assert!(h.get(a).is_none());
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn forget_drops_inodes_at_zero() {
        let l = Lookups::default();
        l.add(5);
        l.add(5);
        l.add(6);
        l.forget(5, 1);
        assert_eq!(l.len(), 2);
        l.forget(5, 1);
        l.forget(6, 10);
        l.forget(99, 1);
        assert_eq!(l.len(), 0);
    }
}
