//! Crash test: a worker process runs a file workload on a durable volume (holt metadata,
//! fs objects) and is SIGKILLed at random points, at least 50 times. After every kill the
//! volume is reopened and checked:
//! - every operation acknowledged as durable is present (names and exact contents);
//! - the one operation in flight at the kill is either entirely present or entirely absent
//!   (a file write, which is create-or-truncate then data published by fsync, may also
//!   leave the empty file: its data is published atomically, never partially);
//! - no entry points at missing data (every file reads back completely);
//! - objects that exist beyond the referenced ones are unreferenced garbage only.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use nokv_core::{Caller, Volume, VolumeConfig};
use nokv_tests::crash::{clock_seed, content, env_or, run_until_killed, Rng};

type State = BTreeMap<String, (u64, u64)>;

fn apply(state: &mut State, line: &str) {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w[1] {
        "write" => {
            state.insert(
                w[2].to_string(),
                (w[3].parse().unwrap(), w[4].parse().unwrap()),
            );
        }
        "rename" => {
            let v = state.remove(w[2]).expect("renamed file known");
            state.insert(w[3].to_string(), v);
        }
        "unlink" => {
            state.remove(w[2]);
        }
        other => panic!("unknown op {other}"),
    }
}

/// Reads the volume's root directory and every file's full content.
fn observe(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let vol = Volume::open(&VolumeConfig::new(dir)).expect("reopen after kill");
    let fs = vol.fs().clone();
    let out = rt.block_on(async {
        let root = fs.root();
        let (entries, eof) = fs.readdir(root, 0, 1_000_000, &Caller::ROOT).await.unwrap();
        assert!(eof);
        let mut out = BTreeMap::new();
        for e in entries.iter().filter(|e| e.name != b"." && e.name != b"..") {
            let a = fs.getattr(e.id).await.unwrap();
            let mut data = Vec::new();
            while (data.len() as u64) < a.size {
                let b = fs
                    .read(e.id, data.len() as u64, 1 << 20)
                    .await
                    .expect("entry points at readable data");
                assert!(
                    !b.is_empty(),
                    "short read of {:?}",
                    String::from_utf8_lossy(&e.name)
                );
                data.extend_from_slice(&b);
            }
            out.insert(String::from_utf8(e.name.clone()).unwrap(), data);
        }
        out
    });
    rt.block_on(vol.close()).unwrap();
    out
}

fn matches(state: &State, seen: &BTreeMap<String, Vec<u8>>) -> bool {
    state.len() == seen.len()
        && state.iter().all(|(n, (len, seed))| {
            seen.get(n)
                .is_some_and(|d| d.len() as u64 == *len && *d == content(*seed, *len))
        })
}

#[test]
fn sigkill_loses_nothing_acknowledged() {
    let kills: u32 = env_or("NOKV_CRASH_KILLS", || 50);
    let seed: u64 = env_or("NOKV_CRASH_SEED", clock_seed);
    println!("crash test: seed {seed} (replay with NOKV_CRASH_SEED={seed}), {kills} kills");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    let mut rng = Rng(seed);
    let mut state = State::new();
    let mut acked_total = 0;
    let mut inflight_applied = 0;
    for k in 0..kills {
        let t = Instant::now();
        let lines = run_until_killed(
            Command::new(env!("CARGO_BIN_EXE_nokv-crash-worker"))
                .arg(&dir)
                .arg(rng.next_u64().to_string()),
            Duration::from_secs(30),
            Duration::from_millis(20 + rng.below(400)),
        );
        let mut pending: Option<String> = None;
        for line in lines {
            if line.starts_with("BEGIN") {
                pending = Some(line);
            } else if line == "ACK" {
                apply(&mut state, pending.as_ref().expect("ACK after BEGIN"));
                pending = None;
                acked_total += 1;
            }
        }
        let seen = observe(&dir);
        if matches(&state, &seen) {
            // The in-flight operation (if any) left no trace.
        } else {
            let begun = pending.as_ref().unwrap_or_else(|| {
                panic!(
                    "kill {k}: acknowledged state lost; expected {:?}, saw {:?}",
                    state.keys(),
                    seen.keys()
                )
            });
            let mut with = state.clone();
            apply(&mut with, begun);
            if !matches(&with, &seen) && begun.starts_with("BEGIN write") {
                // A write is create-or-truncate, then data published atomically by fsync:
                // the only intermediate state that can be durable is the empty file.
                let name = begun.split_whitespace().nth(2).unwrap().to_string();
                with.insert(name, (0, 0));
            }
            assert!(
                matches(&with, &seen),
                "kill {k} after {:?}: volume matches neither the acknowledged state nor it plus the in-flight op `{begun}`; expected {:?}, saw {:?}",
                t.elapsed(),
                with.keys(),
                seen.keys()
            );
            state = with;
            inflight_applied += 1;
        }
    }
    println!("crash test: {kills} kills, {acked_total} acknowledged operations verified, {inflight_applied} in-flight operations found complete, {} files at the end", state.len());
    assert!(
        acked_total > kills as usize,
        "the workload made too little progress to test anything"
    );
}
