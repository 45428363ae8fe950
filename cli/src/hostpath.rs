//! From a path argument to a volume path: arguments are volume paths (`/base`,
//! `/forks/a1`) or host paths inside a mount of the volume (`/mnt/nokv/base`, `./a1` when
//! the working directory is in the mount).
//!
//! Rule: when a server runs, it knows its mounts (the FUSE mount directories it serves,
//! and its NFS address, which the client matches against `/proc/self/mountinfo`: an `nfs`
//! mount whose `addr=` and `port=` options are the server's). An argument that names a host
//! location under one of those mount points (after resolving symbolic links of its
//! existing part) is translated: mount point -> the volume path it shows. Any other
//! absolute argument is a volume path; any other relative argument is an error. Without a
//! server there is no mount, so arguments are volume paths.

use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// A host directory showing a volume directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// Where it is mounted on the host (canonical).
    pub host: PathBuf,
    /// The volume path it shows (`/` for a mount of the whole volume).
    pub volume: String,
}

/// Translates path arguments (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    mounts: Vec<MountPoint>,
    cwd: PathBuf,
}

impl Resolver {
    /// A resolver for `mounts`, relative arguments taken from the working directory.
    pub fn new(mounts: Vec<MountPoint>) -> Resolver {
        Resolver {
            mounts,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
        }
    }

    /// A resolver with an explicit working directory.
    #[cfg(test)]
    pub fn with_cwd(mounts: Vec<MountPoint>, cwd: PathBuf) -> Resolver {
        Resolver { mounts, cwd }
    }

    /// The volume path `arg` names.
    pub fn volume_path(&self, arg: &str) -> Result<String, CliError> {
        if arg.is_empty() {
            return Err(CliError::BadPath("empty path".into()));
        }
        if !self.mounts.is_empty() {
            let host = self.cwd.join(arg);
            if let Some(p) = canonical_prefix(&host) {
                for m in &self.mounts {
                    if let Ok(rest) = p.strip_prefix(&m.host) {
                        return Ok(join_volume(&m.volume, rest));
                    }
                }
            }
        }
        if arg.starts_with('/') {
            Ok(arg.to_string())
        } else {
            Err(CliError::BadPath(format!(
                "{arg:?} is not a volume path (volume paths start with /) and not inside a mount of this volume"
            )))
        }
    }

    /// `arg` as an absolute host path (for HOSTDIR arguments, which the server may use).
    pub fn host_path(&self, arg: &Path) -> PathBuf {
        std::path::absolute(self.cwd.join(arg)).unwrap_or_else(|_| self.cwd.join(arg))
    }
}

/// `path` with its longest existing ancestor canonicalized and the rest appended; `None`
/// when the rest contains `..` (it cannot be placed without the file system).
fn canonical_prefix(path: &Path) -> Option<PathBuf> {
    let mut existing = path.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return Some(out);
        }
        match existing.components().next_back() {
            Some(Component::Normal(n)) => rest.push(n.to_os_string()),
            Some(Component::CurDir) => {}
            _ => return None,
        }
        if !existing.pop() {
            return None;
        }
    }
}

fn join_volume(prefix: &str, rest: &Path) -> String {
    let mut out = prefix.trim_end_matches('/').to_string();
    for c in rest.components() {
        if let Component::Normal(n) = c {
            out.push('/');
            out.push_str(&n.to_string_lossy());
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The NFS mounts of the server at `server` listed in `mountinfo` (the text of
/// `/proc/self/mountinfo`): `nfs` mounts whose `port=` is the server's port and whose
/// `addr=` is its address (any address when the server listens on all of them).
pub fn nfs_mounts(mountinfo: &str, server: SocketAddr) -> Vec<MountPoint> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 || r[0] != "nfs" {
            continue;
        }
        let (root, mount_point, source, opts) = (unescape(l[3]), unescape(l[4]), r[1], r[2]);
        let Some(export) = source.find(":/").map(|i| unescape(&source[i + 1..])) else {
            continue;
        };
        let opt = |key: &str| {
            opts.split(',')
                .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
        };
        let port_ok = opt("port").and_then(|p| p.parse::<u16>().ok()) == Some(server.port());
        let addr_ok = server.ip().is_unspecified()
            || opt("addr").and_then(|a| a.parse::<std::net::IpAddr>().ok()) == Some(server.ip());
        if !port_ok || !addr_ok {
            continue;
        }
        let volume = join_volume(&export, Path::new(&root));
        out.push(MountPoint {
            host: PathBuf::from(mount_point),
            volume,
        });
    }
    out
}

/// The NFS mounts of the server at `server` on this host (none if mountinfo is unreadable).
pub fn local_nfs_mounts(server: SocketAddr) -> Vec<MountPoint> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| nfs_mounts(&t, server))
        .unwrap_or_default()
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
36 22 0:32 / /mnt/nokv rw,relatime shared:7 - nfs 127.0.0.1:/ rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,nolock,proto=tcp,port=4049,timeo=600,retrans=2,sec=sys,mountaddr=127.0.0.1,mountvers=3,mountport=4049,mountproto=tcp,local_lock=all,addr=127.0.0.1
37 22 0:33 / /mnt/other rw,relatime shared:8 - nfs 127.0.0.1:/ rw,vers=3,proto=tcp,port=2049,addr=127.0.0.1
38 22 0:34 / /mnt/my\\040forks rw,relatime shared:9 - nfs 127.0.0.1:/forks rw,vers=3,proto=tcp,port=4049,addr=127.0.0.1
39 22 0:35 / /mnt/remote rw,relatime shared:10 - nfs 10.0.0.9:/ rw,vers=3,proto=tcp,port=4049,addr=10.0.0.9
40 22 0:36 / /mnt/v4 rw,relatime shared:11 - nfs4 127.0.0.1:/ rw,vers=4.2,port=4049,addr=127.0.0.1
";

    #[test]
    fn nfs_mounts_of_this_server_only() {
        let m = nfs_mounts(MOUNTINFO, "127.0.0.1:4049".parse().unwrap());
        assert_eq!(
            m,
            vec![
                MountPoint {
                    host: "/mnt/nokv".into(),
                    volume: "/".into()
                },
                MountPoint {
                    host: "/mnt/my forks".into(),
                    volume: "/forks".into()
                },
            ]
        );
        let any = nfs_mounts(MOUNTINFO, "0.0.0.0:4049".parse().unwrap());
        assert_eq!(any.len(), 3, "{any:?}");
        assert!(nfs_mounts(MOUNTINFO, "127.0.0.1:5000".parse().unwrap()).is_empty());
    }

    #[test]
    fn host_paths_under_a_mount_become_volume_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let mnt = tmp.path().canonicalize().unwrap().join("mnt");
        std::fs::create_dir_all(mnt.join("base/sub")).unwrap();
        let mounts = vec![MountPoint {
            host: mnt.clone(),
            volume: "/".into(),
        }];
        let r = Resolver::with_cwd(mounts.clone(), mnt.join("base"));
        assert_eq!(r.volume_path(mnt.to_str().unwrap()).unwrap(), "/");
        assert_eq!(
            r.volume_path(mnt.join("base").to_str().unwrap()).unwrap(),
            "/base"
        );
        assert_eq!(r.volume_path("sub").unwrap(), "/base/sub");
        assert_eq!(r.volume_path(".").unwrap(), "/base");
        // A destination that does not exist yet.
        assert_eq!(r.volume_path("../forks-new").unwrap(), "/forks-new");
        assert_eq!(r.volume_path("sub/new").unwrap(), "/base/sub/new");
        // Absolute paths outside every mount are volume paths; relative ones are errors.
        assert_eq!(r.volume_path("/forks/a1").unwrap(), "/forks/a1");
        let outside = Resolver::with_cwd(mounts, tmp.path().to_path_buf());
        assert!(outside.volume_path("base").is_err());
        // A symbolic link into the mount is followed.
        std::os::unix::fs::symlink(mnt.join("base"), tmp.path().join("link")).unwrap();
        assert_eq!(outside.volume_path("link/sub").unwrap(), "/base/sub");
        // Mounts of a subdirectory map onto it.
        let sub = Resolver::with_cwd(
            vec![MountPoint {
                host: mnt.join("base"),
                volume: "/forks".into(),
            }],
            mnt.clone(),
        );
        assert_eq!(sub.volume_path("base/sub").unwrap(), "/forks/sub");
    }

    #[test]
    fn without_mounts_arguments_are_volume_paths() {
        let r = Resolver::with_cwd(Vec::new(), PathBuf::from("/"));
        assert_eq!(r.volume_path("/base").unwrap(), "/base");
        assert!(r.volume_path("base").is_err());
        assert!(r.volume_path("").is_err());
    }

    #[test]
    fn unescape_octal() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}
