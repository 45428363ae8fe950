//! `nokv import` and `nokv export`: resumable (a re-run copies only what is incomplete or
//! changed, also after the process was killed mid-copy), mirror with `--delete`, multi-block
//! files, with and without a running server.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::tree::{assert_same_tree, noise, rewrite, seed_tree};
use common::{Nokv, Server, BIN};

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tree of `n` files of 64 KiB plus one 9 MiB file (three 4 MiB blocks).
fn bulk_tree(root: &Path, n: usize) {
    for i in 0..n {
        let dir = root.join(format!("d{}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("file{i:04}")), noise(i as u64, 64 << 10)).unwrap();
    }
    std::fs::write(root.join("large.bin"), noise(99_999, 9 << 20)).unwrap();
}

fn rerun_copies_only_changes(with_server: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let nokv = Nokv {
        data: tmp.path().join("vol"),
    };
    let server = with_server.then(|| {
        let mut srv = Server::start(&nokv.data);
        srv.wait_serving();
        srv
    });
    let src = tmp.path().join("src");
    seed_tree(&src);
    let r = nokv.json(&["import", s(&src), "/base"]);
    assert_eq!(
        (r["copied"].as_u64(), r["skipped"].as_u64()),
        (Some(28), Some(0)),
        "{r}"
    );
    let r = nokv.json(&["import", s(&src), "/base"]);
    assert_eq!(
        (r["copied"].as_u64(), r["skipped"].as_u64()),
        (Some(0), Some(28)),
        "{r}"
    );
    assert_eq!(r["bytes"], 0);

    let out = tmp.path().join("out");
    let r = nokv.json(&["export", "/base", s(&out)]);
    assert_eq!(r["copied"], 28, "{r}");
    assert_same_tree(&src, &out);

    // Change two files, add one, remove one: a merge copies three, --delete removes one.
    rewrite(&src.join("f03"), b"changed\n");
    rewrite(&src.join("big/b1"), &noise(77, 30 << 10));
    std::fs::write(src.join("docs/new.txt"), b"new\n").unwrap();
    std::fs::remove_file(src.join("f04")).unwrap();
    let r = nokv.json(&["import", s(&src), "/base"]);
    assert_eq!(
        (r["copied"].as_u64(), r["deleted"].as_u64()),
        (Some(3), Some(0)),
        "{r}"
    );
    let r = nokv.json(&["export", "/base", s(&out)]);
    assert_eq!(
        (r["copied"].as_u64(), r["skipped"].as_u64()),
        (Some(3), Some(26)),
        "{r}"
    );
    assert!(
        out.join("f04").exists(),
        "a merge keeps what the source lacks"
    );
    let r = nokv.json(&["import", "--delete", s(&src), "/base"]);
    assert_eq!(
        (r["copied"].as_u64(), r["deleted"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
    let r = nokv.json(&["export", "--delete", "/base", s(&out)]);
    assert_eq!(
        (r["copied"].as_u64(), r["deleted"].as_u64()),
        (Some(0), Some(1)),
        "{r}"
    );
    assert_same_tree(&src, &out);
    assert_eq!(nokv.json(&["fsck"])["clean"], true);
    drop(server);
}

#[test]
fn a_rerun_copies_only_what_changed_without_a_server() {
    rerun_copies_only_changes(false);
}

#[test]
fn a_rerun_copies_only_what_changed_through_a_running_server() {
    rerun_copies_only_changes(true);
}

/// Starts `nokv ARGS`, kills it after `after`, and waits for it.
fn kill_after(nokv: &Nokv, args: &[&str], after: Duration) {
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .arg("--data")
        .arg(&nokv.data)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let _ = child.kill();
    child.wait().unwrap();
}

fn interrupted_copies_resume(with_server: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let nokv = Nokv {
        data: tmp.path().join("vol"),
    };
    let server = with_server.then(|| {
        let mut srv = Server::start(&nokv.data);
        srv.wait_serving();
        srv
    });
    let src = tmp.path().join("src");
    bulk_tree(&src, 200);
    if !with_server {
        // The volume exists before the import that is killed.
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        nokv.ok(&["import", s(&empty), "/unused"]);
    }
    // Killed mid-copy (a killed client cancels its request in the server): whatever was
    // done is either complete under its name or a temporary file.
    kill_after(
        &nokv,
        &["import", "--jobs", "2", s(&src), "/data"],
        Duration::from_millis(400),
    );
    // The first open after the kill repairs the store and says so (a warning on stderr).
    let out = nokv
        .cmd(&["import", s(&src), "/data", "--json"])
        .env("NOKV_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["files"], 201, "{r}");
    eprintln!("after the kill: {r}");
    assert_eq!(
        r["copied"].as_u64().unwrap() + r["skipped"].as_u64().unwrap(),
        201,
        "{r}"
    );
    let out = tmp.path().join("out");
    kill_after(
        &nokv,
        &["export", "--jobs", "2", "/data", s(&out)],
        Duration::from_millis(60),
    );
    let done = nokv
        .cmd(&["export", "/data", s(&out)])
        .env("NOKV_LOG", "error")
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_same_tree(&src, &out);
    assert_eq!(nokv.json(&["fsck"])["clean"], true);
    drop(server);
}

#[test]
fn an_interrupted_import_or_export_resumes_without_a_server() {
    interrupted_copies_resume(false);
}

#[test]
fn an_interrupted_import_or_export_resumes_through_a_running_server() {
    interrupted_copies_resume(true);
}
