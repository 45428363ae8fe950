//! Invalidations: what a workspace operation (or a write that cleared setuid) changed
//! behind a frontend's kernel caches.
//!
//! Clone, snapshot, rollback, discard and promote change directory entries and file
//! contents without any call from the frontend that could tell the kernel (they run from
//! a control file, the admin socket or the Rust API). A frontend that caches (FUSE entry,
//! attribute and page caches) registers an [`Invalidator`]; every such operation calls it
//! after its change is visible, before it returns. Frontends that revalidate on their own
//! (NFS clients, by attributes) need not register.

use std::sync::Arc;

use crate::fs::Fs;
use crate::types::FileId;

/// One thing a frontend's caches may hold stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalidation {
    /// Entry `name` of directory `parent` appeared, disappeared or now leads elsewhere.
    Entry {
        /// The directory.
        parent: FileId,
        /// The entry's name.
        name: Vec<u8>,
    },
    /// Any file of view `ws` (a workspace or snapshot id) may have new attributes, data or
    /// entries, or be gone.
    View(u64),
    /// The attributes of one file changed with no reply that carries them: a write that
    /// cleared setuid/setgid (`Fs::before_write`).
    Attributes(FileId),
}

/// A callback told of every [`Invalidation`]; it must not block for long.
pub type Invalidator = Arc<dyn Fn(&Invalidation) + Send + Sync>;

impl Fs {
    /// Registers `f`; returns an id for [`Fs::remove_invalidator`].
    pub fn add_invalidator(&self, f: Invalidator) -> u64 {
        let mut list = self.inner.invalidators.lock();
        let id = list.iter().map(|(id, _)| id + 1).max().unwrap_or(1);
        list.push((id, f));
        id
    }

    /// Unregisters the invalidator `id`.
    pub fn remove_invalidator(&self, id: u64) {
        self.inner.invalidators.lock().retain(|(i, _)| *i != id);
    }

    /// Tells every registered invalidator about `what`.
    pub(crate) fn invalidate(&self, what: &[Invalidation]) {
        let list: Vec<Invalidator> = self
            .inner
            .invalidators
            .lock()
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in list {
            for w in what {
                f(w);
            }
        }
    }
}
