//! # nokv-nfs
//!
//! The NFSv3 frontend of NoKV: an in-process server, on one TCP port, of the NFS (100003 v3)
//! and MOUNT (100005 v3) programs over a [`nokv_core::Fs`]. It is a thin translation: each
//! procedure decodes its arguments, calls one or two core operations and encodes the reply;
//! every filesystem rule is the core's.
//!
//! It sits directly on `nfs3_types` (the XDR layer of the `nfs3_server` and `nfs3_client`
//! crates) rather than on `nfs3_server`'s filesystem trait, which cannot carry the caller's
//! identity, MKDIR's mode, real ACCESS/FSSTAT answers or a restart-changing write verifier
//! next to restart-surviving handles: see `docs/decisions/0004-nfs-dispatch-on-nfs3-types.md`.
//!
//! Modules:
//! - `server`: listener, connections, per-call tasks, clean shutdown ([`NfsServer`]).
//! - `rpc`: record marking, call headers, credentials, reply headers.
//! - `auth`: which AUTH_UNIX uids are served ([`AuthPolicy`]).
//! - `xdr`: bounded decoding of call arguments.
//! - `handle`: the file handle format ([`Handle`]).
//! - `attr`: core attributes to `fattr3`.
//! - `error`: [`NfsError`] and the one mapping of core errors to `nfsstat3`.
//! - `mount`: the MOUNT program.
//! - `nfs`: the NFS procedures.

#![warn(missing_docs)]

mod attr;
mod auth;
mod error;
mod handle;
mod mount;
mod nfs;
mod rpc;
mod server;
mod xdr;

pub use auth::AuthPolicy;
pub use error::{status_of, NfsError};
pub use handle::{volume_tag, Handle, HANDLE_LEN};
pub use server::{NfsServer, ServerConfig, DRAIN_TIMEOUT, MAX_IN_FLIGHT};
