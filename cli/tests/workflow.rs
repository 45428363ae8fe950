//! The seed workflow of issue 6 end to end, using only the `nokv` binary: import a base,
//! snapshot it, clone it to 100 forks, change each fork differently (`import --delete` of an
//! edited copy), diff each fork against the base, roll one back, discard one, promote one,
//! gc, and check that everything that remains reads back (`export`, compared with the host
//! trees) and that fsck is clean. Run twice: against a running `nokv serve` (every command
//! through the admin socket: a direct open would fail on the volume lock) and with no
//! server (every command opens the volume itself).

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::tree::{assert_same_tree, link_copy, noise, rewrite, seed_tree};
use common::{Nokv, Server};

const FORKS: usize = 100;
/// Size of the one file only the discarded fork has (one object).
const DISCARDED_ONLY: usize = 50 << 10;

fn fork(i: usize) -> String {
    format!("/forks/f{i:03}")
}

/// Makes the host tree of fork `i` from the base tree and returns the diff lines expected
/// against the base.
fn edit_fork(base: &Path, dir: &Path, i: usize) -> BTreeSet<String> {
    link_copy(base, dir);
    let m = format!("f{:02}", i % 20);
    rewrite(&dir.join(&m), format!("fork {i} changed {m}\n").as_bytes());
    let added = format!("new-{i}.txt");
    let content = if i == 1 {
        noise(1000 + i as u64, DISCARDED_ONLY)
    } else {
        format!("added by fork {i}\n").into_bytes()
    };
    std::fs::write(dir.join(&added), content).unwrap();
    let d = format!("big/b{}", i % 5);
    std::fs::remove_file(dir.join(&d)).unwrap();
    [format!("M /{m}"), format!("A /{added}"), format!("D /{d}")]
        .into_iter()
        .collect()
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(String::from).collect()
}

/// Exports `path` and compares it with host tree `expected`.
fn assert_reads_back(nokv: &Nokv, tmp: &Path, path: &str, expected: &Path) {
    let out = tmp.join("export-check");
    let _ = std::fs::remove_dir_all(&out);
    nokv.ok(&["export", path, out.to_str().unwrap()]);
    assert_same_tree(expected, &out);
    std::fs::remove_dir_all(&out).unwrap();
}

fn workflow(with_server: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let server = with_server.then(|| {
        let mut s = Server::start(&data);
        s.wait_serving();
        assert!(data.join("admin.sock").exists());
        s
    });
    let nokv = Nokv { data: data.clone() };
    let host = |name: &str| tmp.path().join(name);
    let hs = |p: &PathBuf| p.to_str().unwrap().to_string();

    // A base from a host tree, and a parent for the forks.
    let base = host("base");
    seed_tree(&base);
    let r = nokv.json(&["import", &hs(&base), "/base"]);
    assert_eq!(
        (r["files"].as_u64(), r["copied"].as_u64()),
        (Some(28), Some(28)),
        "{r}"
    );
    assert_eq!(r["symlinks"], 1);
    std::fs::create_dir(host("empty")).unwrap();
    nokv.ok(&["import", &hs(&host("empty")), "/forks"]);
    assert_reads_back(&nokv, tmp.path(), "/base", &base);

    // Snapshot and 100 forks.
    let snap = nokv.json(&["snapshot", "/base", "--name", "v1"]);
    assert_eq!(snap["name"], "base@v1");
    assert_eq!(snap["path"], "/base");
    for i in 0..FORKS {
        let w = nokv.json(&["clone", "/base", &fork(i)]);
        assert_eq!(w["path"], fork(i).as_str());
    }
    let ws = nokv.json(&["workspaces"]);
    assert_eq!(ws.as_array().unwrap().len(), FORKS + 1, "{ws}");

    // Each fork changes different files.
    let mut expected = Vec::new();
    for i in 0..FORKS {
        let dir = host(&format!("fork{i:03}"));
        expected.push(edit_fork(&base, &dir, i));
        let r = nokv.json(&["import", "--delete", &hs(&dir), &fork(i)]);
        assert_eq!(r["copied"], 2, "fork {i}: {r}");
        assert_eq!(r["deleted"], 1, "fork {i}: {r}");
    }

    // Each diff shows exactly that fork's own changes.
    for (i, want) in expected.iter().enumerate() {
        let out = nokv.ok(&["diff", "/base", &fork(i)]);
        assert_eq!(&lines(&out), want, "diff /base {}", fork(i));
    }
    let d = nokv.json(&["diff", "/.nokv/snapshots/base@v1", &fork(7)]);
    let changes = d["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{d}");
    assert!(changes
        .iter()
        .any(|c| c["change"] == "added" && c["path"] == "/new-7.txt" && c["kind"] == "file"));
    assert!(changes
        .iter()
        .any(|c| c["change"] == "modified" && c["what"][0] == "content"));
    assert!(nokv
        .ok(&["diff", "/base", "/.nokv/snapshots/base@v1"])
        .is_empty());

    // Rollback: fork 0 reads back as the base again.
    let snaps = nokv.json(&["snapshots", &fork(0)]);
    assert_eq!(snaps[0]["name"], "base@v1", "{snaps}");
    nokv.ok(&["rollback", &fork(0), "base@v1"]);
    assert!(nokv.ok(&["diff", "/base", &fork(0)]).is_empty());
    assert_reads_back(&nokv, tmp.path(), &fork(0), &base);

    // Promote fork 2: /base becomes its content; the snapshot keeps the old base.
    let p = nokv.json(&["promote", &fork(2)]);
    assert_eq!(p["promoted"], fork(2).as_str());
    assert_reads_back(&nokv, tmp.path(), "/base", &host("fork002"));
    assert_eq!(
        lines(&nokv.ok(&["diff", "/.nokv/snapshots/base@v1", "/base"])),
        expected[2]
    );

    // gc now frees the rolled-back state; then discarding fork 1 frees exactly what only
    // it referenced: its new 50 KiB file (one object) and its layer.
    nokv.json(&["gc", "--grace", "0"]);
    nokv.ok(&["discard", &fork(1)]);
    let dry = nokv.json(&["gc", "--grace", "0", "--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["objects"], 1, "{dry}");
    let gc = nokv.json(&["gc", "--grace", "0"]);
    assert_eq!(gc["objects"], 1, "{gc}");
    assert_eq!(gc["bytes"], DISCARDED_ONLY as u64, "{gc}");
    assert!(gc["layers"].as_u64().unwrap() >= 1, "{gc}");
    let again = nokv.json(&["gc", "--grace", "0"]);
    assert_eq!(
        (again["objects"].as_u64(), again["layers"].as_u64()),
        (Some(0), Some(0))
    );

    // Everything that remains reads back.
    let ws = nokv.json(&["workspaces"]);
    assert_eq!(ws.as_array().unwrap().len(), FORKS + 1 - 2, "{ws}");
    assert_reads_back(&nokv, tmp.path(), "/.nokv/snapshots/base@v1", &base);
    assert_reads_back(&nokv, tmp.path(), "/base", &host("fork002"));
    assert_reads_back(&nokv, tmp.path(), &fork(0), &base);
    for i in 3..FORKS {
        assert_reads_back(&nokv, tmp.path(), &fork(i), &host(&format!("fork{i:03}")));
    }
    let f = nokv.json(&["fsck"]);
    assert_eq!(f["clean"], true, "{f}");
    assert!(nokv.ok(&["fsck"]).starts_with("fsck: clean"));

    if let Some(server) = server {
        let (status, stderr) = server.stop(libc::SIGTERM);
        assert_eq!(status.code(), Some(0), "{stderr}");
        // What the server did is on disk: the volume opened directly agrees.
        assert_eq!(nokv.json(&["fsck"])["clean"], true);
        assert_reads_back(&nokv, tmp.path(), &fork(50), &host("fork050"));
    }
}

#[test]
fn seed_workflow_without_a_server() {
    workflow(false);
}

#[test]
fn seed_workflow_through_a_running_server() {
    workflow(true);
}
