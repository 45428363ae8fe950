//! Unit tests of the workspace operations over in-memory stores.

use std::sync::Arc;

use super::*;
use crate::data::BLOCK_SIZE;
use crate::fs::OpenFlags;
use crate::object::MemObjectStore;
use crate::store::MemStore;
use crate::types::{Caller, RenameFlags};
use crate::{Fs, FsOptions};

const ROOT: Caller = Caller::ROOT;
const WRITE: OpenFlags = OpenFlags {
    read: false,
    write: true,
    truncate: false,
};

fn new_fs(dir: &std::path::Path) -> (Fs, Arc<MemStore>, Arc<MemObjectStore>) {
    let store = Arc::new(MemStore::new());
    let objects = Arc::new(MemObjectStore::new());
    let fs = Fs::new(
        store.clone(),
        objects.clone(),
        FsOptions::new("vol", dir.join("staging")),
    )
    .unwrap();
    (fs, store, objects)
}

async fn write_file(fs: &Fs, path: &str, data: &[u8]) -> FileId {
    let (parent, name) = path.rsplit_once('/').unwrap();
    let dir = fs
        .resolve(if parent.is_empty() { "/" } else { parent })
        .unwrap();
    let f = fs
        .create(dir, name.as_bytes(), 0o644, &ROOT, false)
        .await
        .unwrap();
    fs.open(f.id, WRITE, &ROOT).await.unwrap();
    fs.setattr(
        f.id,
        &crate::types::SetAttr {
            size: Some(0),
            ..Default::default()
        },
        &ROOT,
    )
    .await
    .unwrap();
    fs.write(f.id, 0, data).await.unwrap();
    fs.release(f.id).await.unwrap();
    f.id
}

async fn read_file(fs: &Fs, path: &str) -> Vec<u8> {
    let id = fs.resolve(path).unwrap();
    fs.read(id, 0, u32::MAX / 2).await.unwrap().to_vec()
}

async fn mkdir(fs: &Fs, path: &str) -> FileId {
    let (parent, name) = path.rsplit_once('/').unwrap();
    let dir = fs
        .resolve(if parent.is_empty() { "/" } else { parent })
        .unwrap();
    fs.mkdir(dir, name.as_bytes(), 0o755, &ROOT)
        .await
        .unwrap()
        .id
}

fn lines(d: Diff) -> Vec<String> {
    d.map(|e| format!("{} {}", e.change.letter(), e.path))
        .collect()
}

async fn fsck_clean(fs: &Fs) {
    let r = fs.fsck().await.unwrap();
    assert!(r.is_clean(), "fsck: {:#?}", r.violations);
}

#[tokio::test]
async fn clone_diverges_both_ways_and_shares_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, objects) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    mkdir(&fs, "/forks").await;
    write_file(&fs, "/base/small", b"hello").await;
    let big: Vec<u8> = (0..BLOCK_SIZE * 2 + 7).map(|i| (i % 253) as u8).collect();
    write_file(&fs, "/base/big", &big).await;
    let before = objects.len();
    let info = fs.clone_tree("/base", "/forks/a1").await.unwrap();
    assert_eq!(info.path, "/forks/a1");
    assert_eq!(objects.len(), before, "a clone copies no block");
    assert_eq!(read_file(&fs, "/forks/a1/small").await, b"hello");
    assert_eq!(read_file(&fs, "/forks/a1/big").await, big);
    // Writes in the fork are invisible to the base, and the other way round.
    write_file(&fs, "/forks/a1/small", b"fork").await;
    write_file(&fs, "/base/big", b"base rewrote").await;
    assert_eq!(read_file(&fs, "/base/small").await, b"hello");
    assert_eq!(read_file(&fs, "/forks/a1/small").await, b"fork");
    assert_eq!(read_file(&fs, "/forks/a1/big").await, big);
    assert_eq!(read_file(&fs, "/base/big").await, b"base rewrote");
    // The fork root's parent is the junction's directory, in the root workspace.
    let a1 = fs.resolve("/forks/a1").unwrap();
    let up = fs.lookup(a1, b"..", &ROOT).await.unwrap();
    assert_eq!(up.id, fs.resolve("/forks").unwrap());
    assert_ne!(a1.workspace(), 0);
    // Destination rules.
    let e = fs.clone_tree("/base", "/forks/a1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exists);
    let e = fs.clone_tree("/base", "/nope/x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = fs.clone_tree("/base", "/base/inside").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = fs.clone_tree("/base/small", "/forks/f").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotDir);
    let e = fs.clone_tree("base", "/forks/f").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = fs
        .clone_tree("/base/../base", "/forks/f")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn cross_workspace_rename_and_link_are_exdev() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    write_file(&fs, "/base/f", b"x").await;
    fs.clone_tree("/base", "/fork").await.unwrap();
    let base = fs.resolve("/base").unwrap();
    let fork = fs.resolve("/fork").unwrap();
    let f = fs.resolve("/base/f").unwrap();
    let e = fs
        .rename(base, b"f", fork, b"g", RenameFlags::default(), &ROOT)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EXDEV);
    let e = fs.link(f, fork, b"h", &ROOT).await.unwrap_err();
    assert_eq!(e.errno(), libc::EXDEV);
    // A junction renames within its workspace (the fork moves with it).
    let root = fs.root();
    fs.rename(root, b"fork", root, b"fork2", RenameFlags::default(), &ROOT)
        .await
        .unwrap();
    assert_eq!(read_file(&fs, "/fork2/f").await, b"x");
    assert_eq!(fs.workspaces().unwrap()[1].path, "/fork2");
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn snapshot_is_read_only_and_frozen() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    write_file(&fs, "/base/f", b"v1").await;
    let s = fs.snapshot("/base", Some("v1")).await.unwrap();
    assert_eq!(s.name, "base@v1");
    let n = fs.snapshot("/base", None).await.unwrap();
    assert_eq!(n.name, "base@1");
    assert_eq!(fs.snapshot("/base", None).await.unwrap().name, "base@2");
    assert_eq!(
        fs.snapshot("/base", Some("v1")).await.unwrap_err().kind(),
        ErrorKind::Exists
    );
    assert_eq!(
        fs.snapshot("/base", Some("a b")).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    write_file(&fs, "/base/f", b"v2").await;
    write_file(&fs, "/base/g", b"new").await;
    assert_eq!(read_file(&fs, "/.nokv/snapshots/base@v1/f").await, b"v1");
    assert_eq!(
        fs.resolve("/.nokv/snapshots/base@v1/g").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let sroot = fs.resolve("/.nokv/snapshots/base@v1").unwrap();
    assert_eq!(sroot, s.root);
    let e = fs
        .create(sroot, b"x", 0o644, &ROOT, true)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EROFS);
    let f = fs.lookup(sroot, b"f", &ROOT).await.unwrap();
    let e = fs.open(f.id, WRITE, &ROOT).await.unwrap_err();
    assert_eq!(e.errno(), libc::EROFS);
    assert_eq!(
        fs.unlink(sroot, b"f", &ROOT).await.unwrap_err().errno(),
        libc::EROFS
    );
    let (entries, _) = fs.readdir(sroot, 0, 100, &ROOT).await.unwrap();
    let names: Vec<_> = entries.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names, vec![b".".to_vec(), b"..".to_vec(), b"f".to_vec()]);
    assert_eq!(fs.path_of(f.id).unwrap(), "/.nokv/snapshots/base@v1/f");
    let d = lines(fs.diff("/.nokv/snapshots/base@v1", "/base").await.unwrap());
    assert_eq!(d, vec!["M /f", "A /g"]);
    fs.delete_snapshot("base@v1").await.unwrap();
    assert_eq!(
        fs.delete_snapshot("base@v1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(fs.getattr(f.id).await.unwrap_err().kind(), ErrorKind::Stale);
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn rollback_restores_content_and_keeps_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    write_file(&fs, "/base/keep", b"keep").await;
    write_file(&fs, "/base/f", b"v1").await;
    fs.snapshot("/base", Some("v1")).await.unwrap();
    fs.clone_tree("/base", "/agent").await.unwrap();
    let keep_id = fs.resolve("/agent/keep").unwrap();
    let root_id = fs.resolve("/agent").unwrap();
    write_file(&fs, "/agent/f", b"agent wrote").await;
    write_file(&fs, "/agent/junk", b"junk").await;
    fs.snapshot("/agent", Some("mid")).await.unwrap();
    fs.unlink(root_id, b"keep", &ROOT).await.unwrap();
    // Rollback to the base's snapshot (the agent workflow).
    fs.rollback("/agent", "base@v1").await.unwrap();
    assert_eq!(read_file(&fs, "/agent/f").await, b"v1");
    assert_eq!(read_file(&fs, "/agent/keep").await, b"keep");
    assert_eq!(fs.resolve("/agent/keep").unwrap(), keep_id, "file ids stay");
    assert_eq!(fs.resolve("/agent").unwrap(), root_id);
    assert!(fs.resolve("/agent/junk").is_err());
    // ... and forward again to the workspace's own snapshot.
    fs.rollback("/agent", "agent@mid").await.unwrap();
    assert_eq!(read_file(&fs, "/agent/f").await, b"agent wrote");
    assert_eq!(read_file(&fs, "/agent/keep").await, b"keep");
    // Refusals.
    mkdir(&fs, "/base/sub").await;
    fs.snapshot("/base/sub", Some("s")).await.unwrap();
    let e = fs.rollback("/agent", "sub@s").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = fs.rollback("/agent", "nope@1").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = fs.rollback("/base", "base@v1").await.unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::InvalidArgument,
        "/base is not a workspace"
    );
    fs.clone_tree("/base", "/other").await.unwrap();
    let e = fs.rollback("/other", "agent@mid").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "a sibling's snapshot");
    // The root workspace rolls back to a snapshot of "/".
    fs.snapshot("/", Some("r")).await.unwrap();
    write_file(&fs, "/late", b"x").await;
    fs.rollback("/", "root@r").await.unwrap();
    assert!(fs.resolve("/late").is_err());
    assert_eq!(read_file(&fs, "/agent/f").await, b"agent wrote");
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn discard_and_rmdir_of_a_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    write_file(&fs, "/base/f", b"x").await;
    fs.clone_tree("/base", "/a").await.unwrap();
    fs.clone_tree("/base", "/b").await.unwrap();
    let a = fs.resolve("/a").unwrap();
    fs.discard("/a").await.unwrap();
    assert_eq!(fs.resolve("/a").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(fs.getattr(a).await.unwrap_err().kind(), ErrorKind::Stale);
    assert_eq!(
        fs.discard("/").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        fs.discard("/base").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    // rm -rf of a fork: empty it, then rmdir discards it.
    let root = fs.root();
    assert_eq!(
        fs.rmdir(root, b"b", &ROOT).await.unwrap_err().kind(),
        ErrorKind::NotEmpty
    );
    let b = fs.resolve("/b").unwrap();
    fs.unlink(b, b"f", &ROOT).await.unwrap();
    fs.rmdir(root, b"b", &ROOT).await.unwrap();
    assert_eq!(fs.workspaces().unwrap().len(), 1);
    assert_eq!(read_file(&fs, "/base/f").await, b"x");
    let attr = fs.getattr(root).await.unwrap();
    assert_eq!(attr.nlink, 3, "only /base is left as a subdirectory");
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn promote_swaps_content_and_keeps_unrelated_base_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    mkdir(&fs, "/forks").await;
    write_file(&fs, "/base/f", b"v1").await;
    write_file(&fs, "/base/g", b"g").await;
    let g_id = fs.resolve("/base/g").unwrap();
    fs.clone_tree("/base", "/forks/a").await.unwrap();
    fs.clone_tree("/base", "/forks/b").await.unwrap();
    write_file(&fs, "/forks/a/f", b"agent a").await;
    write_file(&fs, "/forks/a/new", b"new").await;
    // An unrelated change in the base workspace after the fork.
    write_file(&fs, "/elsewhere", b"kept").await;
    fs.promote("/forks/a").await.unwrap();
    assert_eq!(read_file(&fs, "/base/f").await, b"agent a");
    assert_eq!(read_file(&fs, "/base/new").await, b"new");
    assert_eq!(read_file(&fs, "/elsewhere").await, b"kept");
    assert_eq!(
        fs.resolve("/base/g").unwrap(),
        g_id,
        "unchanged files keep their ids"
    );
    assert!(fs.resolve("/forks/a").is_err(), "the promoted fork is gone");
    assert_eq!(
        read_file(&fs, "/forks/b/f").await,
        b"v1",
        "siblings keep their view"
    );
    // The sibling's base lineage changed: it cannot be promoted any more.
    let e = fs.promote("/forks/b").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // A conflicting base change fails the promote and changes nothing.
    fs.clone_tree("/base", "/forks/c").await.unwrap();
    write_file(&fs, "/forks/c/f", b"c").await;
    write_file(&fs, "/base/f", b"base moved on").await;
    let e = fs.promote("/forks/c").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Busy);
    assert_eq!(read_file(&fs, "/base/f").await, b"base moved on");
    assert_eq!(read_file(&fs, "/forks/c/f").await, b"c");
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn nested_workspaces_are_cloned_and_hidden_in_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/src").await;
    mkdir(&fs, "/src/d").await;
    write_file(&fs, "/src/d/f", b"inner").await;
    mkdir(&fs, "/proj").await;
    fs.clone_tree("/src", "/proj/vendored").await.unwrap();
    write_file(&fs, "/proj/vendored/d/f", b"nested edit").await;
    let info = fs.clone_tree("/proj", "/copy").await.unwrap();
    assert_eq!(read_file(&fs, "/copy/vendored/d/f").await, b"nested edit");
    write_file(&fs, "/copy/vendored/d/f", b"copy edit").await;
    assert_eq!(read_file(&fs, "/proj/vendored/d/f").await, b"nested edit");
    assert_eq!(fs.workspaces().unwrap().len(), 4);
    let nested = fs.resolve("/copy/vendored").unwrap();
    assert_ne!(nested.workspace(), info.id);
    // Snapshots do not show nested workspaces.
    fs.snapshot("/proj", Some("s")).await.unwrap();
    assert!(fs.resolve("/.nokv/snapshots/proj@s/vendored").is_err());
    // Discarding a workspace discards the ones nested in it.
    fs.discard("/copy").await.unwrap();
    assert_eq!(fs.workspaces().unwrap().len(), 2);
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn diff_reports_changes_kinds_and_subtrees() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    mkdir(&fs, "/base/dir").await;
    write_file(&fs, "/base/dir/x", b"x").await;
    write_file(&fs, "/base/a", b"a").await;
    write_file(&fs, "/base/same", b"same").await;
    write_file(&fs, "/base/old", b"old").await;
    fs.clone_tree("/base", "/f").await.unwrap();
    let f = fs.resolve("/f").unwrap();
    write_file(&fs, "/f/a", b"changed!").await;
    write_file(&fs, "/f/b", b"new").await;
    fs.unlink(f, b"old", &ROOT).await.unwrap();
    fs.rename(f, b"dir", f, b"moved", RenameFlags::default(), &ROOT)
        .await
        .unwrap();
    let same = fs.resolve("/f/same").unwrap();
    fs.setattr(
        same,
        &crate::types::SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
        &ROOT,
    )
    .await
    .unwrap();
    let d: Vec<DiffEntry> = fs.diff("/base", "/f").await.unwrap().collect();
    let l: Vec<String> = d
        .iter()
        .map(|e| format!("{} {}", e.change.letter(), e.path))
        .collect();
    assert_eq!(
        l,
        vec![
            "M /a",
            "A /b",
            "D /dir",
            "D /dir/x",
            "A /moved",
            "A /moved/x",
            "D /old",
            "M /same"
        ]
    );
    let a = &d[0];
    assert!(a.what.content && !a.what.mode);
    assert_eq!(a.size_delta, 7);
    assert!(d[7].what.mode && !d[7].what.content);
    // The reverse diff mirrors it; a diff with itself is empty.
    let r = lines(fs.diff("/f", "/base").await.unwrap());
    assert_eq!(r.len(), 8);
    assert!(r.contains(&"D /b".to_string()));
    assert!(lines(fs.diff("/base", "/base").await.unwrap()).is_empty());
    // Unrelated trees: the walk fallback finds the same kind of answer.
    mkdir(&fs, "/other").await;
    write_file(&fs, "/other/a", b"a").await;
    fs.clone_tree("/other", "/o2").await.unwrap();
    let w = lines(fs.diff("/base/dir", "/other").await.unwrap());
    assert_eq!(w, vec!["A /a", "D /x"]);
}

#[tokio::test]
async fn gc_frees_what_nothing_reads_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, objects) = new_fs(tmp.path());
    let opts = GcOptions {
        grace: std::time::Duration::ZERO,
        dry_run: false,
    };
    mkdir(&fs, "/base").await;
    let big: Vec<u8> = (0..BLOCK_SIZE + 10).map(|i| (i % 249) as u8).collect();
    write_file(&fs, "/base/big", &big).await;
    fs.clone_tree("/base", "/fork").await.unwrap();
    // The base rewrites the file; the fork still reads the old blocks.
    write_file(&fs, "/base/big", b"small now").await;
    let r = fs.gc(&opts).await.unwrap();
    assert_eq!(r.objects, 0, "the fork still reads the old blocks: {r:?}");
    assert_eq!(read_file(&fs, "/fork/big").await, big);
    fsck_clean(&fs).await;
    // Discard the fork: its layer and the old blocks become garbage.
    fs.discard("/fork").await.unwrap();
    let dry = fs
        .gc(&GcOptions {
            dry_run: true,
            ..opts.clone()
        })
        .await
        .unwrap();
    assert_eq!(dry.objects, 2);
    assert_eq!(objects.len(), 2, "a dry run deletes nothing");
    let r = fs.gc(&opts).await.unwrap();
    assert_eq!((r.layers, r.objects), (1, 2), "{r:?}");
    assert_eq!(r.bytes, big.len() as u64);
    assert_eq!(objects.len(), 0);
    assert_eq!(read_file(&fs, "/base/big").await, b"small now");
    fsck_clean(&fs).await;
    // A snapshot pins blocks until it is deleted.
    write_file(&fs, "/base/big", &big).await;
    fs.snapshot("/base", Some("s")).await.unwrap();
    write_file(&fs, "/base/big", b"gone").await;
    assert_eq!(fs.gc(&opts).await.unwrap().objects, 0);
    assert_eq!(read_file(&fs, "/.nokv/snapshots/base@s/big").await, big);
    fs.delete_snapshot("base@s").await.unwrap();
    assert_eq!(fs.gc(&opts).await.unwrap().objects, 2);
    // Grace: unreferenced but young objects are kept.
    write_file(&fs, "/base/big", &big).await;
    write_file(&fs, "/base/big", b"x").await;
    let young = fs
        .gc(&GcOptions {
            grace: std::time::Duration::from_secs(3600),
            dry_run: false,
        })
        .await
        .unwrap();
    assert_eq!(young.objects, 0);
    fsck_clean(&fs).await;
}

#[tokio::test]
async fn fsck_reports_a_missing_object() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, objects) = new_fs(tmp.path());
    let big: Vec<u8> = vec![7; BLOCK_SIZE + 1];
    write_file(&fs, "/f", &big).await;
    fsck_clean(&fs).await;
    let key = objects.keys().into_iter().next().unwrap();
    objects.remove(&key);
    let r = fs.fsck().await.unwrap();
    assert_eq!(r.violations.len(), 1, "{r:?}");
    assert_eq!(r.violations[0].invariant, "D1");
}

#[tokio::test]
async fn snapshot_of_a_fork_survives_truncate_in_the_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    write_file(&fs, "/base/c", b"x").await;
    let c = fs.resolve("/base/c").unwrap();
    let grow = crate::types::SetAttr {
        size: Some(crate::INLINE_MAX + 1),
        ..Default::default()
    };
    fs.setattr(c, &grow, &ROOT).await.unwrap();
    fs.clone_tree("/base", "/f1").await.unwrap();
    let fc = fs.resolve("/f1/c").unwrap();
    fs.open(fc, WRITE, &ROOT).await.unwrap();
    fs.write(fc, 0, &[1u8; 854]).await.unwrap();
    fs.release(fc).await.unwrap();
    let mut want = vec![1u8; 854];
    want.resize(crate::INLINE_MAX as usize + 1, 0);
    assert_eq!(read_file(&fs, "/f1/c").await, want);
    fs.snapshot("/f1", Some("s")).await.unwrap();
    assert_eq!(read_file(&fs, "/.nokv/snapshots/f1@s/c").await, want);
    let cut = crate::types::SetAttr {
        size: Some(1),
        ..Default::default()
    };
    fs.setattr(fc, &cut, &ROOT).await.unwrap();
    assert_eq!(read_file(&fs, "/f1/c").await, vec![1u8]);
    assert_eq!(read_file(&fs, "/.nokv/snapshots/f1@s/c").await, want);
}

/// One object referenced with two valid lengths (a truncate in a fork clamps it; the
/// snapshot still reads the longer one): the cache must not serve the shorter read.
#[tokio::test]
async fn truncated_block_length_does_not_leak_into_a_snapshot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8 + 1).collect();
    write_file(&fs, "/base/c", &data).await;
    fs.snapshot("/base", Some("s")).await.unwrap();
    fs.clone_tree("/base", "/f").await.unwrap();
    let fc = fs.resolve("/f/c").unwrap();
    let cut = crate::types::SetAttr {
        size: Some(10),
        ..Default::default()
    };
    fs.setattr(fc, &cut, &ROOT).await.unwrap();
    assert_eq!(read_file(&fs, "/f/c").await, data[..10].to_vec());
    assert_eq!(read_file(&fs, "/.nokv/snapshots/base@s/c").await, data);
    assert_eq!(read_file(&fs, "/base/c").await, data);
}

/// A fork rolled back to a snapshot of its base taken after the fork reads the base as of
/// that snapshot, its own junction included: promote must still remove that junction.
#[tokio::test]
async fn promote_after_rollback_to_a_later_base_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    mkdir(&fs, "/base").await;
    mkdir(&fs, "/forks").await;
    write_file(&fs, "/base/m", b"0").await;
    fs.clone_tree("/base", "/forks/a").await.unwrap();
    fs.clone_tree("/base", "/forks/b").await.unwrap();
    write_file(&fs, "/base/m", b"1").await;
    fs.snapshot("/base", Some("late")).await.unwrap();
    fs.rollback("/forks/a", "base@late").await.unwrap();
    write_file(&fs, "/forks/a/m", b"a").await;
    fs.promote("/forks/a").await.unwrap();
    assert_eq!(read_file(&fs, "/base/m").await, b"a");
    assert!(fs.resolve("/forks/a").is_err());
    assert_eq!(read_file(&fs, "/forks/b/m").await, b"0");
    fsck_clean(&fs).await;
}
