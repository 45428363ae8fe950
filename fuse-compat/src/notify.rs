//! Kernel cache invalidation for changes the kernel did not make: workspace operations
//! (clone, discard, rollback, promote, snapshots) run from a control file, the admin socket
//! or the API change entries and file contents behind the kernel's entry, attribute and
//! page caches, and a write that clears setuid changes a mode behind the attribute cache.
//! The core reports them (`nokv_core::invalidate`); this module turns them into FUSE
//! notifications: `inval_entry` for an entry, `inval_inode` (attributes and all pages) for
//! every inode of a changed view the kernel holds, `inval_inode` of the attributes alone
//! for one file.
//!
//! Notifications are written by one dedicated thread: the kernel may wait for a directory
//! lock held by a request this mount has yet to answer, so they must never be written from
//! a request handler's own thread. The core's call waits for the thread (bounded by
//! [`WAIT`]), so a command's effect is visible through the mount when its write returns.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fuser::{INodeNo, Notifier};
use nokv_core::invalidate::{Invalidation, Invalidator};

use crate::shared::Shared;

/// Longest a workspace operation waits for its notifications to be written.
const WAIT: Duration = Duration::from_millis(500);

type Job = (Invalidation, mpsc::SyncSender<()>);

/// Keeps the core's invalidator registered while the mount lives. Dropping it ends the
/// notification thread and waits for it: its `Notifier` holds a `/dev/fuse` descriptor, and
/// the kernel ends the FUSE connection (so the request loop can stop after an unmount)
/// only once every descriptor is closed.
pub(crate) struct InvalidationGuard {
    state: Shared,
    id: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for InvalidationGuard {
    fn drop(&mut self) {
        // Dropping the callback drops the channel's sender, which ends the thread.
        self.state.fs.remove_invalidator(self.id);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Registers an invalidator that notifies the kernel through `notifier`.
pub(crate) fn start(state: Shared, notifier: Notifier) -> std::io::Result<InvalidationGuard> {
    let (tx, rx) = mpsc::channel::<Job>();
    let worker = state.clone();
    let thread = std::thread::Builder::new()
        .name("nokv-fuse-inval".into())
        .spawn(move || {
            for (what, done) in rx {
                notify(&worker, &notifier, &what);
                let _ = done.send(());
            }
        })?;
    let tx = Mutex::new(tx);
    let f: Invalidator = Arc::new(move |what: &Invalidation| {
        let (done, wait) = mpsc::sync_channel(1);
        let sent = tx.lock().map(|t| t.send((what.clone(), done)).is_ok());
        if sent.unwrap_or(false) {
            let _ = wait.recv_timeout(WAIT);
        }
    });
    let id = state.fs.add_invalidator(f);
    Ok(InvalidationGuard {
        state,
        id,
        thread: Some(thread),
    })
}

/// Writes the notifications for `what`. The kernel answers `ENOENT` for what it does not
/// cache; that, and a mount already gone, are not errors.
fn notify(s: &Shared, n: &Notifier, what: &Invalidation) {
    match what {
        Invalidation::Entry { parent, name } => {
            let _ = n.inval_entry(s.inos.ino(*parent), OsStr::from_bytes(name));
        }
        Invalidation::Attributes(id) => {
            // A negative offset drops the attributes only, not the page cache.
            let _ = n.inval_inode(s.inos.ino(*id), -1, 0);
        }
        Invalidation::View(ws) => {
            let mut inos = s.lookups.inos();
            inos.push(INodeNo::ROOT.0);
            for ino in inos {
                if s.id(INodeNo(ino)).workspace() == *ws {
                    let _ = n.inval_inode(INodeNo(ino), 0, 0);
                }
            }
        }
    }
}
