//! Where sequential write time goes: the same 1 MiB writes + fsync through `Fs` over
//! different object stores, and raw 4 MiB puts + one sync per store, all in one run.
//!
//! Run: `cargo run --release -p nokv-tests --example wprobe` (env `NOKV_PROBE_MIB`, default
//! 512; `NOKV_BENCH_DIR` for the disk, default the temp directory; `NOKV_PROBE_ONLY` = one
//! of `mem`, `opendal-fs`, `local-fs`, `raw-opendal-fs`, `raw-local-fs` to run only that).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use nokv_core::object::{LocalStore, MemObjectStore, ObjectStore, OpendalStore};
use nokv_core::store::MemStore;
use nokv_core::{Caller, Fs, FsOptions};

fn main() {
    let mib: u64 = std::env::var("NOKV_PROBE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let base = std::env::var("NOKV_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let buf: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    println!(
        "{mib} MiB, 1 MiB writes, fsync at the end; in {}",
        base.display()
    );
    let only = std::env::var("NOKV_PROBE_ONLY").ok();
    let wanted = |v: &str| only.as_deref().is_none_or(|o| o == v);
    for variant in ["mem", "opendal-fs", "local-fs"] {
        if !wanted(variant) {
            continue;
        }
        let tmp = tempfile::tempdir_in(&base).unwrap();
        let objects = store(variant, tmp.path());
        let fs = Fs::new(
            Arc::new(MemStore::new()),
            objects,
            FsOptions::new("v", tmp.path().join("staging")),
        )
        .unwrap();
        let f = rt
            .block_on(fs.create(fs.root(), b"f", 0o644, &Caller::ROOT, true))
            .unwrap()
            .id;
        let t = Instant::now();
        let writes = rt.block_on(async {
            for i in 0..mib {
                fs.write(f, i << 20, &buf).await.unwrap();
            }
            let writes = t.elapsed();
            fs.fsync(f).await.unwrap();
            writes
        });
        let total = t.elapsed();
        println!(
            "Fs over {variant}: {:.0} MiB/s (writes {:.0} ms, fsync {:.0} ms)",
            mib as f64 / total.as_secs_f64(),
            writes.as_secs_f64() * 1000.0,
            (total - writes).as_secs_f64() * 1000.0
        );
    }
    for variant in ["opendal-fs", "local-fs"] {
        if !wanted(&format!("raw-{variant}")) {
            continue;
        }
        let tmp = tempfile::tempdir_in(&base).unwrap();
        let store = store(variant, tmp.path());
        let block = Bytes::from(vec![7u8; 4 << 20]);
        let t = Instant::now();
        let sync = rt.block_on(async {
            let mut hs = Vec::new();
            for i in 0..(mib / 4) {
                let s = Arc::clone(&store);
                let b = block.clone();
                hs.push(tokio::spawn(async move {
                    s.put(&format!("blocks/v/1/{i}/0/0"), b).await.unwrap()
                }));
            }
            for h in hs {
                h.await.unwrap();
            }
            let t = Instant::now();
            store.sync().unwrap();
            t.elapsed()
        });
        println!(
            "raw {variant}: 4 MiB puts (all concurrent) + sync: {:.0} MiB/s (sync {:.0} ms)",
            mib as f64 / t.elapsed().as_secs_f64(),
            sync.as_secs_f64() * 1000.0
        );
    }
}

fn store(variant: &str, dir: &std::path::Path) -> Arc<dyn ObjectStore> {
    let root = dir.join("objects");
    match variant {
        "mem" => Arc::new(MemObjectStore::new()),
        "opendal-fs" => Arc::new(OpendalStore::fs(&root).unwrap()),
        _ => Arc::new(LocalStore::open(&root).unwrap()),
    }
}
