//! Where command results wait to be read: sessions and per-open scopes.
//!
//! A *session* is the set of control files one agent writes to: the default session
//! (`/.nokv/OP`, slot 0, shared by everyone) or a named one (`/.nokv/sessions/TOKEN/OP`,
//! created on first lookup). Each session keeps, in memory only, the output of the last
//! command of each kind, the output of the last command of any kind (`result`) and the
//! message of the last command if it failed (`last-error`, empty after a success).
//!
//! A *scope* is one open file on a frontend with open state (FUSE): a command written
//! through it also leaves its output in the scope, and reads through the same open file
//! stream that output once, from its start, whatever their offset (the write moved the
//! file offset past the command) and whatever other writers of the session did meanwhile.
//!
//! Invariants: slots are never reused (a handle to an evicted session is stale, never
//! another session's); at most [`SESSIONS_MAX`] named sessions and [`SCOPES_MAX`] scopes
//! exist, the least recently used going first; no lock is held across an await.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::Mutex;

use super::command::Op;
use crate::types::Timestamp;

/// Most named sessions kept; beyond it the least recently used is forgotten.
pub const SESSIONS_MAX: usize = 1024;
/// Most open scopes kept (a frontend that never releases cannot grow memory without bound).
pub const SCOPES_MAX: usize = 65_536;
/// Longest session token.
pub const TOKEN_MAX: usize = 64;

/// The default session's slot.
pub(crate) const DEFAULT_SLOT: u64 = 0;

/// Whether `token` may name a session: 1 to 64 of `[A-Za-z0-9._-]`, not starting with `.`.
pub fn valid_token(token: &[u8]) -> bool {
    !token.is_empty()
        && token.len() <= TOKEN_MAX
        && token[0] != b'.'
        && token
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One session's outputs.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub token: String,
    per_op: [Bytes; Op::ALL.len()],
    pub last: Bytes,
    pub last_error: Bytes,
    /// When the last command ran (or the session was created).
    pub mtime: Timestamp,
    used: Instant,
}

impl Session {
    fn new(token: String) -> Self {
        Session {
            token,
            per_op: Default::default(),
            last: Bytes::new(),
            last_error: Bytes::new(),
            mtime: Timestamp::now(),
            used: Instant::now(),
        }
    }

    /// Output of the last `op` command of this session.
    pub fn output(&self, op: Op) -> &Bytes {
        &self.per_op[op_index(op)]
    }
}

#[derive(Debug)]
struct Scope {
    slot: u64,
    output: Option<Bytes>,
    /// How much of `output` reads through the scope have returned.
    cursor: usize,
    used: Instant,
}

#[derive(Debug)]
struct State {
    sessions: BTreeMap<u64, Session>,
    by_token: HashMap<String, u64>,
    next_slot: u64,
    scopes: HashMap<u64, Scope>,
    next_scope: u64,
}

/// Every session and scope of one filesystem.
#[derive(Debug)]
pub(crate) struct Results {
    state: Mutex<State>,
    /// When the filesystem was opened (times of the fixed directories).
    pub started: Timestamp,
}

impl Results {
    pub fn new() -> Self {
        let mut sessions = BTreeMap::new();
        sessions.insert(DEFAULT_SLOT, Session::new(String::new()));
        Results {
            state: Mutex::new(State {
                sessions,
                by_token: HashMap::new(),
                next_slot: 1,
                scopes: HashMap::new(),
                next_scope: 1,
            }),
            started: Timestamp::now(),
        }
    }

    /// The slot of session `token`, created if new (the caller checked [`valid_token`]).
    pub fn session(&self, token: &str) -> u64 {
        let mut st = self.state.lock();
        if let Some(&slot) = st.by_token.get(token) {
            if let Some(s) = st.sessions.get_mut(&slot) {
                s.used = Instant::now();
            }
            return slot;
        }
        if st.by_token.len() >= SESSIONS_MAX {
            let oldest = st
                .sessions
                .iter()
                .filter(|(slot, _)| **slot != DEFAULT_SLOT)
                .min_by_key(|(_, s)| s.used)
                .map(|(slot, s)| (*slot, s.token.clone()));
            if let Some((slot, token)) = oldest {
                st.sessions.remove(&slot);
                st.by_token.remove(&token);
            }
        }
        let slot = st.next_slot;
        st.next_slot += 1;
        st.sessions.insert(slot, Session::new(token.to_string()));
        st.by_token.insert(token.to_string(), slot);
        slot
    }

    /// A copy of session `slot`, or `None` if it never existed or was forgotten.
    pub fn get(&self, slot: u64) -> Option<Session> {
        self.state.lock().sessions.get(&slot).cloned()
    }

    /// The named sessions, by slot.
    pub fn list(&self) -> Vec<(u64, String)> {
        let st = self.state.lock();
        st.sessions
            .iter()
            .filter(|(slot, _)| **slot != DEFAULT_SLOT)
            .map(|(slot, s)| (*slot, s.token.clone()))
            .collect()
    }

    /// Records the outcome of an `op` command of session `slot` written through `scope`.
    pub fn record(&self, slot: u64, scope: Option<u64>, op: Op, outcome: Result<Bytes, String>) {
        let mut st = self.state.lock();
        let (output, error) = match outcome {
            Ok(out) => (out, Bytes::new()),
            Err(msg) => (Bytes::new(), Bytes::from(format!("{msg}\n"))),
        };
        if let Some(s) = st.sessions.get_mut(&slot) {
            s.per_op[op_index(op)] = output.clone();
            s.last = output.clone();
            s.last_error = error;
            s.mtime = Timestamp::now();
            s.used = Instant::now();
        }
        if let Some(sc) = scope.and_then(|id| st.scopes.get_mut(&id)) {
            sc.output = Some(output);
            sc.cursor = 0;
            sc.used = Instant::now();
        }
    }

    /// Opens a scope on session `slot`.
    pub fn open_scope(&self, slot: u64) -> u64 {
        let mut st = self.state.lock();
        if st.scopes.len() >= SCOPES_MAX {
            if let Some(oldest) = st
                .scopes
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| *k)
            {
                st.scopes.remove(&oldest);
            }
        }
        let id = st.next_scope;
        st.next_scope += 1;
        st.scopes.insert(
            id,
            Scope {
                slot,
                output: None,
                cursor: 0,
                used: Instant::now(),
            },
        );
        id
    }

    /// The next (at most) `len` bytes of the output left in `scope` by a command written
    /// through it (empty once all were read), or `None` if no command was written through
    /// it (or it belongs to another session than `slot`).
    pub fn scope_read(&self, scope: u64, slot: u64, len: usize) -> Option<Bytes> {
        let mut st = self.state.lock();
        let sc = st.scopes.get_mut(&scope).filter(|s| s.slot == slot)?;
        let out = sc.output.as_ref()?;
        let start = sc.cursor.min(out.len());
        let end = start.saturating_add(len).min(out.len());
        let piece = out.slice(start..end);
        sc.cursor = end;
        sc.used = Instant::now();
        Some(piece)
    }

    /// Forgets `scope`.
    pub fn close_scope(&self, scope: u64) {
        self.state.lock().scopes.remove(&scope);
    }

    #[cfg(test)]
    pub fn scope_count(&self) -> usize {
        self.state.lock().scopes.len()
    }
}

fn op_index(op: Op) -> usize {
    Op::ALL.iter().position(|o| *o == op).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        for ok in [&b"a"[..], b"agent-1", b"A.b_c-9", &[b'x'; TOKEN_MAX]] {
            assert!(valid_token(ok), "{ok:?}");
        }
        for bad in [
            &b""[..],
            b".hidden",
            b"a/b",
            b"a b",
            b"\xff",
            &[b'x'; TOKEN_MAX + 1],
        ] {
            assert!(!valid_token(bad), "{bad:?}");
        }
    }

    #[test]
    fn sessions_are_separate_and_scopes_private() {
        let r = Results::new();
        let a = r.session("a");
        let b = r.session("b");
        assert_ne!(a, b);
        assert_eq!(r.session("a"), a);
        let sa = r.open_scope(a);
        let sb = r.open_scope(a);
        r.record(a, Some(sa), Op::Diff, Ok(Bytes::from_static(b"A /x\n")));
        r.record(a, Some(sb), Op::Diff, Ok(Bytes::from_static(b"D /y\n")));
        r.record(b, None, Op::Clone, Err("clone: exists".into()));
        assert_eq!(r.scope_read(sa, a, 2).unwrap(), "A ");
        assert_eq!(r.scope_read(sa, a, 100).unwrap(), "/x\n");
        assert_eq!(
            r.scope_read(sa, a, 100).unwrap(),
            "",
            "read once, then end of file"
        );
        assert_eq!(r.scope_read(sb, a, 100).unwrap(), "D /y\n");
        assert_eq!(
            r.scope_read(sa, b, 100),
            None,
            "a scope answers only for its session"
        );
        assert_eq!(r.get(a).unwrap().output(Op::Diff), "D /y\n");
        assert_eq!(r.get(a).unwrap().last_error, "");
        assert_eq!(r.get(b).unwrap().last_error, "clone: exists\n");
        assert_eq!(r.get(DEFAULT_SLOT).unwrap().last, "");
        let fresh = r.open_scope(a);
        assert_eq!(
            r.scope_read(fresh, a, 100),
            None,
            "nothing written through it"
        );
        r.close_scope(sa);
        assert_eq!(r.scope_read(sa, a, 100), None);
    }

    #[test]
    fn sessions_are_bounded_and_slots_never_reused() {
        let r = Results::new();
        let first = r.session("t0");
        for i in 1..=SESSIONS_MAX {
            r.session(&format!("t{i}"));
        }
        assert_eq!(r.list().len(), SESSIONS_MAX);
        assert!(
            r.get(first).is_none(),
            "the least recently used session went"
        );
        let again = r.session("t0");
        assert!(again > first, "a forgotten token comes back on a new slot");
        assert!(r.get(DEFAULT_SLOT).is_some(), "the default session stays");
    }
}
