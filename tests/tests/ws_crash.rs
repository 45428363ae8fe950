//! Crash test of the workspace operations: a worker process runs clone, snapshot,
//! rollback, promote, discard, gc and marker writes on a durable volume and is SIGKILLed at
//! random points, each run favouring one operation. After every kill the volume is reopened
//! and checked:
//! - fsck is clean;
//! - every operation reported done is in effect, and the one in flight at the kill
//!   happened entirely or not at all (every workspace's and snapshot's marker, the set of
//!   forks and the set of snapshots match the state before it or after it);
//! - the shared multi-block file reads back intact in the base and in forks and snapshots.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use nokv_core::{Volume, VolumeConfig};
use nokv_tests::crash::{clock_seed, content, env_or, run_until_killed, Rng};

const BIG: (u64, u64) = (9 * 1024 * 1024 + 77, 4242);

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct State {
    base: String,
    forks: BTreeMap<String, String>,
    snaps: BTreeMap<String, String>,
}

impl State {
    fn marker(&self, who: &str) -> String {
        if who == "base" {
            self.base.clone()
        } else {
            self.forks.get(who).cloned().unwrap_or_default()
        }
    }

    /// The state after `line` succeeded.
    fn after(&self, line: &str) -> State {
        let mut s = self.clone();
        let w: Vec<&str> = line.split_whitespace().collect();
        match w[0] {
            "clone" => {
                s.forks.insert(w[1].into(), self.base.clone());
            }
            "write" => {
                if w[1] == "base" {
                    s.base = w[2].into();
                } else if let Some(m) = s.forks.get_mut(w[1]) {
                    *m = w[2].into();
                }
            }
            "snapshot" => {
                s.snaps
                    .insert(format!("{}@{}", w[1], w[2]), self.marker(w[1]));
            }
            "rollback" => {
                let v = self.snaps[w[2]].clone();
                s.forks.insert(w[1].into(), v);
            }
            "promote" => {
                s.base = s.forks.remove(w[1]).expect("promoted fork known");
            }
            "discard" => {
                s.forks.remove(w[1]);
            }
            "gc" => {}
            other => panic!("unknown op {other}"),
        }
        s
    }
}

fn read_all(rt: &tokio::runtime::Runtime, fs: &nokv_core::Fs, path: &str) -> Vec<u8> {
    rt.block_on(async {
        let id = fs.resolve(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let size = fs.getattr(id).await.unwrap().size;
        let mut data = Vec::new();
        while (data.len() as u64) < size {
            let b = fs.read(id, data.len() as u64, 1 << 20).await.unwrap();
            assert!(!b.is_empty(), "short read of {path}");
            data.extend_from_slice(&b);
        }
        data
    })
}

/// Reopens the volume, runs fsck, and reads every marker.
fn observe(dir: &std::path::Path, rng: &mut Rng) -> State {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let vol = Volume::open(&VolumeConfig::new(dir)).expect("reopen after kill");
    let fs = vol.fs().clone();
    let report = rt.block_on(fs.fsck()).unwrap();
    assert!(
        report.is_clean(),
        "fsck after a kill: {:#?}",
        report.violations
    );
    let text = |p: &str| String::from_utf8(read_all(&rt, &fs, p)).unwrap();
    let mut s = State {
        base: text("/base/m"),
        ..Default::default()
    };
    let forks = fs.resolve("/forks").unwrap();
    let (es, _) = rt
        .block_on(fs.readdir(forks, 0, 100_000, &nokv_core::Caller::ROOT))
        .unwrap();
    let mut trees = vec!["/base".to_string()];
    for e in es {
        let n = String::from_utf8(e.name).unwrap();
        if n.starts_with('f') {
            s.forks.insert(n.clone(), text(&format!("/forks/{n}/m")));
            trees.push(format!("/forks/{n}"));
        }
    }
    for snap in fs.snapshots() {
        let p = format!("/.nokv/snapshots/{}", snap.name);
        s.snaps.insert(snap.name, text(&format!("{p}/m")));
        trees.push(p);
    }
    // The shared big file, in the base and two other random trees.
    let want = content(BIG.1, BIG.0);
    for k in 0..3 {
        let t = if k == 0 {
            &trees[0]
        } else {
            &trees[rng.below(trees.len() as u64) as usize]
        };
        assert!(
            read_all(&rt, &fs, &format!("{t}/big")) == want,
            "{t}/big is damaged"
        );
    }
    rt.block_on(vol.close()).unwrap();
    s
}

#[test]
fn sigkill_during_workspace_operations() {
    let kills: u32 = env_or("NOKV_WS_CRASH_KILLS", || 50);
    let seed: u64 = env_or("NOKV_WS_CRASH_SEED", clock_seed);
    println!(
        "workspace crash test: seed {seed} (replay with NOKV_WS_CRASH_SEED={seed}), {kills} kills"
    );
    let targets = ["clone", "rollback", "promote", "discard", "gc"];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("vol");
    let mut rng = Rng(seed);
    let mut state = State {
        base: "0".into(),
        ..Default::default()
    };
    let mut done_total = 0;
    let mut inflight: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    // At least `kills` kills, and more (up to four times as many) until a kill has landed
    // during each target operation.
    let mut k = 0u32;
    loop {
        let missing: Vec<&str> = targets
            .iter()
            .copied()
            .filter(|t| !inflight.contains_key(*t))
            .collect();
        if k >= kills && (missing.is_empty() || k >= 4 * kills) {
            break;
        }
        let target = if k >= kills {
            missing[0]
        } else {
            targets[k as usize % targets.len()]
        };
        k += 1;
        let lines = run_until_killed(
            Command::new(env!("CARGO_BIN_EXE_nokv-ws-crash-worker"))
                .arg(&dir)
                .arg(rng.next_u64().to_string())
                .arg(target),
            Duration::from_secs(60),
            Duration::from_millis(30 + rng.below(300)),
        );
        let mut pending: Option<String> = None;
        for line in lines {
            if let Some(rest) = line.strip_prefix("BEGIN ") {
                pending = Some(rest.split_once(' ').unwrap().1.to_string());
            } else if let Some(rest) = line.strip_prefix("DONE ") {
                let op = pending.take().expect("DONE after BEGIN");
                if rest.ends_with(" ok") {
                    state = state.after(&op);
                }
                done_total += 1;
            }
        }
        let seen = observe(&dir, &mut rng);
        match pending {
            None => assert_eq!(
                seen, state,
                "kill {k}: the volume differs from every operation reported done"
            ),
            Some(op) => {
                let kind = op.split_whitespace().next().unwrap().to_string();
                let after = state.after(&op);
                let mut ok = seen == state || seen == after;
                if !ok && kind == "write" {
                    // A marker write truncates, then writes and fsyncs: the empty marker is
                    // the one intermediate state.
                    let w: Vec<&str> = op.split_whitespace().collect();
                    let mut e = state.clone();
                    if w[1] == "base" {
                        e.base.clear();
                    } else if let Some(m) = e.forks.get_mut(w[1]) {
                        m.clear();
                    }
                    ok = seen == e;
                }
                assert!(ok, "kill {k}: in-flight `{op}` happened partly:\nbefore {state:?}\nafter {after:?}\nseen {seen:?}");
                let entry = inflight.entry(kind).or_default();
                if seen == after && seen != state {
                    entry.1 += 1;
                } else {
                    entry.0 += 1;
                }
                state = seen;
            }
        }
    }
    println!("workspace crash test: {k} kills, {done_total} operations verified; in flight at a kill (not applied, applied): {inflight:?}");
    let hit: BTreeSet<&str> = inflight.keys().map(String::as_str).collect();
    for t in targets {
        assert!(
            hit.contains(t),
            "no kill landed during a {t}; in flight: {inflight:?}"
        );
    }
}
