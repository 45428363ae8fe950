//! Unit tests of the POSIX operation set over the in-memory stores.

use std::sync::Arc;

use super::*;
use crate::data::{BLOCK_SIZE, CHUNK_SIZE};
use crate::object::MemObjectStore;
use crate::store::MemStore;
use crate::types::{RenameFlags, SetAttr, XattrMode};

pub(crate) fn new_fs(dir: &std::path::Path) -> (Fs, Arc<MemStore>, Arc<MemObjectStore>) {
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

const ROOT: Caller = Caller::ROOT;
/// An unprivileged caller.
const ALICE: Caller = Caller {
    uid: 1000,
    gid: 1000,
};

#[tokio::test]
async fn create_lookup_write_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, objects) = new_fs(tmp.path());
    let root = fs.root();
    let f = fs.create(root, b"a", 0o644, &ROOT, true).await.unwrap();
    assert_eq!(fs.lookup(root, b"a", &ROOT).await.unwrap().id, f.id);
    assert_eq!(
        fs.create(root, b"a", 0o644, &ROOT, true)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Exists
    );
    fs.write(f.id, 0, b"hello").await.unwrap();
    assert_eq!(&fs.read(f.id, 0, 100).await.unwrap()[..], b"hello");
    assert_eq!(fs.getattr(f.id).await.unwrap().size, 5);
    fs.flush(f.id).await.unwrap();
    assert_eq!(&fs.read(f.id, 1, 3).await.unwrap()[..], b"ell");
    assert_eq!(objects.len(), 0, "small files are inline");
    // Grow past one block: blocks go to the object store.
    let big: Vec<u8> = (0..(BLOCK_SIZE + 12345)).map(|i| (i % 251) as u8).collect();
    fs.write(f.id, 0, &big).await.unwrap();
    fs.fsync(f.id).await.unwrap();
    assert_eq!(objects.len(), 2);
    let back = fs.read(f.id, 0, big.len() as u32 + 10).await.unwrap();
    assert_eq!(back.len(), big.len());
    assert!(back[..] == big[..]);
    // Partial overwrite in the middle of block 0, then truncate into block 1 and re-extend.
    fs.write(f.id, 100, b"XYZ").await.unwrap();
    fs.flush(f.id).await.unwrap();
    assert_eq!(
        &fs.read(f.id, 99, 5).await.unwrap()[..],
        &[big[99], b'X', b'Y', b'Z', big[103]]
    );
    let cut = BLOCK_SIZE as u64 + 10;
    fs.setattr(
        f.id,
        &SetAttr {
            size: Some(cut),
            ..Default::default()
        },
        &ROOT,
    )
    .await
    .unwrap();
    fs.setattr(
        f.id,
        &SetAttr {
            size: Some(cut + 100),
            ..Default::default()
        },
        &ROOT,
    )
    .await
    .unwrap();
    let tail = fs.read(f.id, cut - 2, 10).await.unwrap();
    assert_eq!(
        &tail[..],
        &[
            big[cut as usize - 2],
            big[cut as usize - 1],
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0
        ]
    );
}

#[tokio::test]
async fn sparse_files_read_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let f = fs
        .create(fs.root(), b"s", 0o644, &ROOT, true)
        .await
        .unwrap();
    let far = 3 * CHUNK_SIZE + 7;
    fs.write(f.id, far, b"end").await.unwrap();
    fs.release(f.id).await.unwrap();
    assert_eq!(fs.getattr(f.id).await.unwrap().size, far + 3);
    assert_eq!(&fs.read(f.id, far - 2, 5).await.unwrap()[..], b"\0\0end");
    assert!(fs
        .read(f.id, CHUNK_SIZE, 4096)
        .await
        .unwrap()
        .iter()
        .all(|b| *b == 0));
}

#[tokio::test]
async fn directories_and_rename_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let root = fs.root();
    let d = fs.mkdir(root, b"d", 0o755, &ROOT).await.unwrap();
    let e = fs.mkdir(d.id, b"e", 0o755, &ROOT).await.unwrap();
    assert_eq!(fs.getattr(d.id).await.unwrap().nlink, 3);
    assert_eq!(
        fs.rmdir(root, b"d", &ROOT).await.unwrap_err().kind(),
        ErrorKind::NotEmpty
    );
    // No moving a directory under itself.
    let err = fs
        .rename(root, b"d", e.id, b"x", RenameFlags::default(), &ROOT)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let f = fs.create(root, b"f", 0o644, &ROOT, true).await.unwrap();
    assert_eq!(
        fs.rename(root, b"f", root, b"d", RenameFlags::default(), &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::IsDir
    );
    assert_eq!(
        fs.rename(root, b"d", root, b"f", RenameFlags::default(), &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotDir
    );
    let nr = RenameFlags {
        noreplace: true,
        exchange: false,
    };
    fs.create(root, b"g", 0o644, &ROOT, true).await.unwrap();
    assert_eq!(
        fs.rename(root, b"f", root, b"g", nr, &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Exists
    );
    // Replace g with f.
    fs.rename(root, b"f", root, b"g", RenameFlags::default(), &ROOT)
        .await
        .unwrap();
    assert_eq!(fs.lookup(root, b"g", &ROOT).await.unwrap().id, f.id);
    assert_eq!(
        fs.lookup(root, b"f", &ROOT).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Exchange a file and a directory across parents.
    let ex = RenameFlags {
        noreplace: false,
        exchange: true,
    };
    fs.rename(root, b"g", d.id, b"e", ex, &ROOT).await.unwrap();
    assert_eq!(fs.lookup(root, b"g", &ROOT).await.unwrap().id, e.id);
    assert_eq!(fs.lookup(d.id, b"e", &ROOT).await.unwrap().id, f.id);
    assert_eq!(fs.getattr(d.id).await.unwrap().nlink, 2);
    assert_eq!(fs.lookup(e.id, b"..", &ROOT).await.unwrap().id, root);
    // Move a directory: O(1), children follow.
    fs.create(e.id, b"child", 0o644, &ROOT, true).await.unwrap();
    fs.rename(root, b"g", d.id, b"moved", RenameFlags::default(), &ROOT)
        .await
        .unwrap();
    assert!(fs.lookup(e.id, b"child", &ROOT).await.is_ok());
    assert_eq!(fs.lookup(e.id, b"..", &ROOT).await.unwrap().id, d.id);
}

#[tokio::test]
async fn links_symlinks_special_files_xattrs() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let root = fs.root();
    let f = fs.create(root, b"f", 0o644, &ROOT, true).await.unwrap();
    fs.link(f.id, root, b"h", &ROOT).await.unwrap();
    assert_eq!(fs.getattr(f.id).await.unwrap().nlink, 2);
    fs.unlink(root, b"f", &ROOT).await.unwrap();
    assert_eq!(fs.getattr(f.id).await.unwrap().nlink, 1);
    let s = fs
        .symlink(root, b"s", b"/target/path", &ROOT)
        .await
        .unwrap();
    assert_eq!(fs.readlink(s.id).await.unwrap(), b"/target/path");
    assert_eq!(s.size, 12);
    let p = fs
        .mknod(root, b"p", FileType::Fifo, 0o600, 0, &ROOT)
        .await
        .unwrap();
    assert_eq!(p.kind, FileType::Fifo);
    let user = Caller {
        uid: 1000,
        gid: 1000,
    };
    assert_eq!(
        fs.mknod(root, b"c", FileType::CharDevice, 0o600, 5, &user)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotPermitted
    );
    fs.setxattr(f.id, b"user.a", b"1", XattrMode::Create, &ROOT)
        .await
        .unwrap();
    assert_eq!(
        fs.setxattr(f.id, b"user.a", b"2", XattrMode::Create, &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Exists
    );
    assert_eq!(
        fs.setxattr(f.id, b"user.b", b"2", XattrMode::Replace, &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NoData
    );
    fs.setxattr(f.id, b"user.b", b"2", XattrMode::Any, &ROOT)
        .await
        .unwrap();
    assert_eq!(
        fs.listxattr(f.id).await.unwrap(),
        vec![b"user.a".to_vec(), b"user.b".to_vec()]
    );
    fs.removexattr(f.id, b"user.a", &ROOT).await.unwrap();
    assert_eq!(
        fs.getxattr(f.id, b"user.a", &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NoData
    );
    assert_eq!(fs.getxattr(f.id, b"user.b", &ROOT).await.unwrap(), b"2");
    // POSIX ACLs and SELinux labels are refused as unsupported, never stored.
    for name in [
        &b"system.posix_acl_access"[..],
        b"system.posix_acl_default",
        b"security.selinux",
    ] {
        let unsupported =
            |r: Result<(), FsError>| assert_eq!(r.unwrap_err().kind(), ErrorKind::Unsupported);
        unsupported(fs.getxattr(f.id, name, &ROOT).await.map(|_| ()));
        unsupported(fs.setxattr(f.id, name, b"x", XattrMode::Any, &ROOT).await);
        unsupported(fs.removexattr(f.id, name, &ROOT).await);
    }
    fs.setxattr(f.id, b"security.capability", b"c", XattrMode::Any, &ROOT)
        .await
        .unwrap();
    assert_eq!(fs.listxattr(f.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn permissions_and_sticky() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let root = fs.root();
    let alice = ALICE;
    let bob = Caller {
        uid: 1001,
        gid: 1001,
    };
    let tmpd = fs.mkdir(root, b"tmp", 0o1777, &ROOT).await.unwrap();
    let a = fs.create(tmpd.id, b"a", 0o644, &alice, true).await.unwrap();
    assert_eq!(a.uid, 1000);
    assert_eq!(
        fs.unlink(tmpd.id, b"a", &bob).await.unwrap_err().kind(),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        fs.setattr(
            a.id,
            &SetAttr {
                mode: Some(0o777),
                ..Default::default()
            },
            &bob
        )
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        fs.open(
            a.id,
            OpenFlags {
                write: true,
                ..Default::default()
            },
            &bob
        )
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        fs.setattr(
            a.id,
            &SetAttr {
                uid: Some(1001),
                ..Default::default()
            },
            &alice
        )
        .await
        .unwrap_err()
        .kind(),
        ErrorKind::NotPermitted
    );
    fs.setattr(
        a.id,
        &SetAttr {
            mode: Some(0o4755),
            ..Default::default()
        },
        &alice,
    )
    .await
    .unwrap();
    let after = fs
        .setattr(
            a.id,
            &SetAttr {
                uid: Some(7),
                ..Default::default()
            },
            &ROOT,
        )
        .await
        .unwrap();
    assert_eq!(after.perm & 0o7000, 0, "chown clears setuid");
    fs.unlink(tmpd.id, b"a", &ROOT).await.unwrap();
}

#[tokio::test]
async fn readdir_cookies_survive_concurrent_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let root = fs.root();
    let d = fs.mkdir(root, b"big", 0o755, &ROOT).await.unwrap();
    for i in 0..1500 {
        fs.create(d.id, format!("f{i}").as_bytes(), 0o644, &ROOT, true)
            .await
            .unwrap();
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cookie = 0;
    let mut round = 0;
    loop {
        let (page, eof) = fs.readdir(d.id, cookie, 100, &ROOT).await.unwrap();
        for e in &page {
            assert!(seen.insert(e.name.clone()), "duplicate {:?}", e.name);
        }
        if let Some(l) = page.last() {
            cookie = l.cookie;
        }
        // Churn: add and remove other entries between pages.
        fs.create(d.id, format!("new{round}").as_bytes(), 0o644, &ROOT, true)
            .await
            .unwrap();
        fs.unlink(d.id, format!("new{round}").as_bytes(), &ROOT)
            .await
            .unwrap();
        round += 1;
        if eof {
            break;
        }
    }
    for i in 0..1500 {
        assert!(seen.contains(format!("f{i}").as_bytes()), "lost f{i}");
    }
}

#[tokio::test]
async fn unlinked_open_file_stays_readable_until_release() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let root = fs.root();
    let f = fs.create(root, b"f", 0o644, &ROOT, true).await.unwrap();
    fs.open(
        f.id,
        OpenFlags {
            read: true,
            write: true,
            truncate: false,
        },
        &ROOT,
    )
    .await
    .unwrap();
    fs.write(f.id, 0, b"data").await.unwrap();
    fs.unlink(root, b"f", &ROOT).await.unwrap();
    assert_eq!(&fs.read(f.id, 0, 10).await.unwrap()[..], b"data");
    fs.release(f.id).await.unwrap();
    assert_eq!(fs.getattr(f.id).await.unwrap_err().kind(), ErrorKind::Stale);
}

/// Frontends run core futures on a multi-threaded runtime: they must be `Send`.
#[allow(dead_code, clippy::let_underscore_future)]
fn futures_are_send(fs: Fs, id: FileId) {
    fn send<T: Send>(_: T) {}
    let c = Caller::ROOT;
    send(fs.lookup(id, b"x", &c));
    send(fs.getattr(id));
    send(fs.setattr(id, &SetAttr::default(), &c));
    send(fs.create(id, b"x", 0, &c, false));
    send(fs.mkdir(id, b"x", 0, &c));
    send(fs.unlink(id, b"x", &c));
    send(fs.rename(id, b"x", id, b"y", RenameFlags::default(), &c));
    send(fs.link(id, id, b"x", &c));
    send(fs.readdir(id, 0, 1, &c));
    send(fs.read(id, 0, 1));
    send(fs.write(id, 0, b""));
    send(fs.flush(id));
    send(fs.fsync(id));
    send(fs.release(id));
    send(fs.open(id, OpenFlags::default(), &c));
    send(fs.setxattr(id, b"user.x", b"", XattrMode::Any, &c));
    send(fs.listxattr(id));
    send(fs.statfs());
    send(fs.shutdown());
}

/// The lineage model without the workspace API: a layer built by hand on a parent read
/// point reads everything through it, and writes diverge in both directions.
#[tokio::test]
async fn layer_on_parent_read_point_reads_through_and_diverges() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, store, _) = new_fs(tmp.path());
    let root = fs.root();
    let d = fs.mkdir(root, b"proj", 0o755, &ROOT).await.unwrap();
    let f = fs.create(d.id, b"a.txt", 0o644, &ROOT, true).await.unwrap();
    fs.write(f.id, 0, b"base").await.unwrap();
    fs.flush(f.id).await.unwrap();
    fs.setxattr(f.id, b"user.k", b"v", XattrMode::Any, &ROOT)
        .await
        .unwrap();
    fs.sync_metadata().await.unwrap();
    let keys_before = store.len();
    let fork = fs.layer_fork(d.id).unwrap();
    fs.sync_metadata().await.unwrap();
    // O(1): a layer record, a workspace record, counters and a change entry; nothing copied.
    assert!(
        store.len() - keys_before <= 3,
        "fork wrote {} keys",
        store.len() - keys_before
    );
    assert_ne!(fork.workspace(), 0);
    let fa = fs.lookup(fork, b"a.txt", &ROOT).await.unwrap();
    assert_ne!(fa.id, f.id, "same inode, different file id per workspace");
    assert_eq!(fa.id.ino(), f.id.ino());
    assert_eq!(&fs.read(fa.id, 0, 10).await.unwrap()[..], b"base");
    assert_eq!(fs.getxattr(fa.id, b"user.k", &ROOT).await.unwrap(), b"v");
    // Diverge: fork writes are invisible to the base and vice versa.
    fs.write(fa.id, 0, b"FORK").await.unwrap();
    fs.flush(fa.id).await.unwrap();
    fs.create(fork, b"new", 0o644, &ROOT, true).await.unwrap();
    fs.write(f.id, 0, b"BASE!").await.unwrap();
    fs.flush(f.id).await.unwrap();
    fs.unlink(d.id, b"a.txt", &ROOT).await.ok();
    assert_eq!(&fs.read(fa.id, 0, 10).await.unwrap()[..], b"FORK");
    assert_eq!(
        fs.lookup(d.id, b"new", &ROOT).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        fs.lookup(d.id, b"a.txt", &ROOT).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Removal in the fork whites out the inherited entry.
    fs.removexattr(fa.id, b"user.k", &ROOT).await.unwrap();
    fs.unlink(fork, b"a.txt", &ROOT).await.unwrap();
    let (list, _) = fs.readdir(fork, 0, 100, &ROOT).await.unwrap();
    let names: Vec<_> = list.iter().map(|e| e.name.clone()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&b"new".to_vec()));
    // Fork of a fork, 32 deep, still reads the base data.
    let mut top = fork;
    fs.create(fork, b"deep", 0o644, &ROOT, true).await.unwrap();
    for _ in 0..31 {
        top = fs.layer_fork(top).unwrap();
    }
    assert!(fs.lookup(top, b"deep", &ROOT).await.is_ok());
    assert!(fs.lookup(top, b"new", &ROOT).await.is_ok());
}

/// Concurrent writers of disjoint ranges and concurrent readers of one file: every reader
/// sees, for each region, either the old bytes or the new bytes of a whole write request,
/// and the end state holds every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_and_readers_of_one_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let f = fs
        .create(fs.root(), b"shared", 0o644, &ROOT, true)
        .await
        .unwrap();
    const REGION: usize = 256 * 1024;
    const WRITERS: usize = 6;
    fs.write(f.id, 0, &vec![0xEE; REGION * WRITERS])
        .await
        .unwrap();
    fs.flush(f.id).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let fs = fs.clone();
        tasks.push(tokio::spawn(async move {
            for round in 1..=8u8 {
                let data = vec![(w as u8) << 4 | round; REGION];
                fs.write(f.id, (w * REGION) as u64, &data).await.unwrap();
                if round % 3 == 0 {
                    fs.flush(f.id).await.unwrap();
                }
            }
        }));
    }
    for _ in 0..2 {
        let fs = fs.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                let all = fs.read(f.id, 0, (REGION * WRITERS) as u32).await.unwrap();
                assert_eq!(all.len(), REGION * WRITERS);
                for region in all.chunks(REGION) {
                    // A write request is applied under the session lock: never torn.
                    assert!(region.iter().all(|b| *b == region[0]), "torn region");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    fs.fsync(f.id).await.unwrap();
    let all = fs.read(f.id, 0, (REGION * WRITERS) as u32).await.unwrap();
    for (w, region) in all.chunks(REGION).enumerate() {
        assert!(
            region.iter().all(|b| *b == ((w as u8) << 4 | 8)),
            "region {w}"
        );
    }
}

/// An unreachable object store fails fsync with an I/O error and loses nothing: the data
/// stays staged and readable, nothing half-published is visible, and a later fsync succeeds.
#[tokio::test]
async fn object_store_outage_fails_fsync_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, objects) = new_fs(tmp.path());
    let f = fs
        .create(fs.root(), b"f", 0o644, &ROOT, true)
        .await
        .unwrap();
    let data: Vec<u8> = (0..(BLOCK_SIZE + 4096)).map(|i| (i % 241) as u8).collect();
    objects.set_failing(true);
    fs.write(f.id, 0, &data).await.unwrap();
    let err = fs.fsync(f.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");
    // Still readable through the session; the committed size is unchanged underneath.
    assert!(fs.read(f.id, 0, data.len() as u32).await.unwrap()[..] == data[..]);
    objects.set_failing(false);
    fs.fsync(f.id).await.unwrap();
    assert!(fs.read(f.id, 0, data.len() as u32).await.unwrap()[..] == data[..]);
    assert_eq!(fs.getattr(f.id).await.unwrap().size, data.len() as u64);
}

#[tokio::test]
async fn writes_truncation_and_chown_take_setid_bits_and_capabilities() {
    let tmp = tempfile::tempdir().unwrap();
    let (fs, _, _) = new_fs(tmp.path());
    let root = fs.root();
    let alice = ALICE;
    let d = fs.mkdir(root, b"d", 0o777, &ROOT).await.unwrap();
    let f = fs.create(d.id, b"f", 0o644, &alice, true).await.unwrap();
    let mode = |m: u32| SetAttr {
        mode: Some(m),
        ..Default::default()
    };
    let cap = |fs: Fs| async move {
        fs.getxattr(f.id, b"security.capability", &ROOT)
            .await
            .map_err(|e| e.kind())
    };
    let set_cap = |fs: Fs| async move {
        fs.setxattr(f.id, b"security.capability", b"c", XattrMode::Any, &ROOT)
            .await
            .unwrap()
    };
    let perm = |fs: Fs| async move { fs.getattr(f.id).await.unwrap().perm };

    // A write that may keep setid bits keeps them; one that may not clears setuid, and
    // setgid only when group-executable.
    fs.setattr(f.id, &mode(0o6755), &alice).await.unwrap();
    fs.before_write(f.id, true).await.unwrap();
    assert_eq!(perm(fs.clone()).await, 0o6755);
    let before = fs.getattr(f.id).await.unwrap().ctime;
    fs.before_write(f.id, false).await.unwrap();
    assert_eq!(perm(fs.clone()).await, 0o755);
    assert!(fs.getattr(f.id).await.unwrap().ctime >= before);
    fs.setattr(f.id, &mode(0o6745), &alice).await.unwrap();
    fs.before_write(f.id, false).await.unwrap();
    assert_eq!(perm(fs.clone()).await, 0o2745);

    // Capabilities go on every write, whoever writes.
    set_cap(fs.clone()).await;
    assert_eq!(cap(fs.clone()).await.unwrap(), b"c");
    fs.before_write(f.id, true).await.unwrap();
    assert_eq!(cap(fs.clone()).await.unwrap_err(), ErrorKind::NoData);

    // Truncation: by the owner clears setid bits; by root keeps them; both drop capabilities.
    let size = |n: u64| SetAttr {
        size: Some(n),
        ..Default::default()
    };
    fs.setattr(f.id, &mode(0o6755), &alice).await.unwrap();
    set_cap(fs.clone()).await;
    fs.setattr(f.id, &size(3), &ROOT).await.unwrap();
    assert_eq!(perm(fs.clone()).await, 0o6755);
    assert_eq!(cap(fs.clone()).await.unwrap_err(), ErrorKind::NoData);
    fs.setattr(f.id, &size(0), &alice).await.unwrap();
    assert_eq!(perm(fs.clone()).await, 0o755);

    // chown clears them for every caller and drops capabilities; directories keep theirs.
    fs.setattr(f.id, &mode(0o6755), &alice).await.unwrap();
    set_cap(fs.clone()).await;
    let chown = SetAttr {
        uid: Some(1000),
        ..Default::default()
    };
    fs.setattr(f.id, &chown, &ROOT).await.unwrap();
    assert_eq!(perm(fs.clone()).await, 0o755);
    assert_eq!(cap(fs.clone()).await.unwrap_err(), ErrorKind::NoData);
    fs.setattr(d.id, &mode(0o2777), &ROOT).await.unwrap();
    fs.setattr(d.id, &chown, &ROOT).await.unwrap();
    assert_eq!(fs.getattr(d.id).await.unwrap().perm, 0o2777);

    // Truncating a file one may not write needs a handle opened for writing.
    fs.setattr(f.id, &mode(0o444), &alice).await.unwrap();
    assert_eq!(
        fs.setattr(f.id, &size(1), &alice).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    let through_handle = SetAttr {
        opened_for_write: true,
        ..size(1)
    };
    assert_eq!(
        fs.setattr(f.id, &through_handle, &alice)
            .await
            .unwrap()
            .size,
        1
    );
}

/// A new volume names its blocks in the flat layout; a volume formatted before the layout
/// was recorded keeps the nested one, so its existing objects stay readable.
#[tokio::test]
async fn object_layout_is_recorded_at_format_and_kept() {
    use crate::store::{Batch, MetaStore};
    let tmp = tempfile::tempdir().unwrap();
    let (fs, store, objects) = new_fs(tmp.path());
    let big: Vec<u8> = (0..(BLOCK_SIZE + 10)).map(|i| (i % 253) as u8).collect();
    let f = fs
        .create(fs.root(), b"a", 0o644, &ROOT, true)
        .await
        .unwrap();
    fs.write(f.id, 0, &big).await.unwrap();
    fs.fsync(f.id).await.unwrap();
    let ino = f.id.ino();
    let group = (ino >> 10) & 0xff;
    let keys = objects.keys();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for (block, key) in keys.iter().enumerate() {
        assert!(
            key.starts_with(&format!("blocks/vol/{group:02x}/{ino}-"))
                && key.ends_with(&format!("-{block}")),
            "{key}"
        );
    }
    fs.shutdown().await.unwrap();
    drop(fs);

    // The same metadata without the recorded layout: a volume of an earlier version.
    let mut b = Batch::new();
    b.delete(crate::meta::keys::system("objects"));
    assert!(store.commit(&b).unwrap());
    let legacy = Arc::new(MemObjectStore::new());
    let fs = Fs::new(
        store.clone(),
        legacy.clone(),
        FsOptions::new("vol", tmp.path().join("staging")),
    )
    .unwrap();
    let g = fs
        .create(fs.root(), b"b", 0o644, &ROOT, true)
        .await
        .unwrap();
    fs.write(g.id, 0, &big).await.unwrap();
    fs.fsync(g.id).await.unwrap();
    let keys = legacy.keys();
    let ino = g.id.ino();
    assert_eq!(keys.len(), 2, "{keys:?}");
    for (block, key) in keys.iter().enumerate() {
        assert!(
            key.starts_with(&format!("blocks/vol/{ino}/")) && key.ends_with(&format!("/0/{block}")),
            "{key}"
        );
    }
    assert!(fs.read(g.id, 0, big.len() as u32).await.unwrap()[..] == big[..]);

    // An unknown layout (a newer version's) is refused, not guessed.
    let mut b = Batch::new();
    b.put(
        crate::meta::keys::system("objects"),
        crate::meta::records::encode_counter(9),
    );
    fs.shutdown().await.unwrap();
    drop(fs);
    assert!(store.commit(&b).unwrap());
    let err = Fs::new(
        store,
        Arc::new(MemObjectStore::new()),
        FsOptions::new("vol", tmp.path().join("staging")),
    )
    .err()
    .expect("an unknown layout must be refused");
    assert!(err.to_string().contains("object layout 9"), "{err}");
}
