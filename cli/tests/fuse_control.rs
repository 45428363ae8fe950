//! The `/.nokv/` control files through a real FUSE mount (`nokv mount`), driven by bash as an
//! agent would: the seed workflow with control files only (snapshot, 100 forks, per-fork
//! diffs, rollback, discard, promote, gc), the same workflow with only the `nokv` binary
//! on host paths inside the mount, bad input on every control file (the write
//! fails with the right errno, `last-error` says why, nothing changes), and eight processes
//! issuing clone / snapshot / diff at once through their own open files.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nokv");

/// `nokv mount` in the foreground, unmounted (SIGTERM) when dropped.
struct Mounted {
    child: Option<Child>,
    dir: PathBuf,
}

impl Mounted {
    fn start(data: &Path, dir: &Path) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        // No GC grace: the tests check that `gc` frees exactly what a discard left, at once.
        let mut child = Command::new(BIN)
            .arg("mount")
            .arg(dir)
            .arg("--data")
            .arg(data)
            .args(["--gc-grace", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start nokv mount");
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line).unwrap();
        assert!(
            line.contains("mounted volume"),
            "unexpected ready line {line:?}"
        );
        Mounted {
            child: Some(child),
            dir: dir.to_path_buf(),
        }
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "nokv mount exited {status}");
                    break;
                }
                assert!(Instant::now() < deadline, "nokv mount did not stop");
                std::thread::sleep(Duration::from_millis(50));
            }
            let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
            assert!(
                !mounts.contains(&self.dir.display().to_string()),
                "still mounted after stop"
            );
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Runs `script` with bash, `$M` set to the mount point; fails the test with its output.
fn bash(script: &str, m: &Path) {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -u\nfail() {{ echo \"FAIL: $*\"; exit 1; }}\nM={}\n{script}",
            m.display()
        ))
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "script failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `nokv fsck` of a volume no server holds.
fn fsck_clean(data: &Path) {
    let out = Command::new(BIN)
        .args(["fsck", "--data"])
        .arg(data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const SEED_WORKFLOW: &str = r#"
mkdir $M/base $M/forks || fail "mkdir"
for i in $(seq 0 9); do echo "base file $i" > $M/base/f$i || fail "base f$i"; done
head -c 204800 /dev/zero | tr '\0' 'b' > $M/base/big || fail "base big"
ls -a $M | grep -q nokv && fail "/.nokv is listed"
echo "/base v1" > $M/.nokv/snapshot || fail "snapshot"
[ "$(cat $M/.nokv/snapshot)" = "base@v1" ] || fail "snapshot output: $(cat $M/.nokv/snapshot)"
for i in $(seq 0 99); do
  echo "/base /forks/f$i" > $M/.nokv/clone || fail "clone f$i"
done
grep -q "^cloned /base /forks/f99 workspace=" $M/.nokv/result || fail "clone result"
for i in $(seq 0 99); do
  m=$((i % 10)); d=$(((i + 3) % 10))
  echo "fork $i" > $M/forks/f$i/f$m || fail "modify f$i"
  echo added > $M/forks/f$i/new-$i || fail "add f$i"
  rm $M/forks/f$i/f$d || fail "delete f$i"
done
head -c 102400 /dev/zero | tr '\0' 'o' > $M/forks/f1/own-big || fail "own-big"
for i in $(seq 0 99); do
  m=$((i % 10)); d=$(((i + 3) % 10))
  want=$(printf 'M /f%s\nA /new-%s\nD /f%s\n' $m $i $d; [ $i = 1 ] && echo "A /own-big")
  want=$(echo "$want" | sort -k2)
  echo "/base /forks/f$i" > $M/.nokv/diff || fail "diff f$i"
  got=$(cat $M/.nokv/diff)
  [ "$got" = "$want" ] || fail "diff of f$i: got [$got] want [$want]"
done
# Roll fork 0 back to base@v1: it reads exactly as the base did.
echo "/forks/f0 base@v1" > $M/.nokv/rollback || fail "rollback"
diff -r $M/forks/f0 $M/.nokv/snapshots/base@v1 || fail "f0 after rollback differs from base@v1"
# Promote fork 2: /base becomes its content; the fork is gone.
cp -a $M/forks/f2 /tmp/nokv-fuse-f2.$$ || fail "copy f2"
echo "/forks/f2" > $M/.nokv/promote || fail "promote"
diff -r $M/base /tmp/nokv-fuse-f2.$$ || fail "base after promote differs from f2"
rm -rf /tmp/nokv-fuse-f2.$$
[ ! -e $M/forks/f2 ] || fail "promoted fork still there"
# Collect what rollback and promote left; then discard fork 1 and collect exactly its block.
echo > $M/.nokv/gc || fail "gc"
echo "/forks/f1" > $M/.nokv/discard || fail "discard"
[ ! -e $M/forks/f1 ] || fail "discarded fork still there"
echo > $M/.nokv/gc || fail "gc after discard"
grep -q " 1 objects (102400 bytes) freed" $M/.nokv/gc || fail "gc freed: $(cat $M/.nokv/gc)"
# Everything left reads back.
[ "$(cat $M/.nokv/snapshots/base@v1/f5)" = "base file 5" ] || fail "snapshot f5"
[ "$(wc -c < $M/.nokv/snapshots/base@v1/big)" = 204800 ] || fail "snapshot big"
for i in $(seq 3 99); do
  m=$((i % 10)); d=$(((i + 3) % 10))
  [ "$(cat $M/forks/f$i/f$m)" = "fork $i" ] || fail "f$i/f$m"
  [ "$(cat $M/forks/f$i/new-$i)" = "added" ] || fail "f$i/new-$i"
  [ ! -e $M/forks/f$i/f$d ] || fail "f$i/f$d came back"
  [ "$(wc -c < $M/forks/f$i/big)" = 204800 ] || fail "f$i/big"
done
[ "$(grep -c . $M/.nokv/workspaces)" = 99 ] || fail "workspaces: $(cat $M/.nokv/workspaces)"
"#;

#[test]
fn the_seed_workflow_with_only_control_files() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let m = Mounted::start(&data, &tmp.path().join("mnt"));
    bash(SEED_WORKFLOW, &m.dir);
    m.stop();
    fsck_clean(&data);
}

/// The same workflow with only the `nokv` binary for workspace operations, given host paths
/// inside the mount (translated by the running `nokv mount`'s admin socket); files are
/// changed through the mount. `$N` runs `nokv --data DATA`.
const SEED_WORKFLOW_CLI: &str = r#"
mkdir $M/base $M/forks || fail "mkdir"
for i in $(seq 0 9); do echo "base file $i" > $M/base/f$i || fail "base f$i"; done
head -c 204800 /dev/zero | tr '\0' 'b' > $M/base/big || fail "base big"
snap=$($N snapshot $M/base --name v1 --json) || fail "snapshot"
case "$snap" in *'"name":"base@v1","path":"/base"'*) ;; *) fail "snapshot: $snap";; esac
for i in $(seq 0 99); do
  $N clone $M/base $M/forks/f$i > /dev/null || fail "clone f$i"
done
[ "$($N workspaces | grep -c /forks/)" = 100 ] || fail "workspaces: $($N workspaces)"
for i in $(seq 0 99); do
  m=$((i % 10)); d=$(((i + 3) % 10))
  echo "fork $i" > $M/forks/f$i/f$m || fail "modify f$i"
  echo added > $M/forks/f$i/new-$i || fail "add f$i"
  rm $M/forks/f$i/f$d || fail "delete f$i"
done
head -c 102400 /dev/zero | tr '\0' 'o' > $M/forks/f1/own-big || fail "own-big"
( cd $M/forks && for i in $(seq 0 99); do
  m=$((i % 10)); d=$(((i + 3) % 10))
  want=$(printf 'M /f%s\nA /new-%s\nD /f%s\n' $m $i $d; [ $i = 1 ] && echo "A /own-big")
  want=$(echo "$want" | sort -k2)
  # A relative host path too: it is resolved against the working directory.
  got=$($N diff /base f$i) || fail "diff f$i"
  [ "$got" = "$want" ] || fail "diff of f$i: got [$got] want [$want]"
done ) || exit 1
$N rollback $M/forks/f0 base@v1 > /dev/null || fail "rollback"
diff -r $M/forks/f0 $M/.nokv/snapshots/base@v1 || fail "f0 after rollback differs from base@v1"
cp -a $M/forks/f2 /tmp/nokv-fuse-cli-f2.$$ || fail "copy f2"
$N promote $M/forks/f2 > /dev/null || fail "promote"
diff -r $M/base /tmp/nokv-fuse-cli-f2.$$ || fail "base after promote differs from f2"
rm -rf /tmp/nokv-fuse-cli-f2.$$
[ ! -e $M/forks/f2 ] || fail "promoted fork still there"
$N gc --grace 0 > /dev/null || fail "gc"
$N discard $M/forks/f1 > /dev/null || fail "discard"
[ ! -e $M/forks/f1 ] || fail "discarded fork still there"
gc=$($N gc --grace 0 --json) || fail "gc after discard"
case "$gc" in *'"bytes":102400,'*'"objects":1,'*) ;; *) fail "gc freed: $gc";; esac
[ "$(cat $M/.nokv/snapshots/base@v1/f5)" = "base file 5" ] || fail "snapshot f5"
[ "$(wc -c < $M/.nokv/snapshots/base@v1/big)" = 204800 ] || fail "snapshot big"
for i in $(seq 3 99); do
  m=$((i % 10)); d=$(((i + 3) % 10))
  [ "$(cat $M/forks/f$i/f$m)" = "fork $i" ] || fail "f$i/f$m"
  [ "$(cat $M/forks/f$i/new-$i)" = "added" ] || fail "f$i/new-$i"
  [ ! -e $M/forks/f$i/f$d ] || fail "f$i/f$d came back"
  [ "$(wc -c < $M/forks/f$i/big)" = 204800 ] || fail "f$i/big"
done
[ "$($N workspaces | grep -c /forks/)" = 98 ] || fail "workspaces: $($N workspaces)"
"#;

#[test]
fn the_seed_workflow_with_only_the_cli_on_host_paths_in_the_mount() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let m = Mounted::start(&data, &tmp.path().join("mnt"));
    let script = format!("N=\"{BIN} --data {}\"\n{SEED_WORKFLOW_CLI}", data.display());
    bash(&script, &m.dir);
    m.stop();
    fsck_clean(&data);
}

const BAD_INPUT: &str = r#"
mkdir $M/base && echo one > $M/base/a || fail "setup"
echo "/base /fork" > $M/.nokv/clone || fail "setup clone"
echo "/base v1" > $M/.nokv/snapshot || fail "setup snapshot"
before=$(ls -laR --time-style=+ $M/base $M/fork; cat $M/.nokv/workspaces; ls $M/.nokv/snapshots)
long=$(head -c 5000 /dev/zero | tr '\0' x)
check() { # FILE ERRNO-TEXT LINE
  if printf '%s' "$3" > $M/.nokv/$1 2>/tmp/nokv-err.$$; then fail "$1 accepted: $3"; fi
  grep -q "$2" /tmp/nokv-err.$$ || fail "$1 [$3]: expected $2, got $(cat /tmp/nokv-err.$$)"
  err=$(cat $M/.nokv/last-error)
  case "$err" in "$1: "*) ;; *) fail "$1 last-error: $err";; esac
  [ "$(grep -c . $M/.nokv/last-error)" = 1 ] || fail "$1 last-error is not one line"
}
check clone "Invalid argument" "garbage"
check clone "Invalid argument" "$(printf '\001\002\377binary')"
check clone "Invalid argument" "/base /$long"
check clone "Invalid argument" "base relative"
check clone "Invalid argument" "/base /../../etc/x"
check clone "Invalid argument" "/base /.nokv/x"
check clone "Invalid argument" "/a
/b"
check clone "No such file" "/nope /x"
check clone "File exists" "/base /fork"
check snapshot "No such file" "/nope"
check snapshot "File exists" "/base v1"
check snapshot "Invalid argument" "/base a b"
check rollback "No such file" "/fork nope@x"
check rollback "Invalid argument" "/fork"
check diff "Invalid argument" "/base"
check diff "No such file" "/base /nope"
check discard "Invalid argument" "/base/a"
check discard "Invalid argument" "/"
check promote "Invalid argument" "/base"
check promote "Invalid argument" "/fork /extra"
check gc "Invalid argument" "everything"
rm -f /tmp/nokv-err.$$
after=$(ls -laR --time-style=+ $M/base $M/fork; cat $M/.nokv/workspaces; ls $M/.nokv/snapshots)
[ "$before" = "$after" ] || fail "the volume changed: [$before] [$after]"
# The namespace itself.
rmdir $M/.nokv 2>/dev/null && fail "rmdir /.nokv"
mv $M/.nokv $M/x 2>/dev/null && fail "rename /.nokv"
touch $M/.nokv/new 2>/dev/null && fail "create in /.nokv"
rm $M/.nokv/clone 2>/dev/null && fail "rm a control file"
echo x > $M/.nokv/result 2>/dev/null && fail "write result"
( echo x > $M/.nokv/snapshots/base@v1/a ) 2>/tmp/nokv-err.$$ && fail "write into a snapshot"
grep -q "Read-only file system" /tmp/nokv-err.$$ || fail "snapshot write: $(cat /tmp/nokv-err.$$)"
rm -f /tmp/nokv-err.$$
[ "$(cat $M/base/a)" = one ] || fail "base changed"
"#;

#[test]
fn bad_input_on_every_control_file_fails_the_write_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let m = Mounted::start(&data, &tmp.path().join("mnt"));
    bash(BAD_INPUT, &m.dir);
    m.stop();
    fsck_clean(&data);
}

const CONCURRENT: &str = r#"
mkdir $M/base && echo shared > $M/base/shared || fail "setup"
agent() { # T: five rounds of clone, write, snapshot, diff, each through its own open file
  t=$1
  for r in 1 2 3 4 5; do
    w=/w$t-$r
    exec 3<>$M/.nokv/clone; echo "/base $w" >&3 || { echo "FAIL: $t clone"; exit 1; }
    out=$(cat <&3); exec 3>&-
    case "$out" in "cloned /base $w workspace="*) ;; *) echo "FAIL: $t clone output [$out]"; exit 1;; esac
    echo mine > $M$w/mine-$t-$r
    exec 3<>$M/.nokv/snapshot; echo "$w s" >&3 || { echo "FAIL: $t snapshot"; exit 1; }
    out=$(cat <&3); exec 3>&-
    [ "$out" = "w$t-$r@s" ] || { echo "FAIL: $t snapshot output [$out]"; exit 1; }
    exec 3<>$M/.nokv/diff; echo "/base $w" >&3 || { echo "FAIL: $t diff"; exit 1; }
    out=$(cat <&3); exec 3>&-
    [ "$out" = "A /mine-$t-$r" ] || { echo "FAIL: $t diff output [$out]"; exit 1; }
    # A failing command of its own, while the others succeed.
    exec 3<>$M/.nokv/clone
    if echo "/base /base/in" >&3 2>/dev/null; then echo "FAIL: $t bad clone accepted"; exit 1; fi
    exec 3>&-
  done
}
pids=""
for t in 1 2 3 4 5 6 7 8; do agent $t > /tmp/nokv-agent-$t.$$ 2>&1 & pids="$pids $!"; done
rc=0
for p in $pids; do wait $p || rc=1; done
cat /tmp/nokv-agent-*.$$; rm -f /tmp/nokv-agent-*.$$
[ $rc = 0 ] || fail "an agent failed"
[ "$(grep -c . $M/.nokv/workspaces)" = 41 ] || fail "workspaces: $(cat $M/.nokv/workspaces)"
[ "$(ls $M/.nokv/snapshots | wc -l)" = 40 ] || fail "snapshots: $(ls $M/.nokv/snapshots)"
"#;

#[test]
fn eight_processes_at_once_never_see_each_others_results() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let m = Mounted::start(&data, &tmp.path().join("mnt"));
    bash(CONCURRENT, &m.dir);
    m.stop();
    fsck_clean(&data);
}
