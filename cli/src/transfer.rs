//! `nokv import HOSTDIR PATH` and `nokv export PATH HOSTDIR`: copy a tree between the host
//! and the volume, through the core API.
//!
//! Both walk the source first (so the progress bar knows the totals), then create the
//! directories in order, then the symbolic links, then copy regular files with up to
//! `jobs` copies in flight (each a Tokio task writing one file), and last set directory
//! modes and times, children before parents (so adding entries does not change them
//! again).
//!
//! Resumable: a destination file whose size and modification time equal the source's is
//! complete and skipped. Every file is written under a temporary name in its directory
//! (`.nokv-part-` + a hash of its name), given its mode and times, and only then renamed to
//! its name, so an interrupted run never leaves a partial file under a real name; the next
//! run rewrites it. Leftover temporary files are removed.
//!
//! What is copied: directories, regular files, symbolic links, permission bits and
//! modification/access times (not of symbolic links). Not copied: ownership (new files
//! belong to the caller), extended attributes, hard links (each link becomes its own file),
//! special files (counted as `unsupported`). With `delete`, destination entries the source
//! does not have are removed (nested workspaces are never removed).

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nokv_core::{
    Caller, ErrorKind, FileId, FileType, Fs, OpenFlags, RenameFlags, SetAttr, SetTime, Timestamp,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinSet;

use crate::error::CliError;
use crate::progress::{human_bytes, Progress};

/// Bytes per read or write call.
const PIECE: usize = 1 << 20;
/// Entries per `readdir` call.
const PAGE: usize = 1024;
/// Prefix of temporary file names.
const PART_PREFIX: &str = ".nokv-part-";

/// How to copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferOptions {
    /// Files copied concurrently (at least 1).
    pub jobs: usize,
    /// Remove destination entries the source does not have.
    pub delete: bool,
}

/// What a copy did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReport {
    /// Source (host directory or volume path).
    pub from: String,
    /// Destination.
    pub to: String,
    /// Regular files in the source.
    pub files: u64,
    /// Files written.
    pub copied: u64,
    /// Files already complete at the destination (same size and modification time).
    pub skipped: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Directories in the source, its root included.
    pub dirs: u64,
    /// Symbolic links in the source.
    pub symlinks: u64,
    /// Destination entries removed (`delete`, and leftover temporary files).
    pub deleted: u64,
    /// Special files (devices, FIFOs, sockets) not copied.
    pub unsupported: u64,
}

impl TransferReport {
    /// One line for people.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} to {}: {} file(s) ({} copied, {} already complete), {} dir(s), {} symlink(s), {} written",
            self.from,
            self.to,
            self.files,
            self.copied,
            self.skipped,
            self.dirs,
            self.symlinks,
            human_bytes(self.bytes)
        );
        if self.deleted > 0 {
            s.push_str(&format!(", {} removed", self.deleted));
        }
        if self.unsupported > 0 {
            s.push_str(&format!(
                ", {} special file(s) not copied",
                self.unsupported
            ));
        }
        s
    }
}

/// One entry of a source tree.
#[derive(Debug, Clone)]
struct Node {
    /// Path components below the root (empty for the root).
    rel: Vec<Vec<u8>>,
    kind: Kind,
    size: u64,
    perm: u32,
    mtime: Timestamp,
    atime: Timestamp,
    /// Source file id (export) — unused for import.
    id: Option<FileId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Dir,
    File,
    Symlink(Vec<u8>),
    Other,
}

/// `/a/b` for components `a`, `b`; empty for the root (it is appended to a path).
fn rel_str(rel: &[Vec<u8>]) -> String {
    let mut s = String::new();
    for c in rel {
        s.push('/');
        s.push_str(&String::from_utf8_lossy(c));
    }
    s
}

/// The temporary name of `name` while it is being written.
fn part_name(name: &[u8]) -> Vec<u8> {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{PART_PREFIX}{h:016x}").into_bytes()
}

fn is_part(name: &[u8]) -> bool {
    name.starts_with(PART_PREFIX.as_bytes())
}

fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

// ---------------------------------------------------------------------------------------
// import

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

/// A failed file copy: on the volume or on the host.
enum Fail {
    Core(nokv_core::FsError),
    Host(std::io::Error),
}

impl From<nokv_core::FsError> for Fail {
    fn from(e: nokv_core::FsError) -> Self {
        Fail::Core(e)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Self {
        Fail::Host(e)
    }
}

/// One file copy: `Some(bytes)` written, or `None` when already complete.
type CopyResult = Result<Option<u64>, CliError>;

async fn join_all(
    tasks: &mut JoinSet<CopyResult>,
    report: &mut TransferReport,
) -> Result<(), CliError> {
    while let Some(done) = tasks.join_next().await {
        let done = done.map_err(|e| CliError::Transfer(format!("copy task failed: {e}")))?;
        match done {
            Ok(Some(bytes)) => {
                report.copied += 1;
                report.bytes += bytes;
            }
            Ok(None) => report.skipped += 1,
            Err(e) => {
                tasks.abort_all();
                while tasks.join_next().await.is_some() {}
                return Err(e);
            }
        }
    }
    Ok(())
}

fn count(nodes: &[Node], report: &mut TransferReport, progress: &Progress) {
    for n in nodes {
        match n.kind {
            Kind::Dir => report.dirs += 1,
            Kind::File => report.files += 1,
            Kind::Symlink(_) => report.symlinks += 1,
            Kind::Other => report.unsupported += 1,
        }
    }
    let bytes = nodes
        .iter()
        .filter(|n| n.kind == Kind::File)
        .map(|n| n.size)
        .sum();
    progress.add_total(report.files, bytes);
}

fn split(rel: &[Vec<u8>]) -> (&[Vec<u8>], &[u8]) {
    let (name, parent) = rel.split_last().expect("not the root");
    (parent, name)
}

fn host_path(root: &Path, rel: &[Vec<u8>]) -> PathBuf {
    let mut p = root.to_path_buf();
    for c in rel {
        p.push(std::ffi::OsStr::from_bytes(c));
    }
    p
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

/// Every entry of volume directory `dir` but `.` and `..`.
async fn list_volume(
    fs: &Fs,
    dir: FileId,
    caller: &Caller,
) -> nokv_core::Result<Vec<nokv_core::DirEntry>> {
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let (page, done) = fs.readdir(dir, cookie, PAGE, caller).await?;
        let last = page.last().map(|e| e.cookie);
        out.extend(
            page.into_iter()
                .filter(|e| e.name != b"." && e.name != b".."),
        );
        match last {
            Some(c) if !done => cookie = c,
            _ => return Ok(out),
        }
    }
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

// ---------------------------------------------------------------------------------------
// export

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_names_are_stable_short_and_recognized() {
        let a = part_name(b"weights.bin");
        assert_eq!(a, part_name(b"weights.bin"));
        assert_ne!(a, part_name(b"weights.bim"));
        assert!(is_part(&a));
        assert!(a.len() < 32);
        assert!(!is_part(b"weights.bin"));
    }

    #[test]
    fn rel_paths_render_as_volume_suffixes() {
        assert_eq!(rel_str(&[]), "");
        assert_eq!(rel_str(&[b"a".to_vec(), b"b".to_vec()]), "/a/b");
    }
}
