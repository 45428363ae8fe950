//! Workload for the workspace crash test: clone, snapshot, rollback, promote, discard and gc
//! on a volume forever, with marker writes in between. Each operation is announced
//! (`BEGIN i op args`) before it starts and reported (`DONE i ok` or `DONE i err`) once it
//! returned: workspace operations are durable when they return. The test SIGKILLs the
//! process at random points.
//!
//! Usage: `nokv-ws-crash-worker DATA_DIR SEED TARGET` where TARGET (`clone`, `rollback`,
//! `promote`, `discard`, `gc`) is the operation to run most often.

use std::io::Write;

use nokv_core::{Caller, OpenFlags, SetAttr, Volume, VolumeConfig};
use nokv_tests::crash::{content, Rng};

const ROOT: Caller = Caller::ROOT;
/// Size and content seed of `/base/big` (several blocks, so objects are shared and GC'd).
pub const BIG: (u64, u64) = (9 * 1024 * 1024 + 77, 4242);

async fn put(fs: &nokv_core::Fs, path: &str, data: &[u8]) -> nokv_core::Result<()> {
    let (dir, name) = path.rsplit_once('/').unwrap();
    let dir = fs.resolve(if dir.is_empty() { "/" } else { dir })?;
    let a = fs.create(dir, name.as_bytes(), 0o644, &ROOT, false).await?;
    let rw = OpenFlags {
        read: true,
        write: true,
        truncate: false,
    };
    fs.open(a.id, rw, &ROOT).await?;
    let cut = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    let r = async {
        fs.setattr(a.id, &cut, &ROOT).await?;
        fs.write(a.id, 0, data).await?;
        fs.fsync(a.id).await
    }
    .await;
    fs.release(a.id).await?;
    r
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let seed: u64 = args[2].parse().expect("seed");
    let target = args[3].clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let vol = Volume::open(&VolumeConfig::new(dir)).expect("open volume");
    let fs = vol.fs().clone();
    let mut rng = Rng(seed);
    let out = std::io::stdout();
    rt.block_on(async {
        if fs.resolve("/base/big").is_err() {
            for d in [&b"base"[..], b"forks"] {
                let _ = fs.mkdir(fs.root(), d, 0o755, &ROOT).await;
            }
            put(&fs, "/base/m", b"0").await.unwrap();
            put(&fs, "/base/big", &content(BIG.1, BIG.0)).await.unwrap();
        }
        let list = |fs: nokv_core::Fs| async move {
            let forks = fs.resolve("/forks").unwrap();
            let (es, _) = fs.readdir(forks, 0, 100_000, &ROOT).await.unwrap();
            es.into_iter()
                .map(|e| String::from_utf8(e.name).unwrap())
                .filter(|n| n.starts_with('f'))
                .collect::<Vec<_>>()
        };
        let mut next = list(fs.clone())
            .await
            .iter()
            .filter_map(|n| n[1..].parse::<u64>().ok())
            .max()
            .map_or(0, |m| m + 1)
            + 1000 * (seed % 1000);
        println!("READY");
        for i in 0u64.. {
            let forks = list(fs.clone()).await;
            let snaps: Vec<String> = fs.snapshots().into_iter().map(|s| s.name).collect();
            let op = if rng.below(10) < 6 {
                target.as_str()
            } else {
                [
                    "write", "clone", "snapshot", "rollback", "promote", "discard", "gc",
                ][rng.below(7) as usize]
            };
            let fork =
                (!forks.is_empty()).then(|| forks[rng.below(forks.len() as u64) as usize].clone());
            let line = match (op, &fork) {
                ("clone", _) | (_, None) => {
                    let name = format!("f{next}");
                    next += 1;
                    format!("clone {name}")
                }
                ("write", Some(f)) => {
                    let who = if rng.below(3) == 0 {
                        "base".to_string()
                    } else {
                        f.clone()
                    };
                    format!("write {who} {}", rng.next_u64() % 1_000_000)
                }
                ("snapshot", Some(f)) => {
                    let who = if rng.below(2) == 0 {
                        "base".to_string()
                    } else {
                        f.clone()
                    };
                    format!("snapshot {who} s{}", rng.next_u64() % 1_000_000_000)
                }
                ("rollback", Some(f)) if !snaps.is_empty() => {
                    format!(
                        "rollback {f} {}",
                        snaps[rng.below(snaps.len() as u64) as usize]
                    )
                }
                ("promote", Some(_)) => {
                    // The newest fork: older ones mostly lost their base's lineage already.
                    let newest = forks
                        .iter()
                        .max_by_key(|n| n[1..].parse::<u64>().unwrap_or(0))
                        .expect("forks is not empty");
                    format!("promote {newest}")
                }
                ("discard", Some(f)) => format!("discard {f}"),
                ("gc", _) => "gc".to_string(),
                (_, Some(f)) => format!("write {f} {}", rng.next_u64() % 1_000_000),
            };
            writeln!(out.lock(), "BEGIN {i} {line}").unwrap();
            let w: Vec<&str> = line.split_whitespace().collect();
            let path = |who: &str| {
                if who == "base" {
                    "/base".to_string()
                } else {
                    format!("/forks/{who}")
                }
            };
            let r: nokv_core::Result<()> = match w[0] {
                "clone" => fs.clone_tree("/base", &path(w[1])).await.map(|_| ()),
                "write" => put(&fs, &format!("{}/m", path(w[1])), w[2].as_bytes()).await,
                "snapshot" => fs.snapshot(&path(w[1]), Some(w[2])).await.map(|_| ()),
                "rollback" => fs.rollback(&path(w[1]), w[2]).await,
                "promote" => fs.promote(&path(w[1])).await,
                "discard" => fs.discard(&path(w[1])).await,
                "gc" => fs
                    .gc(&nokv_core::workspace::GcOptions {
                        grace: std::time::Duration::ZERO,
                        dry_run: false,
                    })
                    .await
                    .map(|_| ()),
                other => panic!("unknown op {other}"),
            };
            let status = if r.is_ok() { "ok" } else { "err" };
            writeln!(out.lock(), "DONE {i} {status}").unwrap();
            if std::env::var_os("NOKV_WS_WORKER_FSCK").is_some() {
                let rep = fs.fsck().await.unwrap();
                if !rep.is_clean() {
                    println!("FSCK after {i} {line}: {:?}", rep.violations);
                    std::process::exit(3);
                }
            }
        }
    });
}
