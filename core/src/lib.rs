//! # nokv-core
//!
//! The core of NoKV, a copy-on-write workspace filesystem. It owns the metadata model
//! (layers, versions, workspaces), the POSIX operation set both frontends call, and the data
//! path (4 MiB immutable blocks in an object store). It knows nothing of FUSE or NFS.
//!
//! Layout:
//! - [`store`]: the `MetaStore` trait and its redb / holt / in-memory implementations.
//! - [`object`]: the `ObjectStore` trait over OpenDAL (fs, s3) and an in-memory one.
//! - `meta`: key codec, record encodings, group commit, layer-chain reads.
//! - `data`: write sessions, block cache, reads.
//! - `fs`: the POSIX operation set ([`Fs`]).
//! - `volume`: opening a data directory (lock, volume id, stores): [`Volume`].
//! - [`workspace`]: clone, snapshot, rollback, discard, promote, diff, gc, fsck.

#![warn(missing_docs)]

pub mod control;
mod data;
pub mod error;
mod fs;
pub mod invalidate;
mod meta;
pub mod object;
pub mod store;
pub mod types;
mod volume;
pub mod workspace;

pub use data::{BLOCK_SIZE, CHUNK_SIZE, INLINE_MAX};
pub use error::{ErrorKind, FsError, Result};
pub use fs::{Fs, FsOptions, OpenFlags};
pub use meta::ReadPoint;
pub use types::*;
pub use volume::{MetaEngine, Volume, VolumeConfig};
