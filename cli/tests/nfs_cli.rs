//! The seed workflow of issue 6 over NFS with only the `nokv` binary for workspace
//! operations: a real `nokv serve`, a real NFSv3 client (`nfs3_client`) that writes, adds
//! and deletes files in the forks, and `nokv snapshot / clone / diff / rollback / promote /
//! discard / gc / workspaces / fsck` through the server's admin socket. Every remaining
//! workspace and the snapshot are read back over NFS; after the server stops, `fsck` of the
//! volume is clean.

mod common;
#[path = "../../nfs-server/tests/common/mod.rs"]
mod nfs;

use common::{Nokv, Server};
use nfs::*;

const FORKS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_workflow_with_only_the_cli_over_nfs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let mut server = Server::start(&data);
    server.wait_serving();
    let nokv = Nokv { data: data.clone() };
    let addr: SocketAddr = format!("127.0.0.1:{}", server.port).parse().unwrap();
    let mut c = connect(addr).await;
    let root = c.root_nfs_fh3();

    mkdir(&mut c, &root, "base", 0o755).await.unwrap();
    mkdir(&mut c, &root, "forks", 0o755).await.unwrap();
    let base = base_files();
    for (n, bytes) in &base {
        put(&mut c, &root, &format!("/base/{n}"), bytes).await;
    }
    let snap = nokv.json(&["snapshot", "/base", "--name", "v1"]);
    assert_eq!(snap["name"], "base@v1", "{snap}");
    for i in 0..FORKS {
        let out = nokv.ok(&["clone", "/base", &format!("/forks/f{i}")]);
        assert!(
            out.starts_with(&format!("cloned /base to /forks/f{i} (workspace ")),
            "{out}"
        );
    }
    // Each fork modifies one file, adds one and deletes another, through NFS; fork 1's big
    // file is its own block object: the one thing its discard frees.
    let expected = edit_forks(&mut c, &root, FORKS).await;
    for (i, want) in expected.iter().enumerate() {
        let got = nokv.ok(&["diff", "/base", &format!("/forks/f{i}")]);
        assert_eq!(&got, want, "diff of fork {i}");
    }

    nokv.ok(&["rollback", "/forks/f0", "base@v1"]);
    assert_eq!(tree(&mut c, &root, "/forks/f0").await, base);
    let fork2 = tree(&mut c, &root, "/forks/f2").await;
    nokv.ok(&["promote", "/forks/f2"]);
    assert_eq!(tree(&mut c, &root, "/base").await, fork2);
    nokv.ok(&["gc", "--grace", "0"]);
    nokv.ok(&["discard", "/forks/f1"]);
    assert_eq!(
        walk(&mut c, &root, "/forks/f1").await,
        Err(nfsstat3::NFS3ERR_NOENT)
    );
    let gc = nokv.json(&["gc", "--grace", "0"]);
    assert_eq!(
        (gc["objects"].as_u64(), gc["bytes"].as_u64()),
        (Some(1), Some(100 * 1024)),
        "exactly fork 1's own block goes: {gc}"
    );

    assert_eq!(tree(&mut c, &root, "/.nokv/snapshots/base@v1").await, base);
    assert_eq!(tree(&mut c, &root, "/base").await, fork2);
    assert_eq!(tree(&mut c, &root, "/forks/f0").await, base);
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
    let ws = nokv.json(&["workspaces"]);
    assert_eq!(
        ws.as_array().map(|a| a.len()),
        Some(FORKS - 1),
        "the root and 98 forks (one discarded, one promoted): {ws}"
    );
    nokv.ok(&["fsck"]);
    drop(c);
    let (status, stderr) = server.stop(libc::SIGTERM);
    assert!(status.success(), "{status}: {stderr}");
    nokv.ok(&["fsck"]);
}
