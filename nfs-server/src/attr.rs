//! Conversions between the core's attributes and NFSv3's (`fattr3`, `wcc_attr`, `nfstime3`).
//!
//! NFSv3 times are unsigned 32-bit seconds: times before 1970 are sent as 0 and times after
//! 2106 as `u32::MAX` (the core keeps the exact value).

use nfs3_types::nfs3::{fattr3, ftype3, nfstime3, specdata3, wcc_attr};
use nokv_core::{Attr, FileType, Timestamp};

/// A core timestamp as `nfstime3`, clamped to its range.
pub fn nfstime(t: Timestamp) -> nfstime3 {
    match u32::try_from(t.secs) {
        Ok(seconds) => nfstime3 {
            seconds,
            nseconds: t.nanos,
        },
        Err(_) if t.secs < 0 => nfstime3::default(),
        Err(_) => nfstime3 {
            seconds: u32::MAX,
            nseconds: 999_999_999,
        },
    }
}

/// The NFS file type of a core file type.
pub fn ftype(kind: FileType) -> ftype3 {
    match kind {
        FileType::File => ftype3::NF3REG,
        FileType::Dir => ftype3::NF3DIR,
        FileType::Symlink => ftype3::NF3LNK,
        FileType::Fifo => ftype3::NF3FIFO,
        FileType::Socket => ftype3::NF3SOCK,
        FileType::CharDevice => ftype3::NF3CHR,
        FileType::BlockDevice => ftype3::NF3BLK,
    }
}

/// `fattr3` of `a`; `fsid` identifies the volume, the file id is the core's packed id.
pub fn fattr(a: &Attr, fsid: u64) -> fattr3 {
    // Linux dev_t encoding: major in bits 8..20 and 32..44, minor in 0..8 and 20..32.
    let major = ((a.rdev >> 8) & 0xfff) | ((a.rdev >> 32) & !0xfff);
    let minor = (a.rdev & 0xff) | ((a.rdev >> 12) & !0xff);
    fattr3 {
        type_: ftype(a.kind),
        mode: a.perm & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        used: a.blocks.saturating_mul(512),
        rdev: specdata3 {
            specdata1: major as u32,
            specdata2: minor as u32,
        },
        fsid,
        fileid: a.id.0,
        atime: nfstime(a.atime),
        mtime: nfstime(a.mtime),
        ctime: nfstime(a.ctime),
    }
}

/// The pre-operation attributes of weak cache consistency data.
pub fn wcc(a: &Attr) -> wcc_attr {
    wcc_attr {
        size: a.size,
        mtime: nfstime(a.mtime),
        ctime: nfstime(a.ctime),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_clamped_to_nfs_range() {
        assert_eq!(
            nfstime(Timestamp { secs: 5, nanos: 7 }),
            nfstime3 {
                seconds: 5,
                nseconds: 7
            }
        );
        assert_eq!(
            nfstime(Timestamp { secs: -1, nanos: 5 }),
            nfstime3::default()
        );
        assert_eq!(
            nfstime(Timestamp {
                secs: 1 << 40,
                nanos: 0
            })
            .seconds,
            u32::MAX
        );
    }
}
