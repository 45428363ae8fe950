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

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nokv_core::{Caller, FileId, Fs, Timestamp};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::error::CliError;
use crate::progress::{human_bytes, Progress};

mod export;
mod import;

pub use export::export;
pub use import::import;

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

// ---------------------------------------------------------------------------------------
// export

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
