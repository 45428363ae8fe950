use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use nokv_core::object::{MemObjectStore, ObjectStore, OpendalStore};
use nokv_core::store::MemStore;
use nokv_core::{Caller, Fs, FsOptions};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir_in("/tmp").unwrap();
    let buf: Vec<u8> = (0..(1 << 20)).map(|i| (i % 251) as u8).collect();
    let mib = 512u64;
    for variant in ["mem", "fs"] {
        let objects: Arc<dyn ObjectStore> = if variant == "mem" {
            Arc::new(MemObjectStore::new())
        } else {
            Arc::new(OpendalStore::fs(&tmp.path().join("obj")).unwrap())
        };
        let fs = Fs::new(
            Arc::new(MemStore::new()),
            objects,
            FsOptions::new("v", tmp.path().join(format!("st-{variant}"))),
        )
        .unwrap();
        let f = rt
            .block_on(fs.create(fs.root(), b"f", 0o644, &Caller::ROOT, true))
            .unwrap()
            .id;
        let t = Instant::now();
        rt.block_on(async {
            for i in 0..mib {
                fs.write(f, i << 20, &buf).await.unwrap();
            }
            fs.fsync(f).await.unwrap();
        });
        println!(
            "{variant}: {:.0} MiB/s",
            mib as f64 / t.elapsed().as_secs_f64()
        );
    }
    let store = Arc::new(OpendalStore::fs(&tmp.path().join("raw")).unwrap());
    let block = Bytes::from(vec![7u8; 4 << 20]);
    let t = Instant::now();
    rt.block_on(async {
        let mut hs = Vec::new();
        for i in 0..(mib / 4) {
            let s = store.clone();
            let b = block.clone();
            hs.push(tokio::spawn(async move {
                s.put(&format!("blocks/v/1/{i}/0/0"), b).await.unwrap()
            }));
        }
        for h in hs {
            h.await.unwrap();
        }
    });
    println!(
        "raw opendal fs puts (all concurrent): {:.0} MiB/s",
        mib as f64 / t.elapsed().as_secs_f64()
    );
}
