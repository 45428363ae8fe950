//! Neutral types of the core API: file ids, attributes, directory entries.
//!
//! These are what both frontends translate to and from; none of them knows FUSE or NFS.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bits of a [`FileId`] that hold the inode number; the workspace id takes the upper 20.
pub const INO_BITS: u32 = 44;
/// Largest inode number that fits in a file id.
pub const MAX_INO: u64 = (1 << INO_BITS) - 1;
/// Largest workspace id that fits in a file id.
pub const MAX_WORKSPACE: u64 = (1 << (64 - INO_BITS)) - 1;
/// Inode number of the volume root directory (also its file id: workspace 0).
pub const ROOT_INO: u64 = 1;

/// A file id as seen by frontends: `(workspace << 44) | ino`. Stable across restarts.
///
/// The same inherited file seen in two workspaces has two file ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(pub u64);

impl FileId {
    /// The root directory of the volume.
    pub const ROOT: FileId = FileId(ROOT_INO);

    /// Packs a workspace id and an inode number.
    pub fn new(workspace: u64, ino: u64) -> Self {
        debug_assert!(workspace <= MAX_WORKSPACE && ino <= MAX_INO);
        FileId((workspace << INO_BITS) | ino)
    }

    /// The workspace part.
    pub fn workspace(self) -> u64 {
        self.0 >> INO_BITS
    }

    /// The inode part.
    pub fn ino(self) -> u64 {
        self.0 & MAX_INO
    }
}

/// The type of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileType {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
    /// Character device.
    CharDevice,
    /// Block device.
    BlockDevice,
}

impl FileType {
    /// The `S_IFMT` bits of this type.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileType::File => libc::S_IFREG,
            FileType::Dir => libc::S_IFDIR,
            FileType::Symlink => libc::S_IFLNK,
            FileType::Fifo => libc::S_IFIFO,
            FileType::Socket => libc::S_IFSOCK,
            FileType::CharDevice => libc::S_IFCHR,
            FileType::BlockDevice => libc::S_IFBLK,
        }
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            FileType::File => 1,
            FileType::Dir => 2,
            FileType::Symlink => 3,
            FileType::Fifo => 4,
            FileType::Socket => 5,
            FileType::CharDevice => 6,
            FileType::BlockDevice => 7,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => FileType::File,
            2 => FileType::Dir,
            3 => FileType::Symlink,
            4 => FileType::Fifo,
            5 => FileType::Socket,
            6 => FileType::CharDevice,
            7 => FileType::BlockDevice,
            _ => return None,
        })
    }
}

/// A point in time with nanosecond precision (seconds may be negative: before 1970).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds, `< 1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                if d.subsec_nanos() == 0 {
                    Timestamp {
                        secs: -(d.as_secs() as i64),
                        nanos: 0,
                    }
                } else {
                    Timestamp {
                        secs: -(d.as_secs() as i64) - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.secs >= 0 {
            UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
        } else {
            UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs())
                + Duration::from_nanos(t.nanos as u64)
        }
    }
}

/// Attributes of a file, as returned by `getattr` and every creating call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// File id (workspace + inode).
    pub id: FileId,
    /// File type.
    pub kind: FileType,
    /// Permission bits, including setuid/setgid/sticky (`mode & 0o7777`).
    pub perm: u32,
    /// Number of hard links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (symlink: target length).
    pub size: u64,
    /// Bytes of storage actually used (512-byte units are `blocks`).
    pub blocks: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// Creation.
    pub btime: Timestamp,
    /// Device number for device files.
    pub rdev: u64,
    /// Creation generation: distinguishes successive files that could share an id.
    pub generation: u64,
}

impl Attr {
    /// `st_mode`: type bits plus permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | self.perm
    }
}

/// How a timestamp is set by `setattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    /// To the server's current time.
    Now,
    /// To this time.
    At(Timestamp),
}

/// Changes requested by `setattr`; `None` fields are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend with zeros).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<SetTime>,
    /// New modification time.
    pub mtime: Option<SetTime>,
    /// Set the change time to exactly this instead of "now" (for frontends that must
    /// reproduce a given time); it needs no permission beyond the other fields'.
    pub ctime: Option<Timestamp>,
    /// The change comes through a handle opened for writing (`ftruncate`, `O_TRUNC`): a
    /// size change then needs no write permission, as on a local filesystem (the open
    /// checked it).
    pub opened_for_write: bool,
}

/// One directory entry returned by `readdir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name.
    pub name: Vec<u8>,
    /// File id of the child.
    pub id: FileId,
    /// Type of the child.
    pub kind: FileType,
    /// Cookie to resume listing *after* this entry.
    pub cookie: u64,
}

/// Who is calling: used for permission checks and ownership of new files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
}

impl Caller {
    /// The superuser.
    pub const ROOT: Caller = Caller { uid: 0, gid: 0 };
}

/// Filesystem usage as reported by `statfs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Block size used by the counts below.
    pub block_size: u32,
    /// Total blocks.
    pub blocks: u64,
    /// Free blocks.
    pub blocks_free: u64,
    /// Blocks available to unprivileged users.
    pub blocks_available: u64,
    /// Total inodes (used + free).
    pub files: u64,
    /// Free inodes.
    pub files_free: u64,
    /// Maximum name length.
    pub name_max: u32,
}

/// Flags of `rename`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RenameFlags {
    /// Fail with `Exists` if the target exists (`RENAME_NOREPLACE`).
    pub noreplace: bool,
    /// Atomically swap source and target, which must both exist (`RENAME_EXCHANGE`).
    pub exchange: bool,
}

/// Mode of `setxattr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XattrMode {
    /// Create or replace.
    #[default]
    Any,
    /// Fail with `Exists` if present (`XATTR_CREATE`).
    Create,
    /// Fail with `NoData` if absent (`XATTR_REPLACE`).
    Replace,
}

/// Longest file name, in bytes.
pub const NAME_MAX: usize = 255;
/// Longest symlink target, in bytes.
pub const SYMLINK_MAX: usize = 4095;
/// Longest extended-attribute value, in bytes (bounded by the store's value limit).
pub const XATTR_VALUE_MAX: usize = 60 * 1024;
/// Longest extended-attribute name, in bytes.
pub const XATTR_NAME_MAX: usize = 255;
/// Most hard links to one file.
pub const LINK_MAX: u32 = 65_000;
/// Largest file size.
pub const FILE_SIZE_MAX: u64 = 1 << 50;
