//! Benchmark of the workspace operations: clone, snapshot, rollback and diff of trees of
//! growing size (they must not grow with it), beside `cp -a --reflink=auto` of the same
//! tree on the local disk, timed in the same run; 100 forks off one base; records added per
//! fork; lookup down a lineage of clones.
//!
//! Run: `cargo bench -p nokv-tests --bench workspace`. Env: `NOKV_BENCH_WS_SIZES`
//! (comma-separated file counts, default `1000,10000,100000,1000000`), `NOKV_BENCH_DIR` (the
//! disk to use), `NOKV_BENCH_WS_FORKS` (default 100). Prints Markdown for
//! `docs/benchmarks.md`.

use std::time::{Duration, Instant};

use nokv_core::{Caller, FileId, Fs, Volume, VolumeConfig};

const ROOT: Caller = Caller::ROOT;
const PER_DIR: u64 = 1000;
/// Timed repetitions per operation (the median is reported).
const REPS: usize = 5;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Builds `/tN` with `n` empty files in directories of `PER_DIR`.
async fn build_tree(fs: &Fs, n: u64) -> FileId {
    let top = fs
        .mkdir(fs.root(), format!("t{n}").as_bytes(), 0o755, &ROOT)
        .await
        .unwrap()
        .id;
    let mut dir = top;
    for i in 0..n {
        if i % PER_DIR == 0 {
            dir = fs
                .mkdir(top, format!("d{}", i / PER_DIR).as_bytes(), 0o755, &ROOT)
                .await
                .unwrap()
                .id;
        }
        fs.create(dir, format!("f{i}").as_bytes(), 0o644, &ROOT, true)
            .await
            .unwrap();
    }
    fs.sync_metadata().await.unwrap();
    top
}

fn build_local(root: &std::path::Path, n: u64) {
    std::fs::create_dir_all(root).unwrap();
    let mut dir = root.to_path_buf();
    for i in 0..n {
        if i % PER_DIR == 0 {
            dir = root.join(format!("d{}", i / PER_DIR));
            std::fs::create_dir(&dir).unwrap();
        }
        std::fs::File::create(dir.join(format!("f{i}"))).unwrap();
    }
}

/// Touches `count` files of fork `path` (one new byte each).
async fn change_files(fs: &Fs, path: &str, n: u64, count: u64, tag: u8) {
    for k in 0..count {
        let i = (k * 7919 + 13) % n;
        let f = fs
            .resolve(&format!("{path}/d{}/f{i}", i / PER_DIR))
            .unwrap();
        fs.write(f, 0, &[tag]).await.unwrap();
        fs.flush(f).await.unwrap();
    }
}

fn main() {
    let sizes: Vec<u64> = std::env::var("NOKV_BENCH_WS_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let forks: u64 = std::env::var("NOKV_BENCH_WS_FORKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let base = std::env::var("NOKV_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir());
    let tmp = tempfile::tempdir_in(&base).expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let vol = Volume::open(&VolumeConfig::new(tmp.path().join("nokv"))).expect("open volume");
    let fs = vol.fs().clone();
    println!(
        "workspace operations, redb metadata, fs objects, in {}\n",
        tmp.path().display()
    );
    println!("| files | build (NoKV / local) | clone | snapshot | rollback | diff, 10 changed | `cp -a --reflink=auto` | cp / clone |");
    println!("|---|---|---|---|---|---|---|---|");
    rt.block_on(async {
        fs.mkdir(fs.root(), b"forks", 0o755, &ROOT).await.unwrap();
    });
    for &n in &sizes {
        let t = Instant::now();
        rt.block_on(build_tree(&fs, n));
        let build_nokv = t.elapsed();
        let local = tmp.path().join(format!("local-t{n}"));
        let t = Instant::now();
        build_local(&local, n);
        let build_local_t = t.elapsed();
        let src = format!("/t{n}");
        let (clone, snap, rollback, diff) = rt.block_on(async {
            let mut clone = Vec::new();
            for r in 0..REPS {
                let t = Instant::now();
                fs.clone_tree(&src, &format!("/forks/t{n}-c{r}"))
                    .await
                    .unwrap();
                clone.push(t.elapsed());
            }
            let fork = format!("/forks/t{n}-c0");
            let mut snap = Vec::new();
            for r in 0..REPS {
                let t = Instant::now();
                fs.snapshot(&fork, Some(&format!("s{r}"))).await.unwrap();
                snap.push(t.elapsed());
            }
            change_files(&fs, &fork, n, 10, 1).await;
            let t = Instant::now();
            let changed = fs.diff(&src, &fork).await.unwrap().count();
            let diff = t.elapsed();
            assert_eq!(changed, 10, "diff found {changed} changes");
            let mut rollback = Vec::new();
            for r in 0..REPS {
                change_files(&fs, &fork, n, 1, 2).await;
                let t = Instant::now();
                fs.rollback(&fork, &format!("t{n}-c0@s{r}")).await.unwrap();
                rollback.push(t.elapsed());
            }
            (median(clone), median(snap), median(rollback), diff)
        });
        let t = Instant::now();
        let st = std::process::Command::new("cp")
            .args(["-a", "--reflink=auto"])
            .arg(&local)
            .arg(tmp.path().join(format!("local-c{n}")))
            .status()
            .unwrap();
        assert!(st.success());
        let cp = t.elapsed();
        println!(
            "| {n} | {:.1} s / {:.1} s | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms | {:.0} ms | {:.0}x |",
            build_nokv.as_secs_f64(),
            build_local_t.as_secs_f64(),
            ms(clone),
            ms(snap),
            ms(rollback),
            ms(diff),
            ms(cp),
            cp.as_secs_f64() / clone.as_secs_f64()
        );
        let _ = std::fs::remove_dir_all(&local);
        let _ = std::fs::remove_dir_all(tmp.path().join(format!("local-c{n}")));
    }

    // Diff grows with the changes, not the tree: the largest tree, more changed files.
    let n = *sizes.iter().max().unwrap();
    println!("\n| changed files in a {n}-file fork | diff |");
    println!("|---|---|");
    for (k, changes) in [10u64, 100, 1000].into_iter().enumerate() {
        let fork = format!("/forks/t{n}-d{k}");
        let d = rt.block_on(async {
            fs.clone_tree(&format!("/t{n}"), &fork).await.unwrap();
            change_files(&fs, &fork, n, changes, 3).await;
            let t = Instant::now();
            let c = fs.diff(&format!("/t{n}"), &fork).await.unwrap().count();
            assert_eq!(c as u64, changes.min(n));
            t.elapsed()
        });
        println!("| {changes} | {:.2} ms |", ms(d));
    }

    // Many forks off one base, and what each adds.
    let b = sizes
        .iter()
        .copied()
        .filter(|&s| s <= 100_000)
        .max()
        .unwrap_or(n);
    let (total, per_fork_records) = rt.block_on(async {
        fs.mkdir(fs.root(), b"many", 0o755, &ROOT).await.unwrap();
        let t = Instant::now();
        for i in 0..forks {
            fs.clone_tree(&format!("/t{b}"), &format!("/many/f{i}"))
                .await
                .unwrap();
        }
        let total = t.elapsed();
        let mut recs = Vec::new();
        for (k, changes) in [0u64, 10, 100].into_iter().enumerate() {
            let f = format!("/many/f{k}");
            change_files(&fs, &f, b, changes, 4).await;
            let ws = fs.resolve(&f).unwrap().workspace();
            recs.push((changes, fs.workspace_records(ws).unwrap()));
        }
        (total, recs)
    });
    println!(
        "\n{forks} forks off one {b}-file base: {:.0} ms in total ({:.2} ms per fork)",
        ms(total),
        ms(total) / forks as f64
    );
    for (c, r) in per_fork_records {
        println!("- fork with {c} changed files: {r} metadata records in its head layer");
    }

    // Lookups down a lineage of clones (fork of a fork of ...).
    let lookups = 20_000u64;
    let b = sizes
        .iter()
        .copied()
        .filter(|&s| s <= 100_000)
        .max()
        .unwrap_or(n);
    let mut path = format!("/t{b}");
    let mut rates = Vec::new();
    rt.block_on(async {
        fs.mkdir(fs.root(), b"chain", 0o755, &ROOT).await.unwrap();
        for depth in 0..=32u32 {
            if [0u32, 8, 32].contains(&depth) {
                let dirs: Vec<FileId> = (0..b.div_ceil(PER_DIR))
                    .map(|d| fs.resolve(&format!("{path}/d{d}")).unwrap())
                    .collect();
                let t = Instant::now();
                for k in 0..lookups {
                    let i = (k * 7919) % b;
                    fs.lookup(
                        dirs[(i / PER_DIR) as usize],
                        format!("f{i}").as_bytes(),
                        &ROOT,
                    )
                    .await
                    .unwrap();
                }
                rates.push((depth, lookups as f64 / t.elapsed().as_secs_f64()));
            }
            let next = format!("/chain/l{depth}");
            fs.clone_tree(&path, &next).await.unwrap();
            change_files(&fs, &next, b, 1, 5).await;
            path = next;
        }
    });
    let base_rate = rates[0].1;
    println!("\n| lineage depth (clones of clones, 1 change each) | lookups/s | time vs depth 0 |");
    println!("|---|---|---|");
    for (d, r) in rates {
        println!("| {d} | {r:.0} | {:.2}x |", base_rate / r);
    }
    rt.block_on(vol.close()).unwrap();
}
