//! The real `nokv serve` binary driven by a real user-space NFS client, Debian's
//! `libnfs-utils` (`nfs-cp`, `nfs-ls`; installed by `scripts/install-test-deps.sh`; a missing
//! tool fails these tests, it does not skip them). libnfs sends AUTH_UNIX with the uid of
//! the process, so these tests are served as the data directory's owner.
//!
//! After SIGTERM the volume is opened through the core API to check that what the client
//! wrote is committed, byte for byte.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::Server;
use nokv_core::{Caller, FileId, Volume, VolumeConfig};

/// A libnfs URL for `path` on the server's port (the double slash: an absolute path on the
/// export).
fn url(port: u16, path: &str) -> String {
    format!("nfs://127.0.0.1/{path}?nfsport={port}&mountport={port}&version=3")
}

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("{tool} ({e}): install libnfs-utils (scripts/install-test-deps.sh)")
    });
    assert!(
        out.status.success(),
        "{tool} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// FNV-1a 64 of a file's bytes, read in 1 MiB pieces.
fn checksum(path: &Path) -> (u64, u64) {
    let mut f = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let (mut h, mut len) = (0xcbf2_9ce4_8422_2325u64, 0u64);
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            return (h, len);
        }
        len += n as u64;
        for b in &buf[..n] {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// FNV-1a 64 and length of a file in a closed volume, read through the core API.
fn checksum_in_volume(data: &Path, name: &[u8]) -> (u64, u64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let volume = Volume::open(&VolumeConfig::new(data)).unwrap();
        let fs = volume.fs().clone();
        let a = fs.lookup(fs.root(), name, &Caller::ROOT).await.unwrap();
        let (mut h, mut off) = (0xcbf2_9ce4_8422_2325u64, 0u64);
        while off < a.size {
            let chunk = fs.read(a.id, off, 1 << 20).await.unwrap();
            assert!(!chunk.is_empty(), "short read at {off} of {}", a.size);
            for b in chunk.iter() {
                h = (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            off += chunk.len() as u64;
        }
        drop(fs);
        volume.close().await.unwrap();
        (h, off)
    })
}

#[test]
fn nfs_cp_round_trips_100_mib_and_sigterm_leaves_it_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let src = tmp.path().join("random.bin");
    {
        let mut rnd = std::fs::File::open("/dev/urandom").unwrap();
        let mut bytes = vec![0u8; 100 << 20];
        rnd.read_exact(&mut bytes).unwrap();
        std::fs::write(&src, &bytes).unwrap();
    }
    let expected = checksum(&src);
    assert_eq!(expected.1, 100 << 20);

    let mut server = Server::start(&data);
    server.wait_serving();
    let port = server.port;
    run(
        "nfs-cp",
        &[src.to_str().unwrap(), &url(port, "/random.bin")],
    );
    let back = tmp.path().join("back.bin");
    run(
        "nfs-cp",
        &[&url(port, "/random.bin"), back.to_str().unwrap()],
    );
    assert_eq!(checksum(&back), expected, "read back through NFS");

    let (status, stderr) = server.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "serve exited {status}: {stderr}");
    assert_eq!(
        checksum_in_volume(&data, b"random.bin"),
        expected,
        "read through the core after SIGTERM"
    );
}

#[test]
fn nfs_ls_recursive_lists_a_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    // The tree is made through the core while no server runs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let volume = Volume::open(&VolumeConfig::new(&data)).unwrap();
        let fs = volume.fs().clone();
        let c = Caller::ROOT;
        let mkdir = |parent: FileId, name: &'static str| {
            let fs = fs.clone();
            async move {
                fs.mkdir(parent, name.as_bytes(), 0o755, &c)
                    .await
                    .unwrap()
                    .id
            }
        };
        let a = mkdir(fs.root(), "a").await;
        let b = mkdir(a, "b").await;
        let c2 = mkdir(b, "c").await;
        mkdir(fs.root(), "empty").await;
        for (dir, name, body) in [
            (fs.root(), "top.txt", &b"top"[..]),
            (a, "a1.txt", b"a1"),
            (b, "b1.txt", b"b-one"),
            (c2, "deep.txt", b"deepest file"),
        ] {
            let f = fs
                .create(dir, name.as_bytes(), 0o644, &c, true)
                .await
                .unwrap();
            fs.write(f.id, 0, body).await.unwrap();
            fs.fsync(f.id).await.unwrap();
        }
        fs.symlink(b, b"link", b"../a1.txt", &c).await.unwrap();
        drop(fs);
        volume.close().await.unwrap();
    });
    drop(rt);

    let mut server = Server::start(&data);
    server.wait_serving();
    let listing = run("nfs-ls", &["-R", &url(server.port, "/")]);
    let mut paths: Vec<(String, String)> = listing
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let mode = words.next()?.to_string();
            let path = words.last()?.to_string();
            Some((path, mode))
        })
        .collect();
    paths.sort();
    let names: Vec<&str> = paths.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        names,
        [
            "a",
            "a/a1.txt",
            "a/b",
            "a/b/b1.txt",
            "a/b/c",
            "a/b/c/deep.txt",
            "a/b/link",
            "empty",
            "top.txt"
        ],
        "nfs-ls -R output:\n{listing}"
    );
    let mode = |p: &str| paths.iter().find(|(n, _)| n == p).unwrap().1.clone();
    assert!(mode("a/b").starts_with('d'), "{listing}");
    assert!(mode("a/b/link").starts_with('l'), "{listing}");
    assert!(mode("top.txt").starts_with("-rw-r--r--"), "{listing}");
    let deep = run("nfs-cat", &[&url(server.port, "/a/b/c/deep.txt")]);
    assert_eq!(deep, "deepest file");
    let (status, stderr) = server.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "serve exited {status}: {stderr}");
}
