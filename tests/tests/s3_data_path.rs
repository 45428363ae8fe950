//! The core's data path on a real S3 server (SeaweedFS from PyPI, in its own network
//! namespace): files written through `Fs` land as blocks in the bucket, read back exactly,
//! survive a volume restart, and sparse regions read as zeros.
//!
//! Fails, never skips, when SeaweedFS cannot be installed or started.

use std::time::Duration;

use nokv_core::object::{ObjectStore, OpendalStore};
use nokv_core::{Caller, OpenFlags, Volume, VolumeConfig, BLOCK_SIZE};
use nokv_tests::seaweed::{in_private_netns, SeaweedFs};

const ROOT: Caller = Caller::ROOT;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn data_path_on_seaweedfs() {
    in_private_netns("data_path_on_seaweedfs", Duration::from_secs(110), || {
        let server = SeaweedFs::start().unwrap_or_else(|e| panic!("cannot start SeaweedFS: {e}"));
        server.create_bucket("nokv-data").unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = VolumeConfig::new(tmp.path().join("vol"));
        cfg.s3 = Some(server.s3_config("nokv-data"));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let big = pattern(2 * BLOCK_SIZE + 123_457, 7);
        let (vol_id, big_id) = rt.block_on(async {
            let vol = Volume::open(&cfg).unwrap();
            assert!(
                vol.objects().starts_with("s3://nokv-data"),
                "{}",
                vol.objects()
            );
            let fs = vol.fs().clone();
            let f = fs
                .create(fs.root(), b"big", 0o644, &ROOT, true)
                .await
                .unwrap();
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
            for (i, piece) in big.chunks(1 << 20).enumerate() {
                fs.write(f.id, (i << 20) as u64, piece).await.unwrap();
            }
            fs.fsync(f.id).await.unwrap();
            fs.release(f.id).await.unwrap();
            // A small overwrite in the middle of a block rewrites only that block.
            fs.write(f.id, BLOCK_SIZE as u64 + 10, b"patched")
                .await
                .unwrap();
            fs.fsync(f.id).await.unwrap();
            let s = fs
                .create(fs.root(), b"sparse", 0o644, &ROOT, true)
                .await
                .unwrap();
            fs.write(s.id, 3 * BLOCK_SIZE as u64, b"tail")
                .await
                .unwrap();
            fs.release(s.id).await.unwrap();
            let id = vol.id().to_string();
            vol.close().await.unwrap();
            (id, f.id)
        });
        let mut expect = big.clone();
        expect[BLOCK_SIZE + 10..BLOCK_SIZE + 17].copy_from_slice(b"patched");
        rt.block_on(async {
            // The blocks really are in the bucket.
            let store = OpendalStore::s3(&server.s3_config("nokv-data")).unwrap();
            let objects = store.list(&format!("blocks/{vol_id}/")).await.unwrap();
            assert!(
                objects.len() >= 4,
                "expected block objects in S3, found {objects:?}"
            );
            let vol = Volume::open(&cfg).unwrap();
            let fs = vol.fs().clone();
            let f = fs.lookup(fs.root(), b"big", &ROOT).await.unwrap();
            assert_eq!(f.id, big_id);
            let mut back = Vec::new();
            while back.len() < expect.len() {
                back.extend_from_slice(&fs.read(f.id, back.len() as u64, 1 << 20).await.unwrap());
            }
            assert_eq!(
                xxhash_rust::xxh3::xxh3_64(&back),
                xxhash_rust::xxh3::xxh3_64(&expect)
            );
            let s = fs.lookup(fs.root(), b"sparse", &ROOT).await.unwrap();
            assert_eq!(s.size, 3 * BLOCK_SIZE as u64 + 4);
            let hole = fs.read(s.id, BLOCK_SIZE as u64, 1 << 16).await.unwrap();
            assert!(hole.iter().all(|b| *b == 0));
            assert_eq!(
                &fs.read(s.id, 3 * BLOCK_SIZE as u64, 10).await.unwrap()[..],
                b"tail"
            );
            vol.close().await.unwrap();
        });
        println!("data path on SeaweedFS: ok ({})", server.endpoint());
    });
}
