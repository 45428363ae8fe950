//! Workload for the crash test: runs file operations on a volume forever, announcing each
//! one (`BEGIN ...`) before it starts and acknowledging it (`ACK`) only once it is durable
//! (file fsync + directory fsync returned). The crash test SIGKILLs it at random points.
//!
//! Usage: `nokv-crash-worker DATA_DIR SEED`.

use std::io::Write;

use nokv_core::{Caller, OpenFlags, SetAttr, Volume, VolumeConfig};
use nokv_tests::crash::{content, Rng};

const ROOT: Caller = Caller::ROOT;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let seed: u64 = args[2].parse().expect("seed");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let vol = Volume::open(&VolumeConfig::new(dir)).expect("open volume");
    let fs = vol.fs().clone();
    let out = std::io::stdout();
    let mut rng = Rng(seed);
    rt.block_on(async {
        let root = fs.root();
        let (entries, _) = fs.readdir(root, 0, 100_000, &ROOT).await.unwrap();
        let mut names: Vec<String> = entries
            .iter()
            .map(|e| String::from_utf8(e.name.clone()).unwrap())
            .filter(|n| n.starts_with('f'))
            .collect();
        let mut next = names
            .iter()
            .filter_map(|n| n[1..].parse::<u64>().ok())
            .max()
            .map_or(0, |m| m + 1);
        println!("READY");
        loop {
            let choice = rng.below(10);
            if names.is_empty() || choice < 4 {
                let name = format!("f{next}");
                next += 1;
                let len = rng.size();
                let cseed = rng.next_u64();
                let data = content(cseed, len);
                writeln!(out.lock(), "BEGIN write {name} {len} {cseed}").unwrap();
                let a = fs
                    .create(root, name.as_bytes(), 0o644, &ROOT, false)
                    .await
                    .unwrap();
                fs.open(
                    a.id,
                    OpenFlags {
                        read: true,
                        write: true,
                        truncate: false,
                    },
                    &ROOT,
                )
                .await
                .unwrap();
                write_all(&fs, a.id, &data).await;
                fs.fsync(a.id).await.unwrap();
                fs.release(a.id).await.unwrap();
                fs.fsync_dir(root).await.unwrap();
                names.push(name);
            } else if choice < 6 {
                let name = names[rng.below(names.len() as u64) as usize].clone();
                let len = rng.size();
                let cseed = rng.next_u64();
                let data = content(cseed, len);
                writeln!(out.lock(), "BEGIN write {name} {len} {cseed}").unwrap();
                let a = fs.lookup(root, name.as_bytes(), &ROOT).await.unwrap();
                fs.setattr(
                    a.id,
                    &SetAttr {
                        size: Some(0),
                        ..Default::default()
                    },
                    &ROOT,
                )
                .await
                .unwrap();
                write_all(&fs, a.id, &data).await;
                fs.fsync(a.id).await.unwrap();
            } else if choice < 8 {
                let i = rng.below(names.len() as u64) as usize;
                let to = format!("f{next}");
                next += 1;
                writeln!(out.lock(), "BEGIN rename {} {to}", names[i]).unwrap();
                fs.rename(
                    root,
                    names[i].as_bytes(),
                    root,
                    to.as_bytes(),
                    Default::default(),
                    &ROOT,
                )
                .await
                .unwrap();
                fs.fsync_dir(root).await.unwrap();
                names[i] = to;
            } else {
                let i = rng.below(names.len() as u64) as usize;
                writeln!(out.lock(), "BEGIN unlink {}", names[i]).unwrap();
                fs.unlink(root, names[i].as_bytes(), &ROOT).await.unwrap();
                fs.fsync_dir(root).await.unwrap();
                names.swap_remove(i);
            }
            writeln!(out.lock(), "ACK").unwrap();
        }
    });
}

async fn write_all(fs: &nokv_core::Fs, id: nokv_core::FileId, data: &[u8]) {
    let mut off = 0;
    for piece in data.chunks(256 * 1024) {
        fs.write(id, off, piece).await.unwrap();
        off += piece.len() as u64;
    }
}
