//! `nokv import HOSTDIR PATH`: walk the host tree, create its directories and links in the
//! volume, copy its files in (each under a temporary name, renamed when complete), and with
//! `delete` remove what the host tree does not have (module docs of `transfer`).

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use nokv_core::{
    Caller, ErrorKind, FileId, FileType, Fs, OpenFlags, RenameFlags, SetAttr, SetTime,
};
use tokio::io::AsyncReadExt;
use tokio::task::JoinSet;

use super::*;
use crate::error::CliError;
use crate::progress::Progress;

/// Copies host directory `host` into volume directory `path` (created if missing; its
/// parent must exist), as `caller`.
pub async fn import(
    fs: &Fs,
    host: &Path,
    path: &str,
    opts: &TransferOptions,
    caller: &Caller,
    progress: &Arc<Progress>,
) -> Result<TransferReport, CliError> {
    let what = |rel: &[Vec<u8>]| format!("import {}: {path}{}", host.display(), rel_str(rel));
    let meta = std::fs::metadata(host).map_err(CliError::host(host))?;
    if !meta.is_dir() {
        return Err(CliError::Transfer(format!(
            "import: {} is not a directory",
            host.display()
        )));
    }
    let root_host = host.to_path_buf();
    let nodes = tokio::task::spawn_blocking(move || walk_host(&root_host))
        .await
        .map_err(|e| CliError::Transfer(format!("import: walking the host tree: {e}")))??;
    let mut report = TransferReport {
        from: host.display().to_string(),
        to: path.to_string(),
        ..Default::default()
    };
    let root = volume_dir(fs, path, caller).await?;
    count(&nodes, &mut report, progress);

    // Directories (pre-order: parents first).
    let mut dirs: HashMap<Vec<Vec<u8>>, FileId> = HashMap::new();
    dirs.insert(Vec::new(), root);
    writable_dir(fs, root, caller)
        .await
        .map_err(CliError::op(what(&[])))?;
    for n in nodes
        .iter()
        .filter(|n| n.kind == Kind::Dir && !n.rel.is_empty())
    {
        let (parent, name) = split(&n.rel);
        let pid = dirs[parent];
        let id = ensure_volume_dir(fs, pid, name, caller)
            .await
            .map_err(CliError::op(what(&n.rel)))?;
        dirs.insert(n.rel.clone(), id);
    }

    // Entries the source does not have, and leftovers of an interrupted run.
    let mut wanted: HashMap<&[Vec<u8>], HashSet<&[u8]>> = HashMap::new();
    for n in nodes.iter().filter(|n| !n.rel.is_empty()) {
        let (parent, name) = split(&n.rel);
        wanted.entry(parent).or_default().insert(name);
    }
    for (rel, &dir) in &dirs {
        let keep = wanted.get(rel.as_slice());
        for e in list_volume(fs, dir, caller)
            .await
            .map_err(CliError::op(what(rel)))?
        {
            let listed = keep.is_some_and(|k| k.contains(e.name.as_slice()));
            let nested = e.id.workspace() != dir.workspace();
            if is_part(&e.name) || (opts.delete && !listed && !nested) {
                remove_volume(fs, dir, &e.name, caller)
                    .await
                    .map_err(CliError::op(what(rel)))?;
                report.deleted += 1;
            }
        }
    }

    // Symbolic links.
    for n in &nodes {
        let Kind::Symlink(target) = &n.kind else {
            continue;
        };
        let (parent, name) = split(&n.rel);
        let pid = dirs[parent];
        match fs.lookup(pid, name, caller).await {
            Ok(a) if a.kind == FileType::Symlink => {
                if fs.readlink(a.id).await.ok().as_deref() == Some(target) {
                    continue;
                }
                remove_volume(fs, pid, name, caller).await
            }
            Ok(_) => remove_volume(fs, pid, name, caller).await,
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
        .map_err(CliError::op(what(&n.rel)))?;
        fs.symlink(pid, name, target, caller)
            .await
            .map_err(CliError::op(what(&n.rel)))?;
    }

    // Regular files, `jobs` at a time.
    let sem = Arc::new(tokio::sync::Semaphore::new(opts.jobs.max(1)));
    let mut tasks = JoinSet::new();
    for n in nodes.iter().filter(|n| n.kind == Kind::File) {
        let (parent, _) = split(&n.rel);
        let pid = dirs[parent];
        let (fs, n, caller, progress, sem) = (
            fs.clone(),
            n.clone(),
            *caller,
            Arc::clone(progress),
            Arc::clone(&sem),
        );
        let src = host_path(host, &n.rel);
        let label = what(&n.rel);
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            copy_in(&fs, pid, &n, &src, &caller, &progress)
                .await
                .map_err(|e| match e {
                    Fail::Core(err) => CliError::Op { what: label, err },
                    Fail::Host(err) => CliError::Host { path: src, err },
                })
        });
    }
    join_all(&mut tasks, &mut report).await?;

    // Directory modes and times, children first.
    for n in nodes.iter().rev().filter(|n| n.kind == Kind::Dir) {
        let set = SetAttr {
            mode: Some(n.perm),
            mtime: Some(SetTime::At(n.mtime)),
            atime: Some(SetTime::At(n.atime)),
            ..Default::default()
        };
        fs.setattr(dirs[&n.rel], &set, caller)
            .await
            .map_err(CliError::op(what(&n.rel)))?;
    }
    fs.sync_metadata().await.map_err(CliError::op(what(&[])))?;
    Ok(report)
}

/// The host tree under `root`, parents before children, names sorted.
fn walk_host(root: &Path) -> Result<Vec<Node>, CliError> {
    let mut out = Vec::new();
    let m = std::fs::metadata(root).map_err(CliError::host(root))?;
    out.push(host_node(Vec::new(), &m, Kind::Dir));
    let mut stack = vec![(root.to_path_buf(), Vec::<Vec<u8>>::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(CliError::host(&dir))?
            .collect::<Result<_, _>>()
            .map_err(CliError::host(&dir))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).map_err(CliError::host(&p))?;
            let mut r = rel.clone();
            r.push(e.file_name().as_bytes().to_vec());
            let ft = m.file_type();
            let kind = if ft.is_dir() {
                stack.push((p.clone(), r.clone()));
                Kind::Dir
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                let t = std::fs::read_link(&p).map_err(CliError::host(&p))?;
                Kind::Symlink(t.as_os_str().as_bytes().to_vec())
            } else {
                Kind::Other
            };
            out.push(host_node(r, &m, kind));
        }
    }
    Ok(out)
}

fn host_node(rel: Vec<Vec<u8>>, m: &std::fs::Metadata, kind: Kind) -> Node {
    Node {
        rel,
        size: if kind == Kind::File { m.len() } else { 0 },
        kind,
        perm: m.mode() & 0o7777,
        mtime: ts(m.mtime(), m.mtime_nsec()),
        atime: ts(m.atime(), m.atime_nsec()),
        id: None,
    }
}

/// The volume directory `path`, created (one level) when missing.
async fn volume_dir(fs: &Fs, path: &str, caller: &Caller) -> Result<FileId, CliError> {
    let what = || format!("import into {path}");
    match fs.resolve(path) {
        Ok(id) => {
            let a = fs.getattr(id).await.map_err(CliError::op(what()))?;
            if a.kind != FileType::Dir {
                return Err(CliError::Transfer(format!(
                    "import into {path}: not a directory"
                )));
            }
            Ok(id)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            let (parent, name) = match path.trim_end_matches('/').rsplit_once('/') {
                Some((p, n)) if !n.is_empty() => (if p.is_empty() { "/" } else { p }, n),
                _ => return Err(CliError::op(what())(e)),
            };
            let pid = fs.resolve(parent).map_err(CliError::op(what()))?;
            let a = fs
                .mkdir(pid, name.as_bytes(), 0o700, caller)
                .await
                .map_err(CliError::op(what()))?;
            Ok(a.id)
        }
        Err(e) => Err(CliError::op(what())(e)),
    }
}

/// Makes sure the caller may add entries to `dir` until the final modes are set.
async fn writable_dir(fs: &Fs, dir: FileId, caller: &Caller) -> nokv_core::Result<()> {
    let a = fs.getattr(dir).await?;
    if a.perm & 0o700 != 0o700 {
        let set = SetAttr {
            mode: Some(a.perm | 0o700),
            ..Default::default()
        };
        fs.setattr(dir, &set, caller).await?;
    }
    Ok(())
}

/// Directory `name` in `parent`: the existing one, or a new one replacing a non-directory.
async fn ensure_volume_dir(
    fs: &Fs,
    parent: FileId,
    name: &[u8],
    caller: &Caller,
) -> nokv_core::Result<FileId> {
    match fs.lookup(parent, name, caller).await {
        Ok(a) if a.kind == FileType::Dir => {
            writable_dir(fs, a.id, caller).await?;
            return Ok(a.id);
        }
        Ok(_) => remove_volume(fs, parent, name, caller).await?,
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(fs.mkdir(parent, name, 0o700, caller).await?.id)
}

/// Removes `name` from volume directory `parent`, with its subtree.
async fn remove_volume(
    fs: &Fs,
    parent: FileId,
    name: &[u8],
    caller: &Caller,
) -> nokv_core::Result<()> {
    let a = fs.lookup(parent, name, caller).await?;
    if a.kind != FileType::Dir {
        return fs.unlink(parent, name, caller).await;
    }
    // Depth-first without recursion: (dir, parent, name, children listed).
    let mut stack = vec![(a.id, parent, name.to_vec(), false)];
    while let Some((dir, p, n, listed)) = stack.pop() {
        if listed {
            fs.rmdir(p, &n, caller).await?;
            continue;
        }
        stack.push((dir, p, n, true));
        for e in list_volume(fs, dir, caller).await? {
            if e.kind == FileType::Dir {
                stack.push((e.id, dir, e.name, false));
            } else {
                fs.unlink(dir, &e.name, caller).await?;
            }
        }
    }
    Ok(())
}

/// Copies host file `src` (described by `n`) into `parent` unless already complete.
async fn copy_in(
    fs: &Fs,
    parent: FileId,
    n: &Node,
    src: &Path,
    caller: &Caller,
    progress: &Progress,
) -> Result<Option<u64>, Fail> {
    let (_, name) = split(&n.rel);
    let existing = match fs.lookup(parent, name, caller).await {
        Ok(a) => Some(a),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(a) = &existing {
        if a.kind == FileType::File && a.size == n.size && a.mtime == n.mtime {
            progress.add_bytes(n.size);
            progress.file_done();
            return Ok(None);
        }
    }
    let tmp = part_name(name);
    let a = fs.create(parent, &tmp, 0o600, caller, false).await?;
    let rw = OpenFlags {
        read: true,
        write: true,
        truncate: true,
    };
    fs.open(a.id, rw, caller).await?;
    let written = write_from_host(fs, a.id, src, progress).await;
    let released = fs.release(a.id).await;
    let written = written?;
    released?;
    let set = SetAttr {
        mode: Some(n.perm),
        mtime: Some(SetTime::At(n.mtime)),
        atime: Some(SetTime::At(n.atime)),
        ..Default::default()
    };
    fs.setattr(a.id, &set, caller).await?;
    if existing.is_some_and(|e| e.kind == FileType::Dir) {
        remove_volume(fs, parent, name, caller).await?;
    }
    fs.rename(parent, &tmp, parent, name, RenameFlags::default(), caller)
        .await?;
    progress.file_done();
    Ok(Some(written))
}

async fn write_from_host(
    fs: &Fs,
    id: FileId,
    src: &Path,
    progress: &Progress,
) -> Result<u64, Fail> {
    let mut f = tokio::fs::File::open(src).await?;
    let mut buf = vec![0u8; PIECE];
    let mut off = 0u64;
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            return Ok(off);
        }
        let mut done = 0;
        while done < n {
            let w = fs.write(id, off, &buf[done..n]).await? as usize;
            done += w;
            off += w as u64;
        }
        progress.add_bytes(n as u64);
    }
}
