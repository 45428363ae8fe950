//! `nokv export PATH HOSTDIR`: walk the volume tree, create its directories and links on the
//! host, copy its files out (each under a temporary name, renamed when complete), and with
//! `delete` remove what the volume tree does not have (module docs of `transfer`).

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use nokv_core::{Caller, FileId, FileType, Fs, OpenFlags, Timestamp};
use tokio::io::AsyncWriteExt;
use tokio::task::JoinSet;

use super::*;
use crate::error::CliError;
use crate::progress::Progress;

/// Copies volume directory `path` into host directory `host` (created if missing), as
/// `caller`.
pub async fn export(
    fs: &Fs,
    path: &str,
    host: &Path,
    opts: &TransferOptions,
    caller: &Caller,
    progress: &Arc<Progress>,
) -> Result<TransferReport, CliError> {
    let what = |rel: &[Vec<u8>]| format!("export {path}{}", rel_str(rel));
    let root = fs.resolve(path).map_err(CliError::op(what(&[])))?;
    let nodes = walk_volume(fs, root, caller)
        .await
        .map_err(CliError::op(what(&[])))?;
    if nodes[0].kind != Kind::Dir {
        return Err(CliError::Transfer(format!(
            "export {path}: not a directory"
        )));
    }
    match std::fs::metadata(host) {
        Ok(m) if !m.is_dir() => {
            return Err(CliError::Transfer(format!(
                "export to {}: not a directory",
                host.display()
            )))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(host).map_err(CliError::host(host))?
        }
        Err(e) => return Err(CliError::host(host)(e)),
    }
    let mut report = TransferReport {
        from: path.to_string(),
        to: host.display().to_string(),
        ..Default::default()
    };
    count(&nodes, &mut report, progress);

    // Directories.
    for n in nodes.iter().filter(|n| n.kind == Kind::Dir) {
        let p = host_path(host, &n.rel);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                std::fs::remove_file(&p).map_err(CliError::host(&p))?;
                std::fs::create_dir(&p).map_err(CliError::host(&p))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir(&p).map_err(CliError::host(&p))?
            }
            Err(e) => return Err(CliError::host(&p)(e)),
        }
        let m = std::fs::metadata(&p).map_err(CliError::host(&p))?;
        if m.mode() & 0o700 != 0o700 {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m.mode() | 0o700))
                .map_err(CliError::host(&p))?;
        }
    }

    // Entries the source does not have, and leftovers of an interrupted run.
    let mut wanted: HashMap<&[Vec<u8>], HashSet<&[u8]>> = HashMap::new();
    for n in nodes.iter().filter(|n| !n.rel.is_empty()) {
        let (parent, name) = split(&n.rel);
        wanted.entry(parent).or_default().insert(name);
    }
    for n in nodes.iter().filter(|n| n.kind == Kind::Dir) {
        let dir = host_path(host, &n.rel);
        let keep = wanted.get(n.rel.as_slice());
        for e in std::fs::read_dir(&dir).map_err(CliError::host(&dir))? {
            let e = e.map_err(CliError::host(&dir))?;
            let name = e.file_name();
            let listed = keep.is_some_and(|k| k.contains(name.as_bytes()));
            if is_part(name.as_bytes()) || (opts.delete && !listed) {
                let p = e.path();
                let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
                if is_dir {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                }
                .map_err(CliError::host(&p))?;
                report.deleted += 1;
            }
        }
    }

    // Symbolic links.
    for n in &nodes {
        let Kind::Symlink(target) = &n.kind else {
            continue;
        };
        let p = host_path(host, &n.rel);
        let target = std::ffi::OsStr::from_bytes(target);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                if std::fs::read_link(&p).ok().as_deref() == Some(Path::new(target)) {
                    continue;
                }
                std::fs::remove_file(&p)
            }
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&p),
            Ok(_) => std::fs::remove_file(&p),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(CliError::host(&p))?;
        std::os::unix::fs::symlink(target, &p).map_err(CliError::host(&p))?;
    }

    // Regular files.
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for n in nodes.iter().filter(|n| n.kind == Kind::File) {
        let (fs, n, caller, progress, sem) = (
            fs.clone(),
            n.clone(),
            *caller,
            Arc::clone(progress),
            Arc::clone(&sem),
        );
        let dst = host_path(host, &n.rel);
        let label = what(&n.rel);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            copy_out(&fs, &n, &dst, &caller, &progress)
                .await
                .map_err(|e| match e {
                    Fail::Core(err) => CliError::Op { what: label, err },
                    Fail::Host(err) => CliError::Host { path: dst, err },
                })
        });
    }
    join_all(&mut tasks, &mut report).await?;

    // Directory modes and times, children first.
    for n in nodes.iter().rev().filter(|n| n.kind == Kind::Dir) {
        let p = host_path(host, &n.rel);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(n.perm))
            .map_err(CliError::host(&p))?;
        set_host_times(&p, n).map_err(CliError::host(&p))?;
    }
    Ok(report)
}

/// The volume tree under `root`, parents before children, names sorted per directory.
async fn walk_volume(fs: &Fs, root: FileId, caller: &Caller) -> nokv_core::Result<Vec<Node>> {
    let a = fs.getattr(root).await?;
    let mut out = vec![volume_node(Vec::new(), &a, Kind::Dir)];
    if a.kind != FileType::Dir {
        out[0].kind = Kind::File;
        return Ok(out);
    }
    let mut stack = vec![(root, Vec::<Vec<u8>>::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries = list_volume(fs, dir, caller).await?;
        entries.sort_by(|x, y| x.name.cmp(&y.name));
        for e in entries {
            let a = fs.getattr(e.id).await?;
            let mut r = rel.clone();
            r.push(e.name);
            let kind = match a.kind {
                FileType::Dir => {
                    stack.push((e.id, r.clone()));
                    Kind::Dir
                }
                FileType::File => Kind::File,
                FileType::Symlink => Kind::Symlink(fs.readlink(e.id).await?),
                _ => Kind::Other,
            };
            out.push(volume_node(r, &a, kind));
        }
    }
    Ok(out)
}

fn volume_node(rel: Vec<Vec<u8>>, a: &nokv_core::Attr, kind: Kind) -> Node {
    Node {
        rel,
        size: if kind == Kind::File { a.size } else { 0 },
        kind,
        perm: a.perm & 0o7777,
        mtime: a.mtime,
        atime: a.atime,
        id: Some(a.id),
    }
}

/// Copies volume file `n` to host path `dst` unless already complete.
async fn copy_out(
    fs: &Fs,
    n: &Node,
    dst: &Path,
    caller: &Caller,
    progress: &Progress,
) -> Result<Option<u64>, Fail> {
    let id = n.id.expect("volume nodes carry their id");
    if let Ok(m) = std::fs::symlink_metadata(dst) {
        if m.is_file() && m.len() == n.size && ts(m.mtime(), m.mtime_nsec()) == n.mtime {
            progress.add_bytes(n.size);
            progress.file_done();
            return Ok(None);
        }
    }
    let dir = dst.parent().expect("files have a parent");
    let name = dst.file_name().expect("files have a name").as_bytes();
    let tmp = dir.join(std::ffi::OsStr::from_bytes(&part_name(name)));
    let ro = OpenFlags {
        read: true,
        write: false,
        truncate: false,
    };
    fs.open(id, ro, caller).await?;
    let copied = read_to_host(fs, id, n.size, &tmp, progress).await;
    fs.release(id).await?;
    let written = copied?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(n.perm))?;
    set_host_times(&tmp, n)?;
    if std::fs::symlink_metadata(dst).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(dst)?;
    }
    std::fs::rename(&tmp, dst)?;
    progress.file_done();
    Ok(Some(written))
}

async fn read_to_host(
    fs: &Fs,
    id: FileId,
    size: u64,
    tmp: &Path,
    progress: &Progress,
) -> Result<u64, Fail> {
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)
        .await?;
    let mut off = 0u64;
    while off < size {
        let want = (size - off).min(PIECE as u64) as u32;
        let data = fs.read(id, off, want).await?;
        if data.is_empty() {
            break;
        }
        f.write_all(&data).await?;
        off += data.len() as u64;
        progress.add_bytes(data.len() as u64);
    }
    f.flush().await?;
    Ok(off)
}

/// Sets the access and modification times of host path `p` (not following a symlink).
fn set_host_times(p: &Path, n: &Node) -> std::io::Result<()> {
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let spec = |t: Timestamp| libc::timespec {
        tv_sec: t.secs as libc::time_t,
        tv_nsec: t.nanos as libc::c_long,
    };
    let times = [spec(n.atime), spec(n.mtime)];
    // SAFETY: `c` is a NUL-terminated path and `times` two valid timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
