//! Write patterns a kernel NFS client produces: 1 MiB writes out of order and in parallel,
//! then one fsync; the file must read back exactly, through the cache and after a reopen.

use nokv_core::{Caller, Volume, VolumeConfig};
use nokv_tests::crash::{content, Rng};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_out_of_order_writes_read_back_exactly() {
    for round in 0..4u64 {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = VolumeConfig::new(tmp.path().join("vol"));
        let vol = Volume::open(&cfg).unwrap();
        let fs = vol.fs().clone();
        let f = fs
            .create(fs.root(), b"big", 0o644, &Caller::ROOT, true)
            .await
            .unwrap()
            .id;
        let mib = 64u64;
        let piece = if round % 2 == 0 { 1 << 20 } else { 256 << 10 };
        let data = content(round + 7, mib << 20);
        let mut order: Vec<u64> = (0..(mib << 20) / piece).collect();
        let mut rng = Rng(round + 1);
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let data = std::sync::Arc::new(data);
        let order = std::sync::Arc::new(order);
        let mut tasks = Vec::new();
        for t in 0..8usize {
            let (fs, data, order) = (fs.clone(), data.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                for (k, &p) in order.iter().enumerate() {
                    if k % 8 == t {
                        let off = p * piece;
                        fs.write(f, off, &data[off as usize..(off + piece) as usize])
                            .await
                            .unwrap();
                    }
                }
            }));
        }
        // A COMMIT-like flusher running alongside (the NFS client commits ranges while it
        // still writes; the server's idle flush publishes too).
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flusher = {
            let (fs, stop) = (fs.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    fs.fsync(f).await.unwrap();
                    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
                }
            })
        };
        for t in tasks {
            t.await.unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        flusher.await.unwrap();
        fs.fsync(f).await.unwrap();
        let read_all = |fs: nokv_core::Fs| async move {
            let mut out = Vec::new();
            while out.len() < (mib << 20) as usize {
                let b = fs.read(f, out.len() as u64, 1 << 20).await.unwrap();
                assert!(!b.is_empty());
                out.extend_from_slice(&b);
            }
            out
        };
        let back = read_all(fs.clone()).await;
        let bad = back.iter().zip(data.iter()).position(|(a, b)| a != b);
        assert_eq!(bad, None, "round {round}: first difference at byte {bad:?}");
        drop(fs);
        vol.close().await.unwrap();
        let vol = Volume::open(&cfg).unwrap();
        let back = read_all(vol.fs().clone()).await;
        assert!(back == *data, "round {round}: differs after reopen");
        vol.close().await.unwrap();
    }
}
