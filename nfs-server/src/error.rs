//! The frontend's error type and the one mapping from core errors to `nfsstat3`.
//!
//! Handlers return [`NfsError`]; the dispatcher turns it into the procedure's failure reply
//! with [`NfsError::status`]. Core errors are mapped once, by [`status_of`].

use nfs3_types::nfs3::nfsstat3;
use nokv_core::{ErrorKind, FsError};

/// Why an NFS procedure failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NfsError {
    /// The handle is not one this server issued for this volume (`NFS3ERR_BADHANDLE`).
    #[error("malformed or foreign file handle")]
    BadHandle,
    /// The handle's file is gone, or was replaced by another with the same id
    /// (`NFS3ERR_STALE`).
    #[error("stale file handle")]
    Stale,
    /// A protocol-level refusal with a fixed status (e.g. `NOT_SYNC`, `NOTSUPP`, `TOOSMALL`).
    #[error("{1} ({0})")]
    Protocol(nfsstat3, &'static str),
    /// The core refused or failed.
    #[error(transparent)]
    Core(#[from] FsError),
}

impl NfsError {
    /// The `nfsstat3` a client sees.
    pub fn status(&self) -> nfsstat3 {
        match self {
            NfsError::BadHandle => nfsstat3::NFS3ERR_BADHANDLE,
            NfsError::Stale => nfsstat3::NFS3ERR_STALE,
            NfsError::Protocol(s, _) => *s,
            NfsError::Core(e) => status_of(e.kind()),
        }
    }
}

/// The `nfsstat3` for a core error kind (RFC 1813's meanings; kinds NFS has no word for
/// become `NFS3ERR_IO`, as the Linux server does for errnos it cannot express).
pub fn status_of(kind: ErrorKind) -> nfsstat3 {
    use nfsstat3::*;
    match kind {
        ErrorKind::NotFound => NFS3ERR_NOENT,
        ErrorKind::Exists => NFS3ERR_EXIST,
        ErrorKind::NotDir => NFS3ERR_NOTDIR,
        ErrorKind::IsDir => NFS3ERR_ISDIR,
        ErrorKind::NotEmpty => NFS3ERR_NOTEMPTY,
        ErrorKind::CrossWorkspace => NFS3ERR_XDEV,
        ErrorKind::ReadOnly => NFS3ERR_ROFS,
        ErrorKind::Stale => NFS3ERR_STALE,
        ErrorKind::Unsupported => NFS3ERR_NOTSUPP,
        ErrorKind::InvalidArgument | ErrorKind::Range | ErrorKind::TooBig => NFS3ERR_INVAL,
        ErrorKind::NameTooLong => NFS3ERR_NAMETOOLONG,
        ErrorKind::PermissionDenied => NFS3ERR_ACCES,
        ErrorKind::NotPermitted => NFS3ERR_PERM,
        ErrorKind::NoSpace => NFS3ERR_NOSPC,
        ErrorKind::TooManyLinks => NFS3ERR_MLINK,
        ErrorKind::FileTooBig => NFS3ERR_FBIG,
        ErrorKind::NoData | ErrorKind::Busy | ErrorKind::Corrupt | ErrorKind::Io => NFS3ERR_IO,
        _ => NFS3ERR_SERVERFAULT,
    }
}

/// Result of a handler.
pub type NfsResult<T> = Result<T, NfsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_kinds_map_to_their_nfs_status() {
        assert_eq!(
            NfsError::from(FsError::of(ErrorKind::Stale)).status(),
            nfsstat3::NFS3ERR_STALE
        );
        assert_eq!(
            status_of(ErrorKind::PermissionDenied),
            nfsstat3::NFS3ERR_ACCES
        );
        assert_eq!(status_of(ErrorKind::NotPermitted), nfsstat3::NFS3ERR_PERM);
        assert_eq!(status_of(ErrorKind::NotEmpty), nfsstat3::NFS3ERR_NOTEMPTY);
        assert_eq!(status_of(ErrorKind::CrossWorkspace), nfsstat3::NFS3ERR_XDEV);
        assert_eq!(status_of(ErrorKind::ReadOnly), nfsstat3::NFS3ERR_ROFS);
        assert_eq!(NfsError::BadHandle.status(), nfsstat3::NFS3ERR_BADHANDLE);
    }
}
