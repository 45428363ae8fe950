//! Benchmark of the core API against the same operations on a local directory through
//! `std::fs`, measured in the same run (ratios, not lone times).
//!
//! Run: `cargo bench -p nokv-tests --bench core` (env `NOKV_BENCH_FILES`, `NOKV_BENCH_MIB`,
//! `NOKV_BENCH_DIR` to change sizes or the disk, `NOKV_BENCH_ENGINE=holt` for the holt engine). Prints a Markdown table for
//! `docs/benchmarks.md`.

use std::io::Write;
use std::time::Instant;

use nokv_core::{Caller, FileId, OpenFlags, Volume, VolumeConfig};

const ROOT: Caller = Caller::ROOT;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    what: String,
    nokv: f64,
    local: Option<f64>,
    unit: &'static str,
}

fn main() {
    let files = env_or("NOKV_BENCH_FILES", 20_000);
    let mib = env_or("NOKV_BENCH_MIB", 1024);
    let base = std::env::var("NOKV_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let tmp = tempfile::tempdir_in(&base).expect("tempdir");
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cfg = VolumeConfig::new(tmp.path().join("nokv"));
    let engine = std::env::var("NOKV_BENCH_ENGINE").unwrap_or_else(|_| "redb".into());
    cfg.meta_engine = Some(match engine.as_str() {
        "holt" => nokv_core::MetaEngine::Holt,
        _ => nokv_core::MetaEngine::Redb,
    });
    println!(
        "nokv-core with metadata engine {engine}, fs objects, in {}",
        tmp.path().display()
    );
    let vol = Volume::open(&cfg).expect("open volume");
    let fs = vol.fs().clone();
    let mut rows = Vec::new();

    // Creates.
    let dir = rt
        .block_on(fs.mkdir(fs.root(), b"many", 0o755, &ROOT))
        .unwrap()
        .id;
    let t = Instant::now();
    let mut ids = Vec::with_capacity(files as usize);
    rt.block_on(async {
        for i in 0..files {
            ids.push(
                fs.create(dir, format!("f{i}").as_bytes(), 0o644, &ROOT, true)
                    .await
                    .unwrap()
                    .id,
            );
        }
        fs.sync_metadata().await.unwrap();
    });
    let nokv_creates = files as f64 / t.elapsed().as_secs_f64();
    let ldir = local.join("many");
    std::fs::create_dir(&ldir).unwrap();
    let t = Instant::now();
    for i in 0..files {
        std::fs::File::create(ldir.join(format!("f{i}"))).unwrap();
    }
    std::fs::File::open(&ldir).unwrap().sync_all().unwrap();
    let local_creates = files as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("create {files} empty files (+ one durability barrier)"),
        nokv: nokv_creates,
        local: Some(local_creates),
        unit: "ops/s",
    });

    // Stats.
    let t = Instant::now();
    rt.block_on(async {
        for id in &ids {
            fs.getattr(*id).await.unwrap();
        }
    });
    let nokv_stats = files as f64 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    for i in 0..files {
        std::fs::metadata(ldir.join(format!("f{i}"))).unwrap();
    }
    rows.push(Row {
        what: "stat (getattr by id / metadata by path)".into(),
        nokv: nokv_stats,
        local: Some(files as f64 / t.elapsed().as_secs_f64()),
        unit: "ops/s",
    });

    // Lookups down a lineage: forks of forks of the directory, each with one change.
    let lookups = files.min(20_000);
    let mut top: FileId = dir;
    let mut depth = 1;
    let mut lookup_rates = Vec::new();
    for target in [1u32, 8, 32] {
        while depth < target {
            top = fs.layer_fork(top).unwrap();
            rt.block_on(fs.create(top, format!("fork-{depth}").as_bytes(), 0o644, &ROOT, true))
                .unwrap();
            depth += 1;
        }
        let t = Instant::now();
        rt.block_on(async {
            for i in 0..lookups {
                let name = format!("f{}", (i * 7919) % files);
                fs.lookup(top, name.as_bytes(), &ROOT).await.unwrap();
            }
        });
        let rate = lookups as f64 / t.elapsed().as_secs_f64();
        lookup_rates.push((target, rate));
    }
    let t = Instant::now();
    for i in 0..lookups {
        std::fs::symlink_metadata(ldir.join(format!("f{}", (i * 7919) % files))).unwrap();
    }
    let local_lookup = lookups as f64 / t.elapsed().as_secs_f64();
    for (d, r) in &lookup_rates {
        rows.push(Row {
            what: format!("lookup at layer-chain depth {d}"),
            nokv: *r,
            local: Some(local_lookup),
            unit: "ops/s",
        });
    }

    // Sequential write + fsync, then sequential read, 1 MiB requests.
    let buf: Vec<u8> = (0..(1 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let f = rt
        .block_on(fs.create(fs.root(), b"big", 0o644, &ROOT, true))
        .unwrap()
        .id;
    rt.block_on(fs.open(
        f,
        OpenFlags {
            read: true,
            write: true,
            truncate: false,
        },
        &ROOT,
    ))
    .unwrap();
    let t = Instant::now();
    rt.block_on(async {
        for i in 0..mib {
            fs.write(f, i << 20, &buf).await.unwrap();
        }
        fs.fsync(f).await.unwrap();
    });
    let nokv_w = mib as f64 / t.elapsed().as_secs_f64();
    let lpath = local.join("big");
    let t = Instant::now();
    {
        let mut lf = std::fs::File::create(&lpath).unwrap();
        for _ in 0..mib {
            lf.write_all(&buf).unwrap();
        }
        lf.sync_all().unwrap();
    }
    let local_w = mib as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("sequential write {mib} MiB + fsync"),
        nokv: nokv_w,
        local: Some(local_w),
        unit: "MiB/s",
    });
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let t = Instant::now();
    rt.block_on(async {
        let mut off = 0;
        loop {
            let b = fs.read(f, off, 1 << 20).await.unwrap();
            if b.is_empty() {
                break;
            }
            off += b.len() as u64;
        }
        assert_eq!(off, mib << 20);
    });
    let nokv_r = mib as f64 / t.elapsed().as_secs_f64();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
    let t = Instant::now();
    {
        use std::io::Read;
        let mut lf = std::fs::File::open(&lpath).unwrap();
        let mut b = vec![0u8; 1 << 20];
        while lf.read(&mut b).unwrap() > 0 {}
    }
    let local_r = mib as f64 / t.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!(
            "sequential read {mib} MiB{}",
            if dropped {
                " (page cache dropped first)"
            } else {
                " (warm page cache)"
            }
        ),
        nokv: nokv_r,
        local: Some(local_r),
        unit: "MiB/s",
    });
    rt.block_on(fs.release(f)).unwrap();
    rt.block_on(vol.close()).unwrap();

    println!("| operation | nokv-core | local dir (std::fs) | ratio nokv/local |");
    println!("|---|---|---|---|");
    for r in &rows {
        let local = r
            .local
            .map_or("-".to_string(), |l| format!("{l:.0} {}", r.unit));
        let ratio = r
            .local
            .map_or("-".to_string(), |l| format!("{:.2}", r.nokv / l));
        println!(
            "| {} | {:.0} {} | {local} | {ratio} |",
            r.what, r.nokv, r.unit
        );
    }
    let d1 = lookup_rates[0].1;
    for (d, r) in &lookup_rates {
        println!("lookup cost at depth {d} vs depth 1: {:.2}x", d1 / r);
    }
}
