//! Error kinds shared by every layer of the core.
//!
//! The core speaks one neutral error type, [`FsError`], whose [`ErrorKind`] says *what* went
//! wrong in filesystem terms. Frontends translate it exactly once at their boundary
//! (`errno` for FUSE, `nfsstat3` for NFS, a one-line message for the CLI). Lower layers
//! (`store`, `object`) have their own typed errors that convert into [`FsError`] here, so no
//! engine- or OpenDAL-specific error ever leaks upward.

use std::fmt;

/// What went wrong, in filesystem terms. Each kind maps to one errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No such file, directory, xattr owner or snapshot (`ENOENT`).
    NotFound,
    /// The name already exists (`EEXIST`).
    Exists,
    /// A path component or target is not a directory (`ENOTDIR`).
    NotDir,
    /// The operation needs a non-directory (`EISDIR`).
    IsDir,
    /// Directory not empty (`ENOTEMPTY`).
    NotEmpty,
    /// Rename or link across workspaces (`EXDEV`).
    CrossWorkspace,
    /// The target is read-only: a snapshot, a read-only mount (`EROFS`).
    ReadOnly,
    /// A handle or file id refers to something that no longer exists (`ESTALE`).
    Stale,
    /// Not supported by this filesystem (`EOPNOTSUPP`).
    Unsupported,
    /// Invalid argument (`EINVAL`).
    InvalidArgument,
    /// A name longer than 255 bytes (`ENAMETOOLONG`).
    NameTooLong,
    /// Permission denied by mode bits (`EACCES`).
    PermissionDenied,
    /// Operation not permitted for this caller (`EPERM`).
    NotPermitted,
    /// The store is full (`ENOSPC`).
    NoSpace,
    /// Too many hard links (`EMLINK`).
    TooManyLinks,
    /// The extended attribute does not exist (`ENODATA`).
    NoData,
    /// A buffer is too small for the result (`ERANGE`).
    Range,
    /// File offset or size past the supported maximum (`EFBIG`).
    FileTooBig,
    /// A value (xattr, symlink target) is too large (`E2BIG`).
    TooBig,
    /// The volume or resource is busy (`EBUSY`).
    Busy,
    /// Stored data failed validation; nothing was changed (`EIO`).
    Corrupt,
    /// An I/O error of the metadata or object store (`EIO`).
    Io,
}

impl ErrorKind {
    /// The Linux errno for this kind.
    pub fn errno(self) -> i32 {
        match self {
            ErrorKind::NotFound => libc::ENOENT,
            ErrorKind::Exists => libc::EEXIST,
            ErrorKind::NotDir => libc::ENOTDIR,
            ErrorKind::IsDir => libc::EISDIR,
            ErrorKind::NotEmpty => libc::ENOTEMPTY,
            ErrorKind::CrossWorkspace => libc::EXDEV,
            ErrorKind::ReadOnly => libc::EROFS,
            ErrorKind::Stale => libc::ESTALE,
            ErrorKind::Unsupported => libc::EOPNOTSUPP,
            ErrorKind::InvalidArgument => libc::EINVAL,
            ErrorKind::NameTooLong => libc::ENAMETOOLONG,
            ErrorKind::PermissionDenied => libc::EACCES,
            ErrorKind::NotPermitted => libc::EPERM,
            ErrorKind::NoSpace => libc::ENOSPC,
            ErrorKind::TooManyLinks => libc::EMLINK,
            ErrorKind::NoData => libc::ENODATA,
            ErrorKind::Range => libc::ERANGE,
            ErrorKind::FileTooBig => libc::EFBIG,
            ErrorKind::TooBig => libc::E2BIG,
            ErrorKind::Busy => libc::EBUSY,
            ErrorKind::Corrupt | ErrorKind::Io => libc::EIO,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not found",
            ErrorKind::Exists => "already exists",
            ErrorKind::NotDir => "not a directory",
            ErrorKind::IsDir => "is a directory",
            ErrorKind::NotEmpty => "directory not empty",
            ErrorKind::CrossWorkspace => "crosses a workspace boundary",
            ErrorKind::ReadOnly => "read-only",
            ErrorKind::Stale => "stale file handle",
            ErrorKind::Unsupported => "not supported",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NameTooLong => "name too long",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::NotPermitted => "operation not permitted",
            ErrorKind::NoSpace => "no space left",
            ErrorKind::TooManyLinks => "too many links",
            ErrorKind::NoData => "no such attribute",
            ErrorKind::Range => "result too large for buffer",
            ErrorKind::FileTooBig => "file too big",
            ErrorKind::TooBig => "value too large",
            ErrorKind::Busy => "busy",
            ErrorKind::Corrupt => "corrupt metadata",
            ErrorKind::Io => "I/O error",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// The core's error: a kind plus human context ("lookup of 'a' in 17").
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{kind}{}", if .context.is_empty() { String::new() } else { format!(": {}", .context) })]
pub struct FsError {
    kind: ErrorKind,
    context: String,
}

impl FsError {
    /// An error of `kind` with a context message.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        FsError {
            kind,
            context: context.into(),
        }
    }

    /// An error of `kind` with no further context.
    pub fn of(kind: ErrorKind) -> Self {
        FsError {
            kind,
            context: String::new(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The context message (may be empty).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The Linux errno for this error.
    pub fn errno(&self) -> i32 {
        self.kind.errno()
    }
}

impl From<ErrorKind> for FsError {
    fn from(kind: ErrorKind) -> Self {
        FsError::of(kind)
    }
}

impl From<crate::store::StoreError> for FsError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        let kind = match &e {
            StoreError::Corrupt(_) => ErrorKind::Corrupt,
            StoreError::NoSpace(_) => ErrorKind::NoSpace,
            StoreError::ValueTooLarge { .. } => ErrorKind::TooBig,
            StoreError::Locked { .. } => ErrorKind::Busy,
            _ => ErrorKind::Io,
        };
        FsError::new(kind, format!("metadata store: {e}"))
    }
}

impl From<crate::object::ObjectError> for FsError {
    fn from(e: crate::object::ObjectError) -> Self {
        use crate::object::ObjectErrorKind;
        let kind = match e.kind() {
            ObjectErrorKind::NoSpace => ErrorKind::NoSpace,
            _ => ErrorKind::Io,
        };
        FsError::new(kind, format!("object store: {e}"))
    }
}

/// Result alias used throughout the core.
pub type Result<T, E = FsError> = std::result::Result<T, E>;
