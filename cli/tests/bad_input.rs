//! Bad input for every volume subcommand, with and without a running server: one
//! `nokv: ...` line on stderr, nothing on stdout, exit 1 (operation refused) or 2 (usage
//! error), and the volume unchanged (same export of `/`, same workspaces and snapshots,
//! fsck clean). `serve` and `status` have theirs in `cli.rs`.

mod common;

use std::path::Path;

use common::tree::{assert_same_tree, seed_tree};
use common::{Nokv, Server};

/// `(arguments, exit code, a word the message must contain)`.
type Case = (Vec<String>, i32, &'static str);

fn cases(tmp: &Path) -> Vec<Case> {
    let file = tmp.join("a-file");
    std::fs::write(&file, b"not a directory").unwrap();
    let src = tmp.join("src");
    let (file, src, out) = (
        file.to_str().unwrap().to_string(),
        src.to_str().unwrap().to_string(),
        tmp.join("never-created").to_str().unwrap().to_string(),
    );
    let c = |args: &[&str], code, word| (args.iter().map(|s| s.to_string()).collect(), code, word);
    vec![
        c(&["status", "extra"], 2, "unexpected argument"),
        c(&["workspaces", "extra"], 2, "unexpected argument"),
        // clone
        c(&["clone", "/base"], 2, "required"),
        c(&["clone", "/nope", "/forks/x"], 1, "not found"),
        c(&["clone", "/base", "/forks/a"], 1, "exists"),
        c(&["clone", "/base", "/base/inside"], 1, "inside the source"),
        c(&["clone", "/base", "/no-parent/x"], 1, "not found"),
        c(&["clone", "/base/f00", "/forks/x"], 1, "not a directory"),
        c(&["clone", "base", "/forks/x"], 1, "not a volume path"),
        c(&["clone", "/base", "/forks/../x"], 1, "'..'"),
        // snapshot
        c(&["snapshot"], 2, "required"),
        c(&["snapshot", "/nope"], 1, "not found"),
        c(
            &["snapshot", "/base", "--name", "a b"],
            1,
            "invalid snapshot label",
        ),
        c(&["snapshot", "/base", "--name", "v1"], 1, "exists"),
        c(&["snapshot", "/base/f00"], 1, "not a directory"),
        // snapshots
        c(&["snapshots", "/nope"], 1, "not found"),
        c(&["snapshots", "/a", "/b"], 2, "unexpected argument"),
        // snapshot-delete
        c(&["snapshot-delete"], 2, "required"),
        c(&["snapshot-delete", "nope@1"], 1, "no snapshot"),
        // rollback
        c(&["rollback", "/forks/a"], 2, "required"),
        c(&["rollback", "/forks/a", "nope@1"], 1, "no snapshot"),
        c(&["rollback", "/base", "base@v1"], 1, "not a workspace"),
        c(&["rollback", "/nope", "base@v1"], 1, "not found"),
        // diff
        c(&["diff", "/base"], 2, "required"),
        c(&["diff", "/base", "/nope"], 1, "not found"),
        c(&["diff", "/base", "/base/f00"], 1, "directories"),
        c(&["diff", "/base", "/forks/a", "--bogus"], 2, "--bogus"),
        // discard
        c(&["discard"], 2, "required"),
        c(&["discard", "/"], 1, "root workspace"),
        c(&["discard", "/base"], 1, "not a workspace"),
        c(&["discard", "/nope"], 1, "not found"),
        // promote
        c(&["promote"], 2, "required"),
        c(&["promote", "/base"], 1, "not a workspace"),
        c(&["promote", "/"], 1, "no base"),
        // gc
        c(&["gc", "--grace", "soon"], 2, "not a duration"),
        c(&["gc", "extra"], 2, "unexpected argument"),
        // fsck
        c(&["fsck", "extra"], 2, "unexpected argument"),
        // import
        c(&["import", &src], 2, "required"),
        c(&["import", "/no/such/host/dir", "/x"], 1, "No such file"),
        c(&["import", &file, "/x"], 1, "not a directory"),
        c(&["import", &src, "/no-parent/x"], 1, "not found"),
        c(&["import", &src, "/base/f00"], 1, "not a directory"),
        c(&["import", &src, "/x", "--jobs", "0"], 2, "--jobs"),
        c(
            &["import", &src, "/.nokv/snapshots/base@v1"],
            1,
            "read-only",
        ),
        // export
        c(&["export", "/base"], 2, "required"),
        c(&["export", "/nope", &out], 1, "not found"),
        c(&["export", "/base", &file], 1, "not a directory"),
        c(&["export", "/base/f00", &out], 1, "not a directory"),
    ]
}

/// The volume as the CLI sees it: `/` exported, the workspaces and snapshots.
fn state(nokv: &Nokv, dir: &Path) -> (serde_json::Value, serde_json::Value) {
    let _ = std::fs::remove_dir_all(dir);
    nokv.ok(&["export", "/", dir.to_str().unwrap()]);
    (nokv.json(&["workspaces"]), nokv.json(&["snapshots"]))
}

fn bad_input(with_server: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let nokv = Nokv { data: data.clone() };
    let src = tmp.path().join("src");
    seed_tree(&src);
    let mut server = None;
    if with_server {
        let mut s = Server::start(&data);
        s.wait_serving();
        server = Some(s);
    }
    nokv.ok(&["import", src.to_str().unwrap(), "/base"]);
    nokv.ok(&["snapshot", "/base", "--name", "v1"]);
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    nokv.ok(&["import", empty.to_str().unwrap(), "/forks"]);
    nokv.ok(&["clone", "/base", "/forks/a"]);
    let before = state(&nokv, &tmp.path().join("before"));

    for (args, code, word) in cases(tmp.path()) {
        let line = nokv.fail(&args, code);
        assert!(
            line.contains(word),
            "nokv {args:?}: {line:?} does not mention {word:?}"
        );
    }
    assert!(!tmp.path().join("never-created").exists());

    let after = state(&nokv, &tmp.path().join("after"));
    assert_eq!(before, after, "workspaces or snapshots changed");
    assert_same_tree(&tmp.path().join("before"), &tmp.path().join("after"));
    assert_eq!(nokv.json(&["fsck"])["clean"], true);
    if let Some(s) = server {
        let (status, stderr) = s.stop(libc::SIGTERM);
        assert_eq!(status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn bad_input_without_a_server() {
    bad_input(false);
}

#[test]
fn bad_input_through_a_running_server() {
    bad_input(true);
}

#[test]
fn commands_on_a_data_directory_without_a_volume_fail_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let nokv = Nokv {
        data: tmp.path().join("absent"),
    };
    for args in [
        vec!["workspaces"],
        vec!["clone", "/a", "/b"],
        vec!["snapshot", "/"],
        vec!["snapshots"],
        vec!["snapshot-delete", "x@1"],
        vec!["rollback", "/a", "x@1"],
        vec!["diff", "/a", "/b"],
        vec!["discard", "/a"],
        vec!["promote", "/a"],
        vec!["gc"],
        vec!["fsck"],
        vec!["export", "/", "/tmp/nokv-never"],
    ] {
        let line = nokv.fail(&args, 1);
        assert!(line.contains("no volume in"), "{args:?}: {line}");
    }
    assert!(!nokv.data.exists());
}
