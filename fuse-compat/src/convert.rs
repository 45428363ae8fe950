//! Translations between core types and FUSE types: errors to errno, attributes, times,
//! file types, and the one mapping between file ids and FUSE inode numbers.
//!
//! Inode numbers are the core's file ids (the same `st_ino` the NFS frontend reports), except
//! that FUSE requires the mount root to be inode 1: when the mount root is not the volume
//! root (a workspace or a snapshot), its file id and id 1 swap places.

use std::time::{Duration, SystemTime};

use fuser::{Errno, FileAttr, INodeNo, TimeOrNow};
use nokv_core::{Attr, FileId, FileType, FsError, SetTime, Timestamp};

/// `st_blksize` reported for every file: the preferred I/O size (the kernel's largest write).
pub(crate) const BLKSIZE: u32 = 1 << 20;

/// The errno a core error becomes.
pub(crate) fn errno(e: &FsError) -> Errno {
    Errno::from_i32(e.errno())
}

/// Maps file ids to inode numbers and back for one mount.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Inos {
    root: FileId,
}

impl Inos {
    pub(crate) fn new(root: FileId) -> Self {
        Inos { root }
    }

    /// The inode number the kernel sees for `id`.
    pub(crate) fn ino(&self, id: FileId) -> INodeNo {
        if id == self.root {
            INodeNo::ROOT
        } else if id == FileId::ROOT {
            INodeNo(self.root.0)
        } else {
            INodeNo(id.0)
        }
    }

    /// The file id of inode number `ino`.
    pub(crate) fn id(&self, ino: INodeNo) -> FileId {
        if ino == INodeNo::ROOT {
            self.root
        } else if ino.0 == self.root.0 {
            FileId::ROOT
        } else {
            FileId(ino.0)
        }
    }
}

pub(crate) fn kind(k: FileType) -> fuser::FileType {
    match k {
        FileType::File => fuser::FileType::RegularFile,
        FileType::Dir => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::Socket => fuser::FileType::Socket,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
    }
}

/// The file type encoded in the `S_IFMT` bits of `mode`, if any.
pub(crate) fn kind_of_mode(mode: u32) -> Option<FileType> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG | 0 => FileType::File,
        libc::S_IFDIR => FileType::Dir,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::Fifo,
        libc::S_IFSOCK => FileType::Socket,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        _ => return None,
    })
}

pub(crate) fn attr(a: &Attr, inos: &Inos) -> FileAttr {
    FileAttr {
        ino: inos.ino(a.id),
        size: a.size,
        blocks: a.blocks,
        atime: a.atime.into(),
        mtime: a.mtime.into(),
        ctime: a.ctime.into(),
        crtime: a.btime.into(),
        kind: kind(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev as u32,
        blksize: BLKSIZE,
        flags: 0,
    }
}

pub(crate) fn set_time(t: TimeOrNow) -> SetTime {
    match t {
        TimeOrNow::Now => SetTime::Now,
        TimeOrNow::SpecificTime(t) => SetTime::At(Timestamp::from(t)),
    }
}

pub(crate) fn timestamp(t: SystemTime) -> Timestamp {
    Timestamp::from(t)
}

/// A duration from seconds (fractions allowed), for TTL options.
pub(crate) fn ttl(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_root_mount_is_the_identity() {
        let inos = Inos::new(FileId::ROOT);
        for id in [FileId::ROOT, FileId(2), FileId::new(3, 77)] {
            assert_eq!(inos.id(inos.ino(id)), id);
            assert_eq!(inos.ino(id).0, id.0);
        }
    }

    #[test]
    fn a_workspace_root_swaps_with_inode_one() {
        let root = FileId::new(5, 42);
        let inos = Inos::new(root);
        assert_eq!(inos.ino(root), INodeNo::ROOT);
        assert_eq!(inos.ino(FileId::ROOT), INodeNo(root.0));
        for id in [root, FileId::ROOT, FileId::new(5, 43), FileId(9)] {
            assert_eq!(inos.id(inos.ino(id)), id);
        }
    }

    #[test]
    fn modes_decode_to_kinds() {
        assert_eq!(kind_of_mode(libc::S_IFREG | 0o644), Some(FileType::File));
        assert_eq!(kind_of_mode(0o644), Some(FileType::File));
        assert_eq!(kind_of_mode(libc::S_IFIFO), Some(FileType::Fifo));
        assert_eq!(kind_of_mode(0o170000), None);
    }
}
