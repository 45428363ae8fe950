//! Mount options of the FUSE frontend, independent of the command line.

use nokv_core::FileId;

/// How a volume (or part of it) is mounted.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// The directory shown as the mount root: the volume root, a workspace root, a
    /// directory, or a snapshot root (`Fs::resolve` of `/.nokv/snapshots/NAME`).
    pub root: FileId,
    /// Refuse every change (`EROFS`); the kernel mount is `ro` as well.
    pub read_only: bool,
    /// Let every user use the mount (`allow_other`); otherwise only root and the mounting
    /// user.
    pub allow_other: bool,
    /// Let the kernel check permissions from the mode bits (`default_permissions`),
    /// including supplementary groups; the core checks again with the caller's uid/gid.
    pub default_permissions: bool,
    /// Have `fusermount3` unmount when the serving process dies.
    pub auto_unmount: bool,
    /// Seconds the kernel may cache attributes.
    pub attr_timeout: f64,
    /// Seconds the kernel may cache a name -> inode entry.
    pub entry_timeout: f64,
    /// Seconds the kernel may cache the absence of a name (0 disables negative caching).
    pub negative_timeout: f64,
    /// Kernel request reader threads (requests run on them; one that has to wait on I/O
    /// moves to the async runtime).
    pub threads: usize,
    /// Shown as the mount source (`df`, `/proc/mounts`).
    pub fsname: String,
}

impl Default for MountConfig {
    fn default() -> Self {
        MountConfig {
            root: FileId::ROOT,
            read_only: false,
            allow_other: false,
            default_permissions: false,
            auto_unmount: true,
            attr_timeout: 1.0,
            entry_timeout: 1.0,
            negative_timeout: 1.0,
            threads: 4,
            fsname: "nokv".into(),
        }
    }
}
