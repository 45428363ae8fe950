//! Unit tests of the control namespace through the public `Fs` calls, as a frontend makes
//! them.

use std::sync::Arc;

use super::*;
use crate::error::ErrorKind;
use crate::fs::OpenFlags;
use crate::object::MemObjectStore;
use crate::store::MemStore;
use crate::types::{Caller, FileType, RenameFlags, SetAttr};
use crate::{Fs, FsOptions};

const ROOT: Caller = Caller::ROOT;
const USER: Caller = Caller {
    uid: 1000,
    gid: 1000,
};

fn new_fs(dir: &std::path::Path) -> Fs {
    Fs::new(
        Arc::new(MemStore::new()),
        Arc::new(MemObjectStore::new()),
        FsOptions::new("vol", dir.join("staging")),
    )
    .unwrap()
}

async fn walk(fs: &Fs, path: &str) -> crate::Result<FileId> {
    let mut cur = FileId::ROOT;
    for c in path.split('/').filter(|c| !c.is_empty()) {
        cur = fs.lookup(cur, c.as_bytes(), &ROOT).await?.id;
    }
    Ok(cur)
}

async fn put(fs: &Fs, path: &str, data: &[u8]) {
    let (parent, name) = path.rsplit_once('/').unwrap();
    let dir = walk(fs, parent).await.unwrap();
    let a = fs
        .create(dir, name.as_bytes(), 0o644, &ROOT, false)
        .await
        .unwrap();
    fs.write(a.id, 0, data).await.unwrap();
    fs.release(a.id).await.unwrap();
}

async fn cat(fs: &Fs, path: &str) -> crate::Result<String> {
    let id = walk(fs, path).await?;
    let b = fs.read(id, 0, 1 << 20).await?;
    Ok(String::from_utf8(b.to_vec()).unwrap())
}

/// What a shell's `echo LINE > /.nokv/...` does: open with O_TRUNC, write, release.
async fn echo(fs: &Fs, path: &str, line: &str) -> crate::Result<()> {
    let id = walk(fs, path).await?;
    let flags = OpenFlags {
        read: false,
        write: true,
        truncate: true,
    };
    fs.open(id, flags, &ROOT).await?;
    fs.setattr(
        id,
        &SetAttr {
            size: Some(0),
            ..Default::default()
        },
        &ROOT,
    )
    .await?;
    let r = fs.write(id, 0, line.as_bytes()).await;
    fs.release(id).await?;
    r.map(|_| ())
}

async fn names(fs: &Fs, dir: FileId) -> Vec<String> {
    let (entries, eof) = fs.readdir(dir, 0, 1000, &ROOT).await.unwrap();
    assert!(eof);
    entries
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .collect()
}

#[test]
fn node_ids_round_trip() {
    let mut nodes = vec![Node::Dir, Node::Snapshots, Node::Sessions, Node::Workspaces];
    for slot in [0, 1, 77, 1 << 30] {
        if slot > 0 {
            nodes.push(Node::SessionDir(slot));
        }
        nodes.push(Node::Result(slot));
        nodes.push(Node::LastError(slot));
        for op in Op::ALL {
            nodes.push(Node::OpFile(slot, op));
        }
    }
    for n in nodes {
        assert!(is_control(n.id()));
        assert_eq!(Node::of(n.id()), Some(n));
    }
    assert_eq!(Node::of(FileId::new(CONTROL_WS, 16)), None);
    assert_eq!(Node::of(FileId::new(CONTROL_WS, 5)), None);
    assert_eq!(Node::of(FileId::ROOT), None);
}

#[tokio::test]
async fn the_directory_is_reachable_but_not_listed_and_cannot_be_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = new_fs(tmp.path());
    let a = fs.lookup(FileId::ROOT, b".nokv", &USER).await.unwrap();
    assert_eq!(a.id, CONTROL_DIR);
    assert_eq!(a.kind, FileType::Dir);
    assert!(!names(&fs, FileId::ROOT)
        .await
        .contains(&".nokv".to_string()));
    let listed = names(&fs, CONTROL_DIR).await;
    for n in [
        "clone",
        "snapshot",
        "diff",
        "gc",
        "result",
        "last-error",
        "snapshots",
        "sessions",
        "workspaces",
    ] {
        assert!(listed.contains(&n.to_string()), "{n} in {listed:?}");
    }
    // `..` of /.nokv is the root.
    assert_eq!(
        fs.lookup(CONTROL_DIR, b"..", &ROOT).await.unwrap().id,
        FileId::ROOT
    );

    let kind = |r: crate::Result<crate::types::Attr>| r.unwrap_err().kind();
    assert_eq!(
        kind(fs.mkdir(FileId::ROOT, b".nokv", 0o755, &ROOT).await),
        ErrorKind::Exists
    );
    assert_eq!(
        kind(fs.create(FileId::ROOT, b".nokv", 0o644, &ROOT, true).await),
        ErrorKind::Exists
    );
    assert_eq!(
        kind(fs.symlink(FileId::ROOT, b".nokv", b"x", &ROOT).await),
        ErrorKind::Exists
    );
    assert_eq!(
        kind(fs.mkdir(CONTROL_DIR, b"x", 0o755, &ROOT).await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        kind(fs.create(CONTROL_DIR, b"x", 0o644, &ROOT, false).await),
        ErrorKind::NotPermitted
    );
    let clone = walk(&fs, "/.nokv/clone").await.unwrap();
    assert_eq!(
        kind(fs.link(clone, FileId::ROOT, b"c", &ROOT).await),
        ErrorKind::NotPermitted
    );
    let err = |r: crate::Result<()>| r.unwrap_err().kind();
    assert_eq!(
        err(fs.rmdir(FileId::ROOT, b".nokv", &ROOT).await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        err(fs.unlink(FileId::ROOT, b".nokv", &ROOT).await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        err(fs.unlink(CONTROL_DIR, b"clone", &ROOT).await),
        ErrorKind::NotPermitted
    );
    let plain = RenameFlags::default();
    fs.mkdir(FileId::ROOT, b"d", 0o755, &ROOT).await.unwrap();
    for (sd, sn, dd, dn) in [
        (FileId::ROOT, &b".nokv"[..], FileId::ROOT, &b"x"[..]),
        (FileId::ROOT, b"d", FileId::ROOT, b".nokv"),
        (CONTROL_DIR, b"clone", FileId::ROOT, b"y"),
        (FileId::ROOT, b"d", CONTROL_DIR, b"d"),
    ] {
        assert_eq!(
            err(fs.rename(sd, sn, dd, dn, plain, &ROOT).await),
            ErrorKind::NotPermitted
        );
    }
    let chmod = SetAttr {
        mode: Some(0o777),
        ..Default::default()
    };
    assert_eq!(
        kind(fs.setattr(clone, &chmod, &ROOT).await),
        ErrorKind::NotPermitted
    );
    assert_eq!(
        kind(fs.setattr(CONTROL_DIR, &chmod, &ROOT).await),
        ErrorKind::NotPermitted
    );
    let result = walk(&fs, "/.nokv/result").await.unwrap();
    let w = OpenFlags {
        read: false,
        write: true,
        truncate: false,
    };
    assert_eq!(
        kind(fs.open(result, w, &ROOT).await),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        fs.write(result, 0, b"x").await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    assert_eq!(
        fs.access(result, 2, &USER).await.unwrap_err().kind(),
        ErrorKind::PermissionDenied
    );
    fs.access(clone, 6, &USER).await.unwrap();
    assert!(fs.listxattr(clone).await.unwrap().is_empty());
    assert_eq!(
        fs.getxattr(clone, b"user.x", &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NoData
    );
    assert_eq!(
        fs.readlink(clone).await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        fs.lookup(CONTROL_DIR, b"nope", &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // Nothing of that reached the volume.
    assert_eq!(names(&fs, FileId::ROOT).await, vec![".", "..", "d"]);
    assert!(fs.fsck().await.unwrap().is_clean());
}

#[tokio::test]
async fn the_workflow_through_control_files() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = new_fs(tmp.path());
    fs.mkdir(FileId::ROOT, b"base", 0o755, &ROOT).await.unwrap();
    put(&fs, "/base/a", b"one").await;
    put(&fs, "/base/b", b"two").await;
    fs.mkdir(FileId::ROOT, b"forks", 0o755, &ROOT)
        .await
        .unwrap();

    echo(&fs, "/.nokv/snapshot", "/base v1\n").await.unwrap();
    assert_eq!(cat(&fs, "/.nokv/snapshot").await.unwrap(), "base@v1\n");
    assert_eq!(cat(&fs, "/.nokv/result").await.unwrap(), "base@v1\n");
    assert_eq!(cat(&fs, "/.nokv/last-error").await.unwrap(), "");
    assert_eq!(
        names(&fs, walk(&fs, "/.nokv/snapshots").await.unwrap()).await,
        vec![".", "..", "base@v1"]
    );
    assert_eq!(cat(&fs, "/.nokv/snapshots/base@v1/a").await.unwrap(), "one");
    // `..` of a snapshot root leads back to the snapshots directory.
    let snaproot = walk(&fs, "/.nokv/snapshots/base@v1").await.unwrap();
    assert_eq!(
        fs.lookup(snaproot, b"..", &ROOT).await.unwrap().id,
        Node::Snapshots.id()
    );
    let e = fs
        .create(snaproot, b"new", 0o644, &ROOT, false)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ReadOnly);

    echo(&fs, "/.nokv/clone", "/base /forks/a1").await.unwrap();
    let out = cat(&fs, "/.nokv/clone").await.unwrap();
    assert!(
        out.starts_with("cloned /base /forks/a1 workspace="),
        "{out}"
    );
    put(&fs, "/forks/a1/c", b"three").await;
    let a1 = walk(&fs, "/forks/a1").await.unwrap();
    fs.unlink(a1, b"b", &ROOT).await.unwrap();
    put(&fs, "/forks/a1/a", b"uno").await;
    echo(&fs, "/.nokv/diff", "/base /forks/a1").await.unwrap();
    assert_eq!(cat(&fs, "/.nokv/diff").await.unwrap(), "M /a\nD /b\nA /c\n");

    let ws = cat(&fs, "/.nokv/workspaces").await.unwrap();
    assert!(ws.contains("/forks/a1 id="), "{ws}");
    assert!(ws.contains("base=/base"), "{ws}");
    assert!(
        ws.lines()
            .any(|l| l.starts_with("/ id=0 ") && l.ends_with("snapshots=base@v1")),
        "{ws}"
    );
    assert_eq!(
        fs.getattr(walk(&fs, "/.nokv/workspaces").await.unwrap())
            .await
            .unwrap()
            .size,
        ws.len() as u64
    );

    echo(&fs, "/.nokv/rollback", "/forks/a1 base@v1")
        .await
        .unwrap();
    echo(&fs, "/.nokv/diff", "/.nokv/snapshots/base@v1 /forks/a1")
        .await
        .unwrap();
    assert_eq!(cat(&fs, "/.nokv/diff").await.unwrap(), "");
    echo(&fs, "/.nokv/clone", "/base /forks/a2").await.unwrap();
    put(&fs, "/forks/a2/z", b"zz").await;
    echo(&fs, "/.nokv/promote", "/forks/a2").await.unwrap();
    assert_eq!(cat(&fs, "/base/z").await.unwrap(), "zz");
    echo(&fs, "/.nokv/discard", "/forks/a1").await.unwrap();
    assert_eq!(
        walk(&fs, "/forks/a1").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    echo(&fs, "/.nokv/gc", "--dry-run\n").await.unwrap();
    assert!(cat(&fs, "/.nokv/gc")
        .await
        .unwrap()
        .starts_with("gc (dry run):"));
    echo(&fs, "/.nokv/gc", "\n").await.unwrap();
    assert!(cat(&fs, "/.nokv/result").await.unwrap().starts_with("gc: "));
    assert!(fs.fsck().await.unwrap().is_clean());
}

#[tokio::test]
async fn failures_fail_the_write_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = new_fs(tmp.path());
    fs.mkdir(FileId::ROOT, b"base", 0o755, &ROOT).await.unwrap();
    put(&fs, "/base/a", b"one").await;
    echo(&fs, "/.nokv/clone", "/base /copy").await.unwrap();
    let before = names(&fs, FileId::ROOT).await;
    let cases: &[(&str, &[u8], ErrorKind)] = &[
        ("clone", b"/missing /x\n", ErrorKind::NotFound),
        ("clone", b"/base /copy\n", ErrorKind::Exists),
        ("clone", b"/base /nodir/x\n", ErrorKind::NotFound),
        ("clone", b"/base /base/inside\n", ErrorKind::InvalidArgument),
        ("clone", b"garbage\n", ErrorKind::InvalidArgument),
        ("clone", b"\x00\x01\x02binary", ErrorKind::InvalidArgument),
        ("clone", b"/base ../../etc\n", ErrorKind::InvalidArgument),
        ("clone", b"/base /.nokv/x\n", ErrorKind::InvalidArgument),
        ("clone", b"/a\n/b\n", ErrorKind::InvalidArgument),
        ("snapshot", b"/missing\n", ErrorKind::NotFound),
        ("snapshot", b"/base bad/label\n", ErrorKind::InvalidArgument),
        ("rollback", b"/copy nosuch@snap\n", ErrorKind::NotFound),
        ("diff", b"/base\n", ErrorKind::InvalidArgument),
        ("diff", b"/base /base/a\n", ErrorKind::NotDir),
        ("discard", b"/\n", ErrorKind::InvalidArgument),
        ("discard", b"/missing\n", ErrorKind::NotFound),
        ("promote", b"/base\n", ErrorKind::InvalidArgument),
        ("gc", b"everything\n", ErrorKind::InvalidArgument),
    ];
    let mut long = b"/base /".to_vec();
    long.extend(std::iter::repeat_n(b'x', LINE_MAX));
    for (op, line, want) in cases.iter().map(|(o, l, k)| (*o, l.to_vec(), *k)).chain([(
        "clone",
        long,
        ErrorKind::InvalidArgument,
    )]) {
        let id = walk(&fs, &format!("/.nokv/{op}")).await.unwrap();
        let e = fs.write(id, 0, &line).await.unwrap_err();
        assert_eq!(
            e.kind(),
            want,
            "{op} {:?}: {e}",
            String::from_utf8_lossy(&line)
        );
        let msg = cat(&fs, "/.nokv/last-error").await.unwrap();
        assert!(
            msg.starts_with(&format!("{op}: ")) && msg.ends_with('\n'),
            "{msg:?}"
        );
        assert_eq!(msg.lines().count(), 1, "{msg:?}");
    }
    assert_eq!(names(&fs, FileId::ROOT).await, before);
    assert_eq!(cat(&fs, "/base/a").await.unwrap(), "one");
    assert!(fs.snapshots().is_empty());
    assert_eq!(fs.workspaces().unwrap().len(), 2);
    assert!(fs.fsck().await.unwrap().is_clean());
    // A success clears last-error.
    echo(&fs, "/.nokv/snapshot", "/base").await.unwrap();
    assert_eq!(cat(&fs, "/.nokv/last-error").await.unwrap(), "");
}

#[tokio::test]
async fn sessions_and_scopes_keep_results_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = new_fs(tmp.path());
    for d in [&b"x"[..], b"y"] {
        fs.mkdir(FileId::ROOT, d, 0o755, &ROOT).await.unwrap();
    }
    put(&fs, "/x/only-x", b"1").await;
    put(&fs, "/y/only-y", b"2").await;
    // Two sessions (the NFS way).
    echo(&fs, "/.nokv/sessions/agent-1/diff", "/x /y")
        .await
        .unwrap();
    echo(&fs, "/.nokv/sessions/agent-2/diff", "/y /x")
        .await
        .unwrap();
    assert_eq!(
        cat(&fs, "/.nokv/sessions/agent-1/result").await.unwrap(),
        "D /only-x\nA /only-y\n"
    );
    assert_eq!(
        cat(&fs, "/.nokv/sessions/agent-2/diff").await.unwrap(),
        "A /only-x\nD /only-y\n"
    );
    assert_eq!(
        cat(&fs, "/.nokv/result").await.unwrap(),
        "",
        "the default session saw nothing"
    );
    let e = echo(&fs, "/.nokv/sessions/agent-2/clone", "/x /x/in")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(!cat(&fs, "/.nokv/sessions/agent-2/last-error")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        cat(&fs, "/.nokv/sessions/agent-1/last-error")
            .await
            .unwrap(),
        ""
    );
    let sessions = walk(&fs, "/.nokv/sessions").await.unwrap();
    assert_eq!(
        names(&fs, sessions).await,
        vec![".", "..", "agent-1", "agent-2"]
    );
    assert_eq!(
        fs.lookup(sessions, b".bad", &ROOT)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let s1 = walk(&fs, "/.nokv/sessions/agent-1").await.unwrap();
    assert_eq!(fs.lookup(s1, b"..", &ROOT).await.unwrap().id, sessions);
    assert!(names(&fs, s1).await.contains(&"promote".to_string()));

    // Two open files on one command file (the FUSE way).
    let diff = walk(&fs, "/.nokv/diff").await.unwrap();
    let (a, b) = (
        fs.control_scope(diff).unwrap(),
        fs.control_scope(diff).unwrap(),
    );
    fs.write_scoped(diff, a, 0, b"/x /y\n").await.unwrap();
    fs.write_scoped(diff, b, 0, b"/y /x\n").await.unwrap();
    assert_eq!(
        fs.read_scoped(diff, a, 0, 100).await.unwrap(),
        "D /only-x\nA /only-y\n"
    );
    assert_eq!(
        fs.read_scoped(diff, b, 0, 100).await.unwrap(),
        "A /only-x\nD /only-y\n"
    );
    fs.release_scope(a);
    fs.release_scope(b);
    assert_eq!(fs.inner.control.scope_count(), 0);
    assert_eq!(fs.control_scope(FileId::ROOT), None);
    assert_eq!(fs.control_scope(CONTROL_DIR), None);
}

#[tokio::test]
async fn paths_are_volume_paths_only() {
    let tmp = tempfile::tempdir().unwrap();
    let fs = new_fs(tmp.path());
    fs.mkdir(FileId::ROOT, b"base", 0o755, &ROOT).await.unwrap();
    // A path that would name something outside the volume is just a (missing) volume path.
    let e = echo(&fs, "/.nokv/clone", "/base /tmp/../../escape")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    let e = echo(&fs, "/.nokv/clone", "/etc /copy").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // Quoting: a path with a space.
    fs.mkdir(FileId::ROOT, b"my dir", 0o755, &ROOT)
        .await
        .unwrap();
    echo(&fs, "/.nokv/clone", "\"/my dir\" '/your dir'")
        .await
        .unwrap();
    assert!(names(&fs, FileId::ROOT)
        .await
        .contains(&"your dir".to_string()));
    assert_eq!(
        cat(&fs, "/.nokv/clone")
            .await
            .unwrap()
            .split(" workspace=")
            .next()
            .unwrap(),
        "cloned \"/my dir\" \"/your dir\""
    );
    // The core API rejects /.nokv paths too.
    assert_eq!(
        fs.clone_tree("/base", "/.nokv/x").await.unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}
