//! Protocol tests with a real NFSv3 client (the `nfs3_client` crate) against the server
//! started in-process on an ephemeral 127.0.0.1 port over a real volume in a temporary
//! directory: every procedure, permissions per caller, refused credentials, handle survival
//! across a restart, STALE and BADHANDLE, EXCLUSIVE create retransmits, the write verifier,
//! and READDIR / READDIRPLUS pagination of a 5,000-entry directory under concurrent change.

mod common;

use std::collections::{BTreeSet, HashMap};

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_procedure_maps_onto_the_core() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    c.null().await.unwrap();

    // FSINFO, FSSTAT, PATHCONF.
    let info = st(c
        .fsinfo(&FSINFO3args {
            fsroot: root.clone(),
        })
        .await
        .unwrap())
    .unwrap();
    assert_eq!((info.rtmax, info.wtmax), (1 << 20, 1 << 20));
    assert_eq!(info.properties & FSF3_LINK, 0, "LINK is not offered");
    let fsstat = st(c
        .fsstat(&FSSTAT3args {
            fsroot: root.clone(),
        })
        .await
        .unwrap())
    .unwrap();
    let core = s.volume.fs().statfs().await.unwrap();
    assert_eq!(fsstat.tbytes, core.blocks * u64::from(core.block_size));
    assert!(fsstat.fbytes > 0 && fsstat.fbytes <= fsstat.tbytes);
    assert_eq!(fsstat.tfiles, core.files);
    let pc = st(c
        .pathconf(&PATHCONF3args {
            object: root.clone(),
        })
        .await
        .unwrap())
    .unwrap();
    assert_eq!(pc.name_max, 255);
    assert!(pc.no_trunc && pc.case_preserving && !pc.case_insensitive);

    // MKDIR with the client's mode; CREATE UNCHECKED with the client's mode.
    let d = mkdir(&mut c, &root, "d", 0o750).await.unwrap();
    let da = getattr(&mut c, &d).await.unwrap();
    assert_eq!((da.type_, da.mode), (ftype3::NF3DIR, 0o750));
    let f = create(&mut c, &d, "f", createhow3::UNCHECKED(mode(0o640)))
        .await
        .unwrap();
    assert_eq!(getattr(&mut c, &f).await.unwrap().mode, 0o640);
    assert_eq!(lookup(&mut c, &d, "f").await.unwrap(), f);
    assert_eq!(
        lookup(&mut c, &d, "nope").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    // GUARDED on an existing name; UNCHECKED returns the existing file.
    let guarded = create(&mut c, &d, "f", createhow3::GUARDED(mode(0o600))).await;
    assert_eq!(guarded, Err(nfsstat3::NFS3ERR_EXIST));
    let again = create(&mut c, &d, "f", createhow3::UNCHECKED(mode(0o600)))
        .await
        .unwrap();
    assert_eq!(again, f);
    assert_eq!(
        getattr(&mut c, &f).await.unwrap().mode,
        0o640,
        "mode of an existing file kept"
    );

    // WRITE UNSTABLE + COMMIT, WRITE FILE_SYNC, READ.
    let w = write(&mut c, &f, 0, b"hello ", stable_how::UNSTABLE)
        .await
        .unwrap();
    assert_eq!((w.count, w.committed), (6, stable_how::UNSTABLE));
    assert_eq!(w.verf.0, s.server.write_verifier());
    let w2 = write(&mut c, &f, 6, b"world", stable_how::FILE_SYNC)
        .await
        .unwrap();
    assert_eq!(w2.committed, stable_how::FILE_SYNC);
    assert_eq!(commit(&mut c, &f).await.unwrap(), w.verf);
    assert_eq!(
        read(&mut c, &f, 0, 100).await.unwrap(),
        (b"hello world".to_vec(), true)
    );
    assert_eq!(
        read(&mut c, &f, 0, 5).await.unwrap(),
        (b"hello".to_vec(), false)
    );
    assert_eq!(read(&mut c, &f, 50, 5).await.unwrap(), (Vec::new(), true));
    assert_eq!(read(&mut c, &d, 0, 5).await, Err(nfsstat3::NFS3ERR_ISDIR));

    // SETATTR: size and mode, with a matching guard; a stale guard is NOT_SYNC.
    let before = getattr(&mut c, &f).await.unwrap();
    let set = SETATTR3args {
        object: f.clone(),
        new_attributes: sattr3 {
            mode: set_mode3::Some(0o600),
            size: set_size3::Some(5),
            ..Default::default()
        },
        guard: sattrguard3::Some(before.ctime),
    };
    st(c.setattr(&set).await.unwrap()).unwrap();
    let after = getattr(&mut c, &f).await.unwrap();
    assert_eq!((after.mode, after.size), (0o600, 5));
    let stale_guard = SETATTR3args {
        object: f.clone(),
        new_attributes: mode(0o644),
        guard: sattrguard3::Some(nfstime3 {
            seconds: 1,
            nseconds: 0,
        }),
    };
    let r = st(c.setattr(&stale_guard).await.unwrap());
    assert_eq!(r.err(), Some(nfsstat3::NFS3ERR_NOT_SYNC));
    assert_eq!(
        getattr(&mut c, &f).await.unwrap().mode,
        0o600,
        "guarded change not applied"
    );

    // SYMLINK + READLINK; READLINK of a file is INVAL.
    let sl = SYMLINK3args {
        where_: dirop(&d, "ln"),
        symlink: symlinkdata3 {
            symlink_attributes: sattr3::default(),
            symlink_data: nfspath3(Opaque::borrowed(b"f")),
        },
    };
    let ln = fh_of(st(c.symlink(&sl).await.unwrap()).unwrap().obj);
    let target = st(c
        .readlink(&READLINK3args {
            symlink: ln.clone(),
        })
        .await
        .unwrap())
    .unwrap();
    assert_eq!(target.data.0.as_ref(), b"f");
    let r = c
        .readlink(&READLINK3args { symlink: f.clone() })
        .await
        .unwrap();
    assert_eq!(st(r).err(), Some(nfsstat3::NFS3ERR_INVAL));

    // RENAME within a directory and across directories.
    let e = mkdir(&mut c, &root, "e", 0o755).await.unwrap();
    let mv = RENAME3args {
        from: dirop(&d, "f"),
        to: dirop(&d, "g"),
    };
    st(c.rename(&mv).await.unwrap()).unwrap();
    let mv = RENAME3args {
        from: dirop(&d, "g"),
        to: dirop(&e, "h"),
    };
    st(c.rename(&mv).await.unwrap()).unwrap();
    assert_eq!(
        lookup(&mut c, &e, "h").await.unwrap(),
        f,
        "a rename keeps the handle"
    );
    assert_eq!(lookup(&mut c, &d, "f").await, Err(nfsstat3::NFS3ERR_NOENT));

    // LINK and MKNOD are not supported.
    let link = LINK3args {
        file: f.clone(),
        link: dirop(&e, "hard"),
    };
    assert_eq!(
        st(c.link(&link).await.unwrap()).err(),
        Some(nfsstat3::NFS3ERR_NOTSUPP)
    );
    let mknod = MKNOD3args {
        where_: dirop(&e, "fifo"),
        what: mknoddata3::NF3FIFO(sattr3::default()),
    };
    assert_eq!(
        st(c.mknod(&mknod).await.unwrap()).err(),
        Some(nfsstat3::NFS3ERR_NOTSUPP)
    );

    // REMOVE and RMDIR, and their type errors.
    let r = st(c
        .rmdir(&RMDIR3args {
            object: dirop(&e, "h"),
        })
        .await
        .unwrap());
    assert_eq!(r.err(), Some(nfsstat3::NFS3ERR_NOTDIR));
    let r = st(c
        .remove(&REMOVE3args {
            object: dirop(&root, "d"),
        })
        .await
        .unwrap());
    assert_eq!(r.err(), Some(nfsstat3::NFS3ERR_ISDIR));
    let r = st(c
        .rmdir(&RMDIR3args {
            object: dirop(&root, "d"),
        })
        .await
        .unwrap());
    assert_eq!(r.err(), Some(nfsstat3::NFS3ERR_NOTEMPTY));
    st(c.remove(&REMOVE3args {
        object: dirop(&d, "ln"),
    })
    .await
    .unwrap())
    .unwrap();
    st(c.rmdir(&RMDIR3args {
        object: dirop(&root, "d"),
    })
    .await
    .unwrap())
    .unwrap();
    st(c.remove(&REMOVE3args {
        object: dirop(&e, "h"),
    })
    .await
    .unwrap())
    .unwrap();
    assert_eq!(
        lookup(&mut c, &root, "d").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );

    // READDIR and READDIRPLUS of the root: ".", "..", "e".
    for plus in [false, true] {
        let (names, _) = list(&mut c, &root, plus).await;
        assert_eq!(names, [".", "..", "e"], "plus={plus}");
    }

    // ACCESS as root on a directory: everything.
    let all = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    assert_eq!(access(&mut c, &e, all).await, all);

    // The same state through the core API.
    let fs = s.volume.fs();
    let ea = fs.lookup(fs.root(), b"e", &Caller::ROOT).await.unwrap();
    assert_eq!(ea.perm, 0o755);
    drop(c);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callers_identity_decides_every_permission() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let mut root_c = connect(s.addr()).await;
    let root = root_c.root_nfs_fh3();
    let private = mkdir(&mut root_c, &root, "private", 0o700).await.unwrap();
    let shared = mkdir(&mut root_c, &root, "shared", 0o777).await.unwrap();
    let public = create(
        &mut root_c,
        &root,
        "public",
        createhow3::UNCHECKED(mode(0o644)),
    )
    .await
    .unwrap();
    write(&mut root_c, &public, 0, b"data", stable_how::FILE_SYNC)
        .await
        .unwrap();

    let mut user = connect_as(s.addr(), USER, USER).await.unwrap();
    let want = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    assert_eq!(access(&mut user, &private, want).await, 0);
    assert_eq!(access(&mut user, &shared, want).await, want);
    let file_want = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXECUTE;
    assert_eq!(access(&mut user, &public, file_want).await, ACCESS3_READ);
    assert_eq!(
        access(&mut root_c, &public, file_want).await,
        ACCESS3_READ | ACCESS3_MODIFY
    );

    assert_eq!(
        lookup(&mut user, &private, "x").await,
        Err(nfsstat3::NFS3ERR_ACCES)
    );
    let r = create(&mut user, &root, "mine", createhow3::UNCHECKED(mode(0o644))).await;
    assert_eq!(r, Err(nfsstat3::NFS3ERR_ACCES));
    let r = write(&mut user, &public, 0, b"evil", stable_how::FILE_SYNC).await;
    assert_eq!(r.err(), Some(nfsstat3::NFS3ERR_ACCES));
    assert_eq!(read(&mut user, &public, 0, 10).await.unwrap().0, b"data");
    let chmod = SETATTR3args {
        object: public.clone(),
        new_attributes: mode(0o666),
        guard: sattrguard3::None,
    };
    assert_eq!(
        st(user.setattr(&chmod).await.unwrap()).err(),
        Some(nfsstat3::NFS3ERR_PERM)
    );

    // A file the user creates is the user's; its owner may write it even when read-only
    // (the NFS owner override), others may not read a 0600 file.
    let mine = create(
        &mut user,
        &shared,
        "mine",
        createhow3::UNCHECKED(mode(0o400)),
    )
    .await
    .unwrap();
    let ma = getattr(&mut user, &mine).await.unwrap();
    assert_eq!((ma.uid, ma.gid, ma.mode), (USER, USER, 0o400));
    write(&mut user, &mine, 0, b"owner writes", stable_how::UNSTABLE)
        .await
        .unwrap();
    commit(&mut user, &mine).await.unwrap();
    let secret = create(
        &mut root_c,
        &root,
        "secret",
        createhow3::UNCHECKED(mode(0o600)),
    )
    .await
    .unwrap();
    assert_eq!(
        read(&mut user, &secret, 0, 10).await.err(),
        Some(nfsstat3::NFS3ERR_ACCES)
    );
    drop((user, root_c));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlisted_uids_and_other_flavors_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    match connect_as(s.addr(), 4242, 4242).await {
        Err(ConnectError::Mount(MountError::Rpc(RpcError::Auth(stat)))) => {
            assert_eq!(stat, auth_stat::AUTH_REJECTEDCRED)
        }
        Err(other) => panic!("uid 4242 was refused the wrong way: {other:?}"),
        Ok(_) => panic!("uid 4242 was served"),
    }
    // AUTH_NULL: the NULL ping is answered, anything else is too weak.
    let mut anon = Nfs3Client::new(Tcp.connect(s.addr()).await.unwrap());
    anon.null().await.unwrap();
    let root_fh = {
        let c = connect(s.addr()).await;
        c.root_nfs_fh3()
    };
    match anon.getattr(&GETATTR3args { object: root_fh }).await {
        Err(RpcError::Auth(stat)) => assert_eq!(stat, auth_stat::AUTH_TOOWEAK),
        other => panic!("AUTH_NULL getattr was not refused: {other:?}"),
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_and_data_survive_a_restart_and_the_verifier_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    let dir = mkdir(&mut c, &root, "dir", 0o755).await.unwrap();
    let f = create(&mut c, &dir, "f", createhow3::UNCHECKED(mode(0o644)))
        .await
        .unwrap();
    let v1 = write(&mut c, &f, 0, b"committed", stable_how::UNSTABLE)
        .await
        .unwrap()
        .verf;
    assert_eq!(commit(&mut c, &f).await.unwrap(), v1);
    // Written but never committed: the clean shutdown still publishes it.
    write(&mut c, &f, 9, b"+unstable", stable_how::UNSTABLE)
        .await
        .unwrap();
    drop(c);
    s.stop().await;

    let s = Served::start(tmp.path()).await;
    let mut c = connect(s.addr()).await;
    assert_eq!(c.root_nfs_fh3(), root, "the root handle is the same");
    assert_eq!(getattr(&mut c, &f).await.unwrap().size, 18);
    assert_eq!(
        read(&mut c, &f, 0, 100).await.unwrap().0,
        b"committed+unstable"
    );
    assert_eq!(lookup(&mut c, &dir, "f").await.unwrap(), f);
    let v2 = write(&mut c, &f, 0, b"C", stable_how::UNSTABLE)
        .await
        .unwrap()
        .verf;
    assert_ne!(v1, v2, "a restarted server has a new write verifier");
    assert_eq!(commit(&mut c, &f).await.unwrap(), v2);
    drop(c);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_bad_handles_are_told_apart() {
    let tmp = tempfile::tempdir().unwrap();
    let other_tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let other = Served::start(other_tmp.path()).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    let f = create(&mut c, &root, "f", createhow3::UNCHECKED(mode(0o644)))
        .await
        .unwrap();
    st(c.remove(&REMOVE3args {
        object: dirop(&root, "f"),
    })
    .await
    .unwrap())
    .unwrap();
    assert_eq!(
        getattr(&mut c, &f).await.err(),
        Some(nfsstat3::NFS3ERR_STALE)
    );
    assert_eq!(
        read(&mut c, &f, 0, 1).await.err(),
        Some(nfsstat3::NFS3ERR_STALE)
    );
    let r = write(&mut c, &f, 0, b"x", stable_how::UNSTABLE).await;
    assert_eq!(r.err(), Some(nfsstat3::NFS3ERR_STALE));

    // Same id, other generation: the id names another file now, or never did.
    let g = create(&mut c, &root, "g", createhow3::UNCHECKED(mode(0o644)))
        .await
        .unwrap();
    let mut regenerated = g.data.to_vec();
    regenerated[27] ^= 1;
    let regenerated = nfs_fh3 {
        data: Opaque::owned(regenerated),
    };
    assert_eq!(
        getattr(&mut c, &regenerated).await.err(),
        Some(nfsstat3::NFS3ERR_STALE)
    );
    let mut unknown = g.data.to_vec();
    unknown[12..20].copy_from_slice(&((1u64 << 40) + 7).to_be_bytes());
    let unknown = nfs_fh3 {
        data: Opaque::owned(unknown),
    };
    assert_eq!(
        getattr(&mut c, &unknown).await.err(),
        Some(nfsstat3::NFS3ERR_STALE)
    );

    // Not a handle of ours at all: BADHANDLE, for every procedure shape.
    let foreign = connect(other.addr()).await.root_nfs_fh3();
    let bad = [
        Vec::new(),
        vec![1, 2, 3],
        vec![0xAB; 64],
        foreign.data.to_vec(),
        {
            let mut v = root.data.to_vec();
            v.push(0);
            v
        },
    ];
    for b in bad {
        let fh = nfs_fh3 {
            data: Opaque::owned(b.clone()),
        };
        assert_eq!(
            getattr(&mut c, &fh).await.err(),
            Some(nfsstat3::NFS3ERR_BADHANDLE),
            "{b:?}"
        );
        assert_eq!(
            lookup(&mut c, &fh, "x").await,
            Err(nfsstat3::NFS3ERR_BADHANDLE)
        );
        let args = READDIR3args {
            dir: fh.clone(),
            cookie: 0,
            cookieverf: cookieverf3::default(),
            count: 4096,
        };
        let r = c.readdir(&args).await.unwrap();
        assert_eq!(st(r).err(), Some(nfsstat3::NFS3ERR_BADHANDLE));
        assert_eq!(
            commit(&mut c, &fh).await.err(),
            Some(nfsstat3::NFS3ERR_BADHANDLE)
        );
    }
    // A handle longer than NFS3_FHSIZE does not even decode: GARBAGE_ARGS.
    let too_long = nfs_fh3 {
        data: Opaque::owned(vec![0; 65]),
    };
    match c.getattr(&GETATTR3args { object: too_long }).await {
        Err(RpcError::GarbageArgs) => {}
        other => panic!("65-byte handle: {other:?}"),
    }
    drop(c);
    other.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_calls_get_rpc_errors_and_the_server_stays_up() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let mut rpc = raw(s.addr(), cred(0, 0)).await;
    // GETATTR whose handle length says 4 GiB.
    let r = rpc.call::<[u8; 4], Void>(100_003, 3, 1, &[0xff; 4]).await;
    assert!(matches!(r, Err(RpcError::GarbageArgs)), "{r:?}");
    // CREATE with an unknown mode; SETATTR with a bad time discriminant.
    let r = rpc.call::<[u8; 4], Void>(100_003, 3, 8, &[0; 4]).await;
    assert!(matches!(r, Err(RpcError::GarbageArgs)), "{r:?}");
    let r = rpc.call::<Void, Void>(100_003, 3, 22, &Void).await;
    assert!(matches!(r, Err(RpcError::ProcUnavail)), "{r:?}");
    let r = rpc.call::<Void, Void>(100_003, 2, 0, &Void).await;
    assert!(
        matches!(r, Err(RpcError::ProgMismatch { low: 3, high: 3 })),
        "{r:?}"
    );
    let r = rpc.call::<Void, Void>(100_000, 2, 0, &Void).await;
    assert!(matches!(r, Err(RpcError::ProgUnavail)), "{r:?}");
    // MOUNT of a missing path and of a file.
    let io = Tcp.connect(s.addr()).await.unwrap();
    let mut m = MountClient::new_with_auth(io, cred(0, 0), opaque_auth::default());
    match m.mnt(dirpath(Opaque::borrowed(b"/no/such"))).await {
        Err(MountError::Denied(mountstat3::MNT3ERR_NOENT)) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(m.export().await.unwrap().0.len(), 1);
    // Still serving.
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    getattr(&mut c, &root).await.unwrap();
    drop(c);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_create_retransmits_succeed_and_other_verifiers_do_not() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    let v = createverf3(*b"\x12\x34\x56\x78\x9a\xbc\xde\xf0");
    let first = create(&mut c, &root, "x", createhow3::EXCLUSIVE(v))
        .await
        .unwrap();
    let again = create(&mut c, &root, "x", createhow3::EXCLUSIVE(v))
        .await
        .unwrap();
    assert_eq!(first, again, "a retransmission gets the same file");
    let other = createverf3(*b"otherver");
    let r = create(&mut c, &root, "x", createhow3::EXCLUSIVE(other)).await;
    assert_eq!(r, Err(nfsstat3::NFS3ERR_EXIST));
    // The client's follow-up SETATTR makes it an ordinary file; a late retransmit is EXIST.
    let set = SETATTR3args {
        object: first.clone(),
        new_attributes: sattr3 {
            mode: set_mode3::Some(0o644),
            atime: set_atime::SET_TO_SERVER_TIME,
            mtime: set_mtime::SET_TO_SERVER_TIME,
            ..Default::default()
        },
        guard: sattrguard3::None,
    };
    st(c.setattr(&set).await.unwrap()).unwrap();
    assert_eq!(getattr(&mut c, &first).await.unwrap().mode, 0o644);
    let r = create(&mut c, &root, "x", createhow3::EXCLUSIVE(v)).await;
    assert_eq!(r, Err(nfsstat3::NFS3ERR_EXIST));
    drop(c);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5000_entry_directory_pages_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let fs = s.volume.fs().clone();
    let big = fs
        .mkdir(fs.root(), b"big", 0o755, &Caller::ROOT)
        .await
        .unwrap();
    for i in 0..5000 {
        let n = format!("file-{i:05}");
        fs.create(big.id, n.as_bytes(), 0o644, &Caller::ROOT, true)
            .await
            .unwrap();
    }
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    let dir = lookup(&mut c, &root, "big").await.unwrap();
    let expected: BTreeSet<String> = (0..5000).map(|i| format!("file-{i:05}")).collect();
    for plus in [false, true] {
        let (names, pages) = list(&mut c, &dir, plus).await;
        assert!(pages > 10, "plus={plus}: {pages} pages");
        assert_eq!(names.len(), 5002, "plus={plus}");
        let unique: BTreeSet<String> = names.iter().cloned().collect();
        assert_eq!(unique.len(), 5002, "plus={plus}: duplicates");
        assert!(unique.contains(".") && unique.contains(".."));
        let files: BTreeSet<String> = unique.into_iter().filter(|n| !n.starts_with('.')).collect();
        assert_eq!(files, expected, "plus={plus}");
    }

    // Changes during a listing: entries present throughout appear exactly once.
    for plus in [false, true] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let (mut cookie, mut pages) = (0, 0);
        let tag = if plus { "p" } else { "r" };
        loop {
            let (page, eof) = readdir_page(&mut c, &dir, cookie, plus).await;
            pages += 1;
            if let Some((_, last)) = page.last() {
                cookie = *last;
            }
            for (n, _) in page {
                *seen.entry(n).or_default() += 1;
            }
            if pages % 5 == 1 {
                for k in 0..20 {
                    let n = format!("new-{tag}-{pages}-{k}");
                    fs.create(
                        dir_id(&fs, b"big").await,
                        n.as_bytes(),
                        0o644,
                        &Caller::ROOT,
                        true,
                    )
                    .await
                    .unwrap();
                }
            }
            if eof {
                break;
            }
        }
        assert!(
            seen.values().all(|n| *n == 1),
            "plus={plus}: an entry was returned twice"
        );
        for n in &expected {
            assert!(seen.contains_key(n), "plus={plus}: {n} was lost");
        }
    }
    drop(c);
    s.stop().await;
}

async fn dir_id(fs: &nokv_core::Fs, name: &[u8]) -> nokv_core::FileId {
    fs.lookup(fs.root(), name, &Caller::ROOT).await.unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_calls_in_flight_and_then_refuses_connections() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start(tmp.path()).await;
    let addr = s.addr();
    let mut c = connect(addr).await;
    let root = c.root_nfs_fh3();
    let f = create(&mut c, &root, "f", createhow3::UNCHECKED(mode(0o644)))
        .await
        .unwrap();
    let chunk = vec![7u8; 1 << 20];
    // A stream of 1 MiB writes from another task while the server stops.
    let writer = tokio::spawn(async move {
        let mut written = 0u64;
        loop {
            let args = WRITE3args {
                file: f.clone(),
                offset: written,
                count: chunk.len() as u32,
                stable: stable_how::UNSTABLE,
                data: Opaque::borrowed(&chunk),
            };
            match c.write(&args).await {
                Ok(Nfs3Result::Ok(ok)) => written += u64::from(ok.count),
                Ok(Nfs3Result::Err((s, _))) => panic!("write failed: {s}"),
                Err(_) => return written,
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Served { volume, server } = s;
    server.shutdown().await;
    let acknowledged = tokio::time::timeout(Duration::from_secs(10), writer)
        .await
        .expect("the client sees the connection close")
        .unwrap();
    assert!(
        acknowledged >= 1 << 20,
        "some writes were answered before the stop"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer listening"
    );
    // Every acknowledged write is in the file (published by the close).
    let fs = volume.fs().clone();
    let a = fs.lookup(fs.root(), b"f", &Caller::ROOT).await.unwrap();
    assert!(
        a.size >= acknowledged,
        "size {} < acknowledged {acknowledged}",
        a.size
    );
    drop(fs);
    volume.close().await.unwrap();
    let volume = Volume::open(&VolumeConfig::new(tmp.path())).unwrap();
    let fs = volume.fs();
    let a = fs.lookup(fs.root(), b"f", &Caller::ROOT).await.unwrap();
    assert!(
        a.size >= acknowledged,
        "after reopen: size {} < {acknowledged}",
        a.size
    );
    volume.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncommitted_writes_are_published_once_idle() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Served::start_with_idle_flush(tmp.path(), Duration::from_millis(300)).await;
    let mut c = connect(s.addr()).await;
    let root = c.root_nfs_fh3();
    let f = create(&mut c, &root, "f", createhow3::UNCHECKED(mode(0o644)))
        .await
        .unwrap();
    let fs = s.volume.fs().clone();
    fs.sync_metadata().await.unwrap();
    // An UNSTABLE write alone commits no metadata: it only fills the write session.
    write(&mut c, &f, 0, b"never committed", stable_how::UNSTABLE)
        .await
        .unwrap();
    let before = fs.metadata_commits();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        fs.metadata_commits(),
        before,
        "published before it was idle"
    );
    // Idle for longer than 300 ms (plus a flusher tick): published in one transaction.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fs.metadata_commits() == before {
        assert!(std::time::Instant::now() < deadline, "never published");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    fs.sync_metadata().await.unwrap();
    drop((c, fs));
    // No clean close: what the idle flush published must be there after a reopen.
    let Served { volume, server } = s;
    server.shutdown().await;
    drop(volume);
    let volume = Volume::open(&VolumeConfig::new(tmp.path())).unwrap();
    let fs = volume.fs();
    let a = fs.lookup(fs.root(), b"f", &Caller::ROOT).await.unwrap();
    assert_eq!(
        fs.read(a.id, 0, 100).await.unwrap().as_ref(),
        b"never committed"
    );
    volume.close().await.unwrap();
}
