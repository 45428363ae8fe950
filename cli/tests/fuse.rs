//! The FUSE frontend on a real kernel mount (`nokv mount`): basic operations and inode
//! numbers, clean unmount by `nokv umount` and by signals, no stale mount after a kill,
//! read-only and sub-tree mounts, `serve --fuse`; pjdfstest (once) and fsx (100,000
//! operations, plus a run with fallocate / punch-hole / copy_file_range / mmap); real tools
//! (git, cargo) compared with the same steps on the local disk; concurrent writers,
//! renamers and listers in one directory.
//!
//! Needs root and /dev/fuse; fsx and pjdfstest come from install-test-deps.sh
//! (/var/cache/nokv-tools, or NOKV_TOOLS).

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::BIN;

/// A running `nokv mount`, killed (and its mount removed) if a test fails first.
struct Mount {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mount {
    fn start(data: &Path, dir: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .arg("mount")
            .arg(dir)
            .args(extra)
            .env("NOKV_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nokv mount");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(common::STARTUP)
            .unwrap_or_else(|e| panic!("no ready line from nokv mount: {e}"));
        assert!(line.starts_with("nokv: mounted volume "), "{line}");
        assert!(is_mounted(dir), "{} not in /proc/mounts", dir.display());
        Mount {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// `nokv umount`, then the server must have exited 0.
    fn umount(mut self) {
        let st = Command::new(BIN)
            .arg("umount")
            .arg(&self.dir)
            .status()
            .unwrap();
        assert!(st.success(), "nokv umount: {st}");
        let st = wait(self.child.as_mut().unwrap(), common::SHUTDOWN);
        assert_eq!(st.code(), Some(0), "server after umount: {st}");
        assert!(!is_mounted(&self.dir));
        self.child = None;
    }

    /// Sends `sig`; returns the server's exit status.
    fn signal(mut self, sig: i32) -> std::process::ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
        let st = wait(self.child.as_mut().unwrap(), common::SHUTDOWN);
        self.child = None;
        st
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.dir)
                .status();
        }
    }
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn is_mounted(dir: &Path) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let want = dir.to_str().unwrap();
    mounts
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want) && l.contains(" - fuse.nokv "))
}

fn sh(dir: &Path, script: &str) -> String {
    // The scripts build in `./target`, whatever target directory the test run itself uses.
    let out = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .env_remove("CARGO_TARGET_DIR")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\nin {}: {}\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tools() -> PathBuf {
    PathBuf::from(std::env::var("NOKV_TOOLS").unwrap_or_else(|_| "/var/cache/nokv-tools".into()))
}

#[test]
fn files_survive_umount_signals_and_remount_and_kill_leaves_no_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    let m = Mount::start(&data, &mnt, &[]);
    std::fs::create_dir(mnt.join("d")).unwrap();
    std::fs::write(mnt.join("d/small"), b"hello").unwrap();
    let big: Vec<u8> = (0..9_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(mnt.join("d/big"), &big).unwrap();
    std::os::unix::fs::symlink("small", mnt.join("d/link")).unwrap();
    std::fs::hard_link(mnt.join("d/small"), mnt.join("d/hard")).unwrap();
    let ino = std::fs::metadata(mnt.join("d/small")).unwrap().ino();
    assert_eq!(std::fs::metadata(mnt.join("d/hard")).unwrap().ino(), ino);
    assert_eq!(std::fs::metadata(mnt.join("d/small")).unwrap().nlink(), 2);
    // An unlinked file stays readable through an open descriptor.
    let f = std::fs::File::open(mnt.join("d/hard")).unwrap();
    std::fs::remove_file(mnt.join("d/hard")).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 1);
    drop(f);
    m.umount();

    // The same files, with the same inode numbers, after a remount; SIGTERM unmounts.
    let m = Mount::start(&data, &mnt, &[]);
    assert_eq!(std::fs::read(mnt.join("d/small")).unwrap(), b"hello");
    assert!(std::fs::read(mnt.join("d/big")).unwrap() == big);
    assert_eq!(
        std::fs::read_link(mnt.join("d/link")).unwrap(),
        Path::new("small")
    );
    assert_eq!(std::fs::metadata(mnt.join("d/small")).unwrap().ino(), ino);
    std::fs::write(mnt.join("d/after-term"), b"x").unwrap();
    assert_eq!(m.signal(libc::SIGTERM).code(), Some(0));
    assert!(!is_mounted(&mnt));

    // SIGINT too.
    let m = Mount::start(&data, &mnt, &[]);
    assert_eq!(std::fs::read(mnt.join("d/after-term")).unwrap(), b"x");
    assert_eq!(m.signal(libc::SIGINT).code(), Some(0));

    // A killed server leaves no stale mount (auto_unmount).
    let m = Mount::start(&data, &mnt, &[]);
    m.signal(libc::SIGKILL);
    let start = Instant::now();
    while is_mounted(&mnt) {
        if start.elapsed() > Duration::from_secs(10) {
            let ps = Command::new("ps")
                .args(["-eo", "pid,ppid,stat,wchan:32,args"])
                .output()
                .unwrap();
            panic!(
                "stale mount left; processes:\n{}",
                String::from_utf8_lossy(&ps.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // --background returns once mounted; umount stops the detached server.
    let out = Command::new(BIN)
        .arg("--data")
        .arg(&data)
        .args(["mount", "--background"])
        .arg(&mnt)
        .env("NOKV_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(is_mounted(&mnt));
    assert_eq!(std::fs::read(mnt.join("d/small")).unwrap(), b"hello");
    let st = Command::new(BIN).arg("umount").arg(&mnt).status().unwrap();
    assert!(st.success());
    assert!(!is_mounted(&mnt));
}

#[test]
fn read_only_subtree_mount_and_serve_with_fuse() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    let m = Mount::start(&data, &mnt, &[]);
    std::fs::create_dir_all(mnt.join("ws/sub")).unwrap();
    std::fs::write(mnt.join("ws/sub/f"), b"in sub").unwrap();
    m.umount();

    let m = Mount::start(&data, &mnt, &["--read-only", "--root", "/ws"]);
    assert_eq!(std::fs::read(mnt.join("sub/f")).unwrap(), b"in sub");
    let e = std::fs::write(mnt.join("sub/g"), b"no").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let e = std::fs::remove_file(mnt.join("sub/f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    m.umount();

    // FUSE and NFS from one process on one volume.
    let mut server =
        common::Server::start_with(&data, "127.0.0.1:0", &["--fuse", mnt.to_str().unwrap()]);
    server.wait_serving();
    assert!(is_mounted(&mnt));
    std::fs::write(mnt.join("via-fuse"), b"both").unwrap();
    assert_eq!(std::fs::read(mnt.join("ws/sub/f")).unwrap(), b"in sub");
    let (status, stderr) = server.stop(libc::SIGTERM);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!is_mounted(&mnt));
    let m = Mount::start(&data, &mnt, &[]);
    assert_eq!(std::fs::read(mnt.join("via-fuse")).unwrap(), b"both");
    m.umount();
}

/// pjdfstest's configuration: the features NoKV over FUSE has and two existing users.
const PJDFSTEST_TOML: &str = r#"
[features]
rename_ctime = {}
utime_now = {}
utimensat = {}
posix_fallocate = {}

[settings]
naptime = 0.01
allow_remount = false
expected_failures = []

[dummy_auth]
entries = [["nobody", "nogroup"], ["daemon", "daemon"]]
"#;

#[test]
fn pjdfstest_passes_over_the_mount() {
    let pjdfstest = tools().join("bin/pjdfstest");
    assert!(pjdfstest.exists(), "{} missing", pjdfstest.display());
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    let config = tmp.path().join("pjdfstest.toml");
    std::fs::write(&config, PJDFSTEST_TOML).unwrap();
    // Other users must reach the mount (pjdfstest switches uid).
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let m = Mount::start(&data, &mnt, &["--allow-other"]);
    let out = Command::new(&pjdfstest)
        .arg("-c")
        .arg(&config)
        .arg("-p")
        .arg(&mnt)
        .current_dir(&mnt)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let summary = text
        .lines()
        .find(|l| l.starts_with("Summary:"))
        .unwrap_or_else(|| {
            panic!(
                "no summary ({}):\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_string();
    eprintln!("pjdfstest over FUSE: {summary}");
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_end().ends_with("FAILED"))
        .collect();
    assert!(
        failed.is_empty(),
        "unexpected failures: {failed:#?}\n{summary}"
    );
    assert!(summary.starts_with("Summary: 0 failed"), "{summary}");
    let passed: u32 = summary
        .split(", ")
        .find_map(|p| p.strip_suffix(" passed"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed >= 380, "{summary}");
    m.umount();
}

/// The mount negotiates `FUSE_HANDLE_KILLPRIV_V2`: the kernel leaves clearing setuid/setgid
/// and capabilities on write, truncation and chown to the server, which must then do it.
#[test]
fn writes_and_truncation_by_others_clear_setuid_over_the_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let m = Mount::start(&data, &mnt, &["--allow-other"]);
    let nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups";
    let cap = "python3 -c 'import os; os.setxattr(\"f\", \"security.capability\", \
        bytes([0, 0, 0, 2]) + bytes(16))'";
    let has_cap = "python3 -c 'import os; print(\"security.capability\" in os.listxattr(\"f\"))'";
    let script = format!(
        "printf abc > f; chown 65534:65534 f; chmod 6755 f
         printf d >> f; stat -c %a f
         {nobody} sh -c 'printf e >> f'; stat -c %a f
         chmod 6745 f; {nobody} truncate -s 2 f; stat -c '%a %s' f
         chmod 6755 f; {cap}; {has_cap}; printf g >> f; stat -c %a f; {has_cap}
         {cap}; chown 65534 f; stat -c %a f; {has_cap}"
    );
    assert_eq!(
        sh(&mnt, &script),
        "6755\n755\n2745 2\nTrue\n6755\nFalse\n755\nFalse\n",
        "root keeps setid bits on write; others clear setuid (setgid only when \
         group-executable); every write and chown drops capabilities; chown clears setid"
    );
    m.umount();
}

fn run_fsx(mnt: &Path, artifacts: &Path, config: &str, ops: u32, seed: u32, name: &str) {
    let fsx = tools().join("bin/fsx");
    let cfg = artifacts.join(format!("{name}.toml"));
    std::fs::write(&cfg, config).unwrap();
    eprintln!("fsx {name}: {ops} operations, seed {seed}");
    let start = Instant::now();
    let out = Command::new(&fsx)
        .arg("-f")
        .arg(&cfg)
        .arg("-N")
        .arg(ops.to_string())
        .arg("-S")
        .arg(seed.to_string())
        .arg("-P")
        .arg(artifacts)
        .arg(mnt.join(name))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tail: Vec<&str> = text.lines().rev().take(30).collect();
    assert!(
        out.status.success(),
        "fsx {name} (seed {seed}) failed:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    eprintln!("fsx {name}: A-OK in {:?}", start.elapsed());
}

#[test]
fn fsx_over_the_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    let m = Mount::start(&data, &mnt, &[]);
    let seed = std::env::var("NOKV_FSX_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() % 100_000 + 1);
    // Reads, writes, truncates and mmap reads/writes. Every truncate and every msync
    // publishes (an object fsync, ~10 ms on this disk class), so this long run makes them
    // rarer (truncate weight 1/4 of the others, no msync after mmap writes) to stay near a
    // minute; the second run has the default weights plus the range operations and msync.
    let basic = "nomsyncafterwrite = true\n[weights]\ntruncate = 0.25\n";
    run_fsx(&mnt, tmp.path(), basic, 100_000, seed, "basic");
    let extended = "[weights]\nposix_fallocate = 1.0\npunch_hole = 1.0\n\
                    copy_file_range = 1.0\nsendfile = 1.0\nfsync = 0.2\n";
    run_fsx(&mnt, tmp.path(), extended, 10_000, seed + 1, "extended");
    m.umount();
}

/// The same git and cargo steps in the mount and on the local disk give the same results.
#[test]
fn git_and_cargo_in_the_mount_match_the_local_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    let local = tmp.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let m = Mount::start(&data, &mnt, &[]);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = std::fs::canonicalize(src).unwrap();
    let mut results = Vec::new();
    for root in [&local, &mnt] {
        let script = format!(
            r#"
export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@e GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@e
export GIT_AUTHOR_DATE='2025-01-01T00:00:00Z' GIT_COMMITTER_DATE='2025-01-01T00:00:00Z'
mkdir repo && cd repo
git init -q -b main
cp -r {src}/core {src}/nfs-server {src}/cli {src}/docs {src}/Cargo.toml .
git add -A && git commit -qm one
first=$(git rev-parse HEAD)
rm -r docs && echo changed >> Cargo.toml && mkdir new && echo n > new/file
git add -A && git commit -qm two
test -z "$(git status --porcelain)"
git checkout -q $first
test -z "$(git status --porcelain)"
test -d docs && test ! -e new
git rev-parse HEAD^{{tree}}
git checkout -q main
git rev-parse HEAD^{{tree}}
git fsck --no-dangling --no-progress
"#,
            src = src.display()
        );
        let trees = sh(root, &script);
        // A small crate with a dependency-free build, target dir inside the tree.
        let cargo = r#"
mkdir hello && cd hello
cat > Cargo.toml <<'EOF'
[package]
name = "hello"
version = "0.1.0"
edition = "2021"
EOF
mkdir src && printf 'fn main() { println!("{}", (1..=10u32).sum::<u32>()); }\n' > src/main.rs
cargo build -q --offline 2>&1
./target/debug/hello
"#;
        let built = sh(root, cargo);
        results.push((trees, built));
    }
    assert_eq!(results[0], results[1], "local vs mount");
    assert_eq!(results[1].1.trim(), "55");
    m.umount();
}

/// Several processes create, write, rename (each its own files, and all over one shared
/// name) and list in one directory at once; every file ends up under its final name with
/// its content, the shared name holds one writer's whole content, and nothing else is left.
#[test]
fn concurrent_writers_renamers_and_listers_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (data, mnt) = (tmp.path().join("data"), tmp.path().join("mnt"));
    let m = Mount::start(&data, &mnt, &[]);
    let dir = mnt.join("shared");
    std::fs::create_dir(&dir).unwrap();
    let (writers, files) = (4, 150);
    let mut children = Vec::new();
    for w in 0..writers {
        let script = format!(
            "i=0; while [ $i -lt {files} ]; do \
               printf 'w{w} f%d\\n' $i > tmp.{w}.$i; \
               mv tmp.{w}.$i final.{w}.$i; \
               printf 'w{w}\n' > hot.{w}; mv -f hot.{w} latest; \
               i=$((i+1)); done"
        );
        children.push(
            Command::new("sh")
                .arg("-ec")
                .arg(script)
                .current_dir(&dir)
                .spawn()
                .unwrap(),
        );
    }
    for _ in 0..2 {
        children.push(
            Command::new("sh")
                .arg("-ec")
                // Names only: `ls -l` could race a rename between listing and stat (on
                // any filesystem).
                .arg("for i in $(seq 60); do ls -a > /dev/null; done")
                .current_dir(&dir)
                .spawn()
                .unwrap(),
        );
    }
    for (i, mut c) in children.into_iter().enumerate() {
        let st = c.wait().unwrap();
        assert!(st.success(), "process {i}: {st}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..writers)
        .flat_map(|w| (0..files).map(move |i| format!("final.{w}.{i}")))
        .collect();
    want.push("latest".into());
    want.sort();
    assert_eq!(names, want);
    // Renames over one name: the last one wins whole.
    let latest = std::fs::read_to_string(dir.join("latest")).unwrap();
    assert!(
        (0..writers).any(|w| latest == format!("w{w}\n")),
        "{latest:?}"
    );
    for w in 0..writers {
        for i in 0..files {
            let got = std::fs::read_to_string(dir.join(format!("final.{w}.{i}"))).unwrap();
            assert_eq!(got, format!("w{w} f{i}\n"));
        }
    }
    m.umount();
}
