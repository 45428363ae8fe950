//! Everything persists across a clean restart of a durable volume, and file ids are stable.

use nokv_core::{
    Caller, FileType, OpenFlags, RenameFlags, SetAttr, Volume, VolumeConfig, XattrMode, BLOCK_SIZE,
};

const ROOT: Caller = Caller::ROOT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_keeps_everything_and_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = VolumeConfig::new(tmp.path().join("vol"));
    let big: Vec<u8> = (0..(2 * BLOCK_SIZE + 777))
        .map(|i| (i % 253) as u8)
        .collect();
    let (d, small, large, link, vol_id) = {
        let vol = Volume::open(&cfg).unwrap();
        let fs = vol.fs().clone();
        let d = fs.mkdir(fs.root(), b"dir", 0o750, &ROOT).await.unwrap();
        let small = fs.create(d.id, b"small", 0o600, &ROOT, true).await.unwrap();
        fs.write(small.id, 0, b"tiny content").await.unwrap();
        let large = fs.create(d.id, b"large", 0o644, &ROOT, true).await.unwrap();
        fs.open(
            large.id,
            OpenFlags {
                read: true,
                write: true,
                truncate: false,
            },
            &ROOT,
        )
        .await
        .unwrap();
        fs.write(large.id, 0, &big).await.unwrap();
        fs.release(large.id).await.unwrap();
        fs.setxattr(large.id, b"user.tag", b"v1", XattrMode::Create, &ROOT)
            .await
            .unwrap();
        let link = fs
            .symlink(fs.root(), b"ln", b"dir/large", &ROOT)
            .await
            .unwrap();
        fs.link(small.id, fs.root(), b"hard", &ROOT).await.unwrap();
        fs.rename(
            d.id,
            b"small",
            d.id,
            b"renamed",
            RenameFlags::default(),
            &ROOT,
        )
        .await
        .unwrap();
        fs.setattr(
            d.id,
            &SetAttr {
                uid: Some(42),
                ..Default::default()
            },
            &ROOT,
        )
        .await
        .unwrap();
        let id = vol.id().to_string();
        // `small` has unflushed data: a clean close publishes it.
        vol.close().await.unwrap();
        (d, small, large, link, id)
    };
    let vol = Volume::open(&cfg).unwrap();
    assert_eq!(vol.id(), vol_id);
    let fs = vol.fs().clone();
    let d2 = fs.lookup(fs.root(), b"dir", &ROOT).await.unwrap();
    assert_eq!(d2.id, d.id);
    assert_eq!((d2.perm, d2.uid, d2.kind), (0o750, 42, FileType::Dir));
    let s2 = fs.lookup(d.id, b"renamed", &ROOT).await.unwrap();
    assert_eq!(s2.id, small.id);
    assert_eq!(s2.nlink, 2);
    assert_eq!(&fs.read(s2.id, 0, 100).await.unwrap()[..], b"tiny content");
    let l2 = fs.lookup(d.id, b"large", &ROOT).await.unwrap();
    assert_eq!(l2.id, large.id);
    assert_eq!(l2.generation, large.generation);
    let mut back = Vec::new();
    while back.len() < big.len() {
        back.extend_from_slice(&fs.read(l2.id, back.len() as u64, 1 << 20).await.unwrap());
    }
    assert!(back == big);
    assert_eq!(fs.getxattr(l2.id, b"user.tag", &ROOT).await.unwrap(), b"v1");
    assert_eq!(fs.readlink(link.id).await.unwrap(), b"dir/large");
    // New inodes never reuse numbers of the previous run.
    let fresh = fs
        .create(fs.root(), b"fresh", 0o644, &ROOT, true)
        .await
        .unwrap();
    assert!(fresh.id.ino() > link.id.ino());
    vol.close().await.unwrap();
}

#[test]
fn second_opener_gets_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = VolumeConfig::new(tmp.path().join("vol"));
    let _vol = Volume::open(&cfg).unwrap();
    let err = Volume::open(&cfg).err().expect("second open must fail");
    assert_eq!(err.kind(), nokv_core::ErrorKind::Busy);
    assert!(
        err.to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{err}"
    );
}

#[test]
fn object_store_mismatch_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = VolumeConfig::new(tmp.path().join("vol"));
    drop(Volume::open(&cfg).unwrap());
    let mut s3 = cfg.clone();
    s3.s3 = Some(nokv_core::object::S3Config {
        endpoint: Some("http://127.0.0.1:9".into()),
        bucket: "b".into(),
        ..Default::default()
    });
    let err = Volume::open(&s3)
        .err()
        .expect("opening with another object store must fail");
    assert_eq!(err.kind(), nokv_core::ErrorKind::InvalidArgument);
    assert!(
        err.to_string().contains("keeps its blocks in `fs`"),
        "{err}"
    );
    // The original settings still work.
    drop(Volume::open(&cfg).unwrap());
}

/// GC runs on a schedule by itself: a discarded fork's layer disappears without a call.
#[tokio::test(flavor = "multi_thread")]
async fn background_gc_prunes_a_discarded_fork() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = nokv_core::VolumeConfig::new(tmp.path().join("vol"));
    cfg.gc_interval = Some(std::time::Duration::from_millis(200));
    let vol = nokv_core::Volume::open(&cfg).unwrap();
    let fs = vol.fs().clone();
    let root = fs.root();
    fs.mkdir(root, b"base", 0o755, &nokv_core::Caller::ROOT)
        .await
        .unwrap();
    fs.clone_tree("/base", "/fork").await.unwrap();
    fs.discard("/fork").await.unwrap();
    let dry = nokv_core::workspace::GcOptions {
        dry_run: true,
        ..Default::default()
    };
    let start = std::time::Instant::now();
    loop {
        let r = fs.gc(&dry).await.unwrap();
        if r.layers == 0 {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "the background GC never pruned the discarded layer: {r:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    vol.close().await.unwrap();
}
