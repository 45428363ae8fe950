//! The `/.nokv/` control namespace: workspace operations from a shell, on every frontend.
//!
//! Owns: the virtual directory `/.nokv/` at the volume root and everything under it, served
//! through the ordinary [`Fs`](crate::Fs) calls (lookup, getattr, readdir, open, read,
//! write, setattr, access), so NFS and FUSE expose it identically without knowing it:
//!
//! ```text
//! /.nokv/                    dir   0555  reachable by lookup, never listed in /
//!   clone snapshot rollback  file  0666  write one command line: runs it synchronously;
//!   diff discard promote gc              read: the output of the last such command
//!   result                   file  0444  output of the last command (any kind)
//!   last-error               file  0444  one-line message of the last command, if it failed
//!   workspaces               file  0444  every workspace, its base and its snapshots
//!   snapshots/NAME/...       dir   0555  each snapshot's tree, read-only (EROFS)
//!   sessions/TOKEN/          dir   0555  a private session: the same command files and
//!                                        result/last-error, created on first lookup
//! ```
//!
//! Commands are parsed by `command` and run by `exec`; outputs are kept by `results`.
//! A failed command fails the `write` itself with the operation's errno, so `echo` reports
//! it. Isolation between agents: a command's output is private to the open file it was
//! written through (frontends with open state call [`Fs::control_scope`]) and to its session
//! directory (for NFS, which has no open state: each agent uses its own TOKEN).
//!
//! Invariants: the namespace owns workspace id [`CONTROL_WS`] (never allocated to a real
//! workspace); nothing in it can be created, removed, renamed, linked or chmod-ed (`EPERM`);
//! `.nokv` cannot be created, removed or renamed in the root; a command changes the volume
//! only after it parsed completely (malformed lines change nothing); no write into the
//! namespace reaches a path outside the volume (commands take volume paths only).

mod command;
mod exec;
mod results;
mod vfs;

pub use command::{parse, quote, split, Command, Op, LINE_MAX};
pub use results::{valid_token, SESSIONS_MAX, TOKEN_MAX};

use crate::types::{FileId, MAX_WORKSPACE};

/// The name of the control directory in the volume root.
pub const CONTROL_NAME: &[u8] = b".nokv";

/// The workspace id of every file id in the control namespace.
pub const CONTROL_WS: u64 = MAX_WORKSPACE;

/// The file id of `/.nokv`.
pub const CONTROL_DIR: FileId = FileId((CONTROL_WS << crate::types::INO_BITS) | INO_DIR);

const INO_DIR: u64 = 1;
const INO_SNAPSHOTS: u64 = 2;
const INO_SESSIONS: u64 = 3;
const INO_WORKSPACES: u64 = 4;
/// Session files start here: `SESSION_BASE + slot * SESSION_STRIDE + k`.
const SESSION_BASE: u64 = 16;
const SESSION_STRIDE: u64 = 16;
/// `k` of the session directory, the first command file, `result` and `last-error`.
const K_DIR: u64 = 0;
const K_OP0: u64 = 1;
const K_RESULT: u64 = 8;
const K_ERROR: u64 = 9;

/// Whether `id` lies in the control namespace.
pub fn is_control(id: FileId) -> bool {
    id.workspace() == CONTROL_WS
}

/// A node of the control namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Node {
    /// `/.nokv`
    Dir,
    /// `/.nokv/snapshots`
    Snapshots,
    /// `/.nokv/sessions`
    Sessions,
    /// `/.nokv/workspaces`
    Workspaces,
    /// `/.nokv/sessions/TOKEN` (slot > 0)
    SessionDir(u64),
    /// A command file of a session.
    OpFile(u64, Op),
    /// `result` of a session.
    Result(u64),
    /// `last-error` of a session.
    LastError(u64),
}

impl Node {
    /// The node of `id`, if `id` is one.
    pub fn of(id: FileId) -> Option<Node> {
        if !is_control(id) {
            return None;
        }
        Some(match id.ino() {
            INO_DIR => Node::Dir,
            INO_SNAPSHOTS => Node::Snapshots,
            INO_SESSIONS => Node::Sessions,
            INO_WORKSPACES => Node::Workspaces,
            ino if ino >= SESSION_BASE => {
                let slot = (ino - SESSION_BASE) / SESSION_STRIDE;
                match (ino - SESSION_BASE) % SESSION_STRIDE {
                    K_DIR if slot > 0 => Node::SessionDir(slot),
                    K_RESULT => Node::Result(slot),
                    K_ERROR => Node::LastError(slot),
                    k if (K_OP0..K_OP0 + Op::ALL.len() as u64).contains(&k) => {
                        Node::OpFile(slot, Op::ALL[(k - K_OP0) as usize])
                    }
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The file id of this node.
    pub fn id(self) -> FileId {
        let session = |slot: u64, k: u64| SESSION_BASE + slot * SESSION_STRIDE + k;
        let ino = match self {
            Node::Dir => INO_DIR,
            Node::Snapshots => INO_SNAPSHOTS,
            Node::Sessions => INO_SESSIONS,
            Node::Workspaces => INO_WORKSPACES,
            Node::SessionDir(slot) => session(slot, K_DIR),
            Node::OpFile(slot, op) => session(
                slot,
                K_OP0 + Op::ALL.iter().position(|o| *o == op).unwrap_or(0) as u64,
            ),
            Node::Result(slot) => session(slot, K_RESULT),
            Node::LastError(slot) => session(slot, K_ERROR),
        };
        FileId::new(CONTROL_WS, ino)
    }

    /// The session a node belongs to, for session files and session directories.
    pub fn slot(self) -> Option<u64> {
        match self {
            Node::Dir => Some(results::DEFAULT_SLOT),
            Node::SessionDir(s) | Node::OpFile(s, _) | Node::Result(s) | Node::LastError(s) => {
                Some(s)
            }
            _ => None,
        }
    }

    pub fn is_dir(self) -> bool {
        matches!(
            self,
            Node::Dir | Node::Snapshots | Node::Sessions | Node::SessionDir(_)
        )
    }
}

pub(crate) use results::Results;
pub(crate) use vfs::not_permitted;

#[cfg(test)]
mod tests;
