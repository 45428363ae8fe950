//! The `/.nokv/` control files over NFS, with a real NFSv3 client (`nfs3_client`): the seed
//! workflow (snapshot, 100 forks, per-fork diffs, rollback, discard, promote, gc) using only
//! control files; bad input on every control file; eight clients issuing commands at once
//! in their own sessions; and the namespace's protections.

mod common;

use common::*;

/// Writes `line` to control file `op` of `session` (`""`: the default session), as an
/// agent would, and reads back `result` (on success) or `last-error` (on failure).
async fn ctl(
    c: &mut Conn,
    root: &nfs_fh3,
    session: &str,
    op: &str,
    line: &[u8],
) -> Result<String, (nfsstat3, String)> {
    let dir = match session {
        "" => "/.nokv".to_string(),
        s => format!("/.nokv/sessions/{s}"),
    };
    let f = walk(c, root, &format!("{dir}/{op}")).await.unwrap();
    let r = write(c, &f, 0, line, stable_how::UNSTABLE).await;
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    match r {
        Ok(w) => {
            assert_eq!(w.count as usize, line.len());
            commit(c, &f).await.unwrap();
            Ok(text(cat(c, root, &format!("{dir}/result")).await.unwrap()))
        }
        Err(s) => Err((
            s,
            text(cat(c, root, &format!("{dir}/last-error")).await.unwrap()),
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workflow_with_only_control_files() {
    let tmp = tempfile::tempdir().unwrap();
    let mut vcfg = VolumeConfig::new(tmp.path());
    // The volume is quiet between commands, so GC needs no grace for in-flight uploads.
    vcfg.gc_grace = Duration::ZERO;
    vcfg.gc_interval = None;
    let s = Served::start_with(vcfg, Duration::from_secs(5)).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    const FORKS: usize = 100;

    mkdir(&mut c, &root, "base", 0o755).await.unwrap();
    mkdir(&mut c, &root, "forks", 0o755).await.unwrap();
    let base = base_files();
    for (n, data) in &base {
        put(&mut c, &root, &format!("/base/{n}"), data).await;
    }
    let out = ctl(&mut c, &root, "", "snapshot", b"/base v1\n")
        .await
        .unwrap();
    assert_eq!(out, "base@v1\n");
    for i in 0..FORKS {
        let line = format!("/base /forks/f{i}\n");
        let out = ctl(&mut c, &root, "", "clone", line.as_bytes())
            .await
            .unwrap();
        assert!(
            out.starts_with(&format!("cloned /base /forks/f{i} workspace=")),
            "{out}"
        );
    }
    // Each fork modifies one file, adds one and deletes another; fork 1's big file is its
    // own block object: the one thing its discard frees.
    let expected = edit_forks(&mut c, &root, FORKS).await;
    for (i, want) in expected.iter().enumerate() {
        let line = format!("/base /forks/f{i}\n");
        let got = ctl(&mut c, &root, "", "diff", line.as_bytes())
            .await
            .unwrap();
        assert_eq!(&got, want, "diff of fork {i}");
    }

    // Roll fork 0 back to base@v1.
    ctl(&mut c, &root, "", "rollback", b"/forks/f0 base@v1\n")
        .await
        .unwrap();
    assert_eq!(tree(&mut c, &root, "/forks/f0").await, base);
    // Promote fork 2 over the base.
    let fork2 = tree(&mut c, &root, "/forks/f2").await;
    ctl(&mut c, &root, "", "promote", b"/forks/f2\n")
        .await
        .unwrap();
    assert_eq!(tree(&mut c, &root, "/base").await, fork2);
    // Collect what rollback and promote left, then discard fork 1 and collect again.
    ctl(&mut c, &root, "", "gc", b"\n").await.unwrap();
    let dry = ctl(&mut c, &root, "", "gc", b"--dry-run\n").await.unwrap();
    assert!(dry.contains(" 0 objects "), "nothing left to free: {dry}");
    ctl(&mut c, &root, "", "discard", b"/forks/f1\n")
        .await
        .unwrap();
    assert_eq!(
        walk(&mut c, &root, "/forks/f1").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    let freed = ctl(&mut c, &root, "", "gc", b"\n").await.unwrap();
    assert!(
        freed.contains(&format!(" 1 objects ({} bytes) freed", 100 * 1024)),
        "exactly fork 1's own block goes: {freed}"
    );
    // Every remaining workspace and the snapshot read back as expected.
    assert_eq!(tree(&mut c, &root, "/.nokv/snapshots/base@v1").await, base);
    assert_eq!(tree(&mut c, &root, "/base").await, fork2);
    assert_eq!(tree(&mut c, &root, "/forks/f0").await, base);
    // Fork 2 is gone: promoting it made it the base.
    assert_eq!(
        walk(&mut c, &root, "/forks/f2").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    for i in 3..FORKS {
        let mut want = base.clone();
        let (m, d) = (i % 10, (i + 3) % 10);
        want.insert(format!("f{m}"), format!("fork {i}\n").into_bytes());
        want.insert(format!("new-{i}"), b"added\n".to_vec());
        want.remove(&format!("f{d}"));
        assert_eq!(
            tree(&mut c, &root, &format!("/forks/f{i}")).await,
            want,
            "fork {i}"
        );
    }
    let ws = String::from_utf8(cat(&mut c, &root, "/.nokv/workspaces").await.unwrap()).unwrap();
    assert_eq!(
        ws.lines().count(),
        FORKS - 1,
        "the root and 98 forks (one discarded, one promoted): {ws}"
    );
    assert!(s.volume.fs().fsck().await.unwrap().is_clean());
    drop(c);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_every_control_file_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    mkdir(&mut c, &root, "base", 0o755).await.unwrap();
    put(&mut c, &root, "/base/a", b"one").await;
    ctl(&mut c, &root, "", "clone", b"/base /fork")
        .await
        .unwrap();
    ctl(&mut c, &root, "", "snapshot", b"/base v1")
        .await
        .unwrap();
    let before_root = names(&mut c, &root).await;
    let long = [b"/base /".as_slice(), &[b'x'; 5000]].concat();
    use nfsstat3::*;
    let cases: Vec<(&str, Vec<u8>, nfsstat3)> = vec![
        ("clone", b"garbage".to_vec(), NFS3ERR_INVAL),
        ("clone", b"\x00\xff\x13binary\x01".to_vec(), NFS3ERR_INVAL),
        ("clone", long, NFS3ERR_INVAL),
        ("clone", b"base fork2".to_vec(), NFS3ERR_INVAL),
        ("clone", b"/base /../../tmp/x".to_vec(), NFS3ERR_INVAL),
        ("clone", b"/base /.nokv/snapshots/x".to_vec(), NFS3ERR_INVAL),
        ("clone", b"/nope /x".to_vec(), NFS3ERR_NOENT),
        ("clone", b"/base /fork".to_vec(), NFS3ERR_EXIST),
        ("clone", b"/base /base/in".to_vec(), NFS3ERR_INVAL),
        ("snapshot", b"/nope".to_vec(), NFS3ERR_NOENT),
        ("snapshot", b"/base v1".to_vec(), NFS3ERR_EXIST),
        ("snapshot", b"/base a b c".to_vec(), NFS3ERR_INVAL),
        ("rollback", b"/fork nope@x".to_vec(), NFS3ERR_NOENT),
        ("rollback", b"/fork".to_vec(), NFS3ERR_INVAL),
        ("diff", b"/base".to_vec(), NFS3ERR_INVAL),
        ("diff", b"/base /nope".to_vec(), NFS3ERR_NOENT),
        ("discard", b"/base/a".to_vec(), NFS3ERR_INVAL),
        ("discard", b"relative".to_vec(), NFS3ERR_INVAL),
        ("promote", b"/base".to_vec(), NFS3ERR_INVAL),
        ("promote", b"/fork /extra".to_vec(), NFS3ERR_INVAL),
        ("gc", b"all of it".to_vec(), NFS3ERR_INVAL),
    ];
    for (op, line, want) in cases {
        let shown = String::from_utf8_lossy(&line)
            .chars()
            .take(40)
            .collect::<String>();
        let (status, msg) = ctl(&mut c, &root, "", op, &line).await.unwrap_err();
        assert_eq!(status, want, "{op} {shown:?}: {msg}");
        assert!(msg.starts_with(&format!("{op}: ")), "{msg:?}");
        assert_eq!(msg.matches('\n').count(), 1, "one line: {msg:?}");
    }
    // Nothing changed.
    assert_eq!(names(&mut c, &root).await, before_root);
    assert_eq!(cat(&mut c, &root, "/fork/a").await.unwrap(), b"one");
    assert_eq!(s.volume.fs().snapshots().len(), 1);
    assert_eq!(s.volume.fs().workspaces().unwrap().len(), 2);
    assert!(s.volume.fs().fsck().await.unwrap().is_clean());

    // The namespace itself: not listed, not removable, nothing created in it, read-only
    // result files, read-only snapshot trees.
    assert!(!names(&mut c, &root).await.contains(&".nokv".to_string()));
    let ctl_dir = lookup(&mut c, &root, ".nokv").await.unwrap();
    let r = st(c
        .rmdir(&RMDIR3args {
            object: dirop(&root, ".nokv"),
        })
        .await
        .unwrap());
    assert_eq!(r.err(), Some(NFS3ERR_PERM));
    assert_eq!(
        remove(&mut c, &root, "/.nokv/clone").await,
        Err(NFS3ERR_PERM)
    );
    let r = create(&mut c, &ctl_dir, "x", createhow3::UNCHECKED(mode(0o644))).await;
    assert_eq!(r.err(), Some(NFS3ERR_PERM));
    assert_eq!(
        mkdir(&mut c, &root, ".nokv", 0o755).await.err(),
        Some(NFS3ERR_EXIST)
    );
    let rename = RENAME3args {
        from: dirop(&root, ".nokv"),
        to: dirop(&root, "moved"),
    };
    assert_eq!(
        st(c.rename(&rename).await.unwrap()).err(),
        Some(NFS3ERR_PERM)
    );
    let result = walk(&mut c, &root, "/.nokv/result").await.unwrap();
    let w = write(&mut c, &result, 0, b"x", stable_how::FILE_SYNC).await;
    assert_eq!(w.err(), Some(NFS3ERR_ACCES));
    let snap = walk(&mut c, &root, "/.nokv/snapshots/base@v1")
        .await
        .unwrap();
    let r = create(&mut c, &snap, "x", createhow3::UNCHECKED(mode(0o644))).await;
    assert_eq!(r.err(), Some(NFS3ERR_ROFS));
    let a = walk(&mut c, &root, "/.nokv/snapshots/base@v1/a")
        .await
        .unwrap();
    let w = write(&mut c, &a, 0, b"x", stable_how::FILE_SYNC).await;
    assert_eq!(w.err(), Some(NFS3ERR_ROFS));
    let got = access(&mut c, &a, ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND).await;
    assert_eq!(got, ACCESS3_READ, "a snapshot grants reading only");
    let got = access(&mut c, &snap, ACCESS3_LOOKUP | ACCESS3_DELETE).await;
    assert_eq!(got, ACCESS3_LOOKUP);
    let listed = names(&mut c, &ctl_dir).await;
    for n in [
        "clone",
        "diff",
        "last-error",
        "result",
        "sessions",
        "snapshots",
        "workspaces",
    ] {
        assert!(listed.contains(&n.to_string()), "{n}");
    }
    // Handles of control files survive a restart (they are fixed ids).
    drop(c);
    s.stop().await;
    let s = Served::start(tmp.path()).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    assert!(getattr(&mut c, &result).await.is_ok());
    assert_eq!(
        cat(&mut c, &root, "/.nokv/snapshots/base@v1/a")
            .await
            .unwrap(),
        b"one"
    );
    drop(c);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_clients_in_their_own_sessions_never_see_each_others_results() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let addr = s.addr();
    {
        let mut c = connect(addr).await;
        let root = c.root_nfs_fh3();
        mkdir(&mut c, &root, "base", 0o755).await.unwrap();
        put(&mut c, &root, "/base/shared", b"shared").await;
    }
    let mut tasks = Vec::new();
    for t in 0..8 {
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            let root = c.root_nfs_fh3();
            let me = format!("agent-{t}");
            for round in 0..5 {
                let fork = format!("/w{t}-{round}");
                let out = ctl(
                    &mut c,
                    &root,
                    &me,
                    "clone",
                    format!("/base {fork}").as_bytes(),
                )
                .await
                .unwrap();
                assert!(
                    out.starts_with(&format!("cloned /base {fork} ")),
                    "{me}: {out}"
                );
                put(&mut c, &root, &format!("{fork}/mine-{t}-{round}"), b"x").await;
                let snap = ctl(
                    &mut c,
                    &root,
                    &me,
                    "snapshot",
                    format!("{fork} s").as_bytes(),
                )
                .await
                .unwrap();
                assert_eq!(snap, format!("w{t}-{round}@s\n"), "{me}");
                let diff = ctl(
                    &mut c,
                    &root,
                    &me,
                    "diff",
                    format!("/base {fork}").as_bytes(),
                )
                .await
                .unwrap();
                assert_eq!(diff, format!("A /mine-{t}-{round}\n"), "{me}");
                // A failing command in this session, while others succeed in theirs.
                let (st, msg) = ctl(&mut c, &root, &me, "clone", b"/base /base/x")
                    .await
                    .unwrap_err();
                assert_eq!(st, nfsstat3::NFS3ERR_INVAL, "{me}");
                assert!(msg.starts_with("clone: "), "{me}: {msg}");
                let diff_again = cat(&mut c, &root, &format!("/.nokv/sessions/{me}/diff"))
                    .await
                    .unwrap();
                assert_eq!(diff_again, format!("A /mine-{t}-{round}\n").into_bytes());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.volume.fs().workspaces().unwrap().len(), 1 + 8 * 5);
    assert_eq!(s.volume.fs().snapshots().len(), 8 * 5);
    assert!(s.volume.fs().fsck().await.unwrap().is_clean());
    s.stop().await;
}
