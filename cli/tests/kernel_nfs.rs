//! The Linux kernel NFS client against the real `nokv serve`, in a qemu VM
//! (`scripts/nfs-kernel-vm.sh`, installed by `scripts/install-test-deps.sh`; if it is missing
//! this test fails, it does not skip).
//!
//! The guest mounts the server and runs a shell workload: create, write, append, read back,
//! rename within and across directories, symlink, chmod, truncate (down and up), mkdir/rmdir,
//! a 2,000-entry directory listed with READDIRPLUS and with `nordirplus`, and a 64 MiB random
//! file. It unmounts; the host stops the server with SIGTERM, checks the 64 MiB file through
//! the core API against the checksum the guest computed, and restarts the server on the same
//! port once the guest has seen it down; the guest remounts and checks everything again.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::Server;
use nokv_core::{Caller, Volume, VolumeConfig};

/// Boot, workload under software emulation, restart, checks.
const VM_DEADLINE: Duration = Duration::from_secs(900);

const GUEST: &str = r#"
fail() { echo "=== GUEST FAIL: $*"; exit 1; }
PORT=@PORT@
M=/mnt
mount -t nfs -o $NFSOPTS 10.0.2.2:/ $M || fail "mount"
mkdir $M/w $M/w/sub || fail "mkdir"
echo hello > $M/w/a || fail "create"
echo world >> $M/w/a || fail "append"
[ "$(cat $M/w/a)" = "hello
world" ] || fail "read back after append"
mv $M/w/a $M/w/b || fail "rename within a directory"
mv $M/w/b $M/w/sub/c || fail "rename across directories"
[ ! -e $M/w/a ] && [ ! -e $M/w/b ] || fail "old names still there"
ln -s sub/c $M/w/link || fail "symlink"
[ "$(readlink $M/w/link)" = "sub/c" ] || fail "readlink"
[ "$(cat $M/w/link)" = "hello
world" ] || fail "read through the symlink"
chmod 640 $M/w/sub/c || fail "chmod"
[ "$(stat -c %a $M/w/sub/c)" = "640" ] || fail "chmod not visible"
printf 0123456789 > $M/w/t || fail "write t"
truncate -s 4 $M/w/t || fail "truncate down"
[ "$(cat $M/w/t)" = "0123" ] || fail "truncated content"
truncate -s 8 $M/w/t || fail "truncate up"
[ "$(stat -c %s $M/w/t)" = 8 ] || fail "size after extending"
[ "$(od -An -tx1 $M/w/t | tr -d ' \n')" = "3031323300000000" ] || fail "extension is not zeros"
mkdir $M/w/gone && rmdir $M/w/gone || fail "mkdir/rmdir"
[ ! -e $M/w/gone ] || fail "rmdir left the directory"
mkdir $M/many || fail "mkdir many"
i=0; while [ $i -lt 2000 ]; do : > $M/many/f$i || fail "create f$i"; i=$((i+1)); done
n=$(ls $M/many | wc -l); [ "$n" = 2000 ] || fail "READDIRPLUS listing has $n entries"
n=$(ls $M/many | sort -u | wc -l); [ "$n" = 2000 ] || fail "READDIRPLUS listing has duplicates"
mkdir -p /mnt2
mount -t nfs -o $NFSOPTS,nordirplus 10.0.2.2:/ /mnt2 || fail "mount nordirplus"
grep -q nordirplus /proc/mounts || fail "nordirplus not in effect"
n=$(ls /mnt2/many | wc -l); [ "$n" = 2000 ] || fail "READDIR listing has $n entries"
n=$(ls /mnt2/many | sort -u | wc -l); [ "$n" = 2000 ] || fail "READDIR listing has duplicates"
umount /mnt2 || fail "umount nordirplus"
dd if=/dev/urandom of=$M/w/big bs=1M count=64 2>/dev/null || fail "write big"
SUM=$(sha256sum $M/w/big | cut -d' ' -f1)
echo "=== BIGSUM $SUM"
umount $M || fail "umount"
echo "=== PHASE1 DONE"
n=0; while nc 10.0.2.2 $PORT -e /bin/true 2>/dev/null; do sleep 1; n=$((n+1)); [ $n -lt 300 ] || fail "server never stopped"; done
echo "=== SAW SERVER DOWN"
n=0; until nc 10.0.2.2 $PORT -e /bin/true 2>/dev/null; do sleep 1; n=$((n+1)); [ $n -lt 300 ] || fail "server never came back"; done
mount -t nfs -o $NFSOPTS 10.0.2.2:/ $M || fail "remount"
[ "$(cat $M/w/sub/c)" = "hello
world" ] || fail "c after restart"
[ "$(readlink $M/w/link)" = "sub/c" ] || fail "link after restart"
[ "$(stat -c %a $M/w/sub/c)" = "640" ] || fail "mode after restart"
[ "$(od -An -tx1 $M/w/t | tr -d ' \n')" = "3031323300000000" ] || fail "t after restart"
[ -e $M/w/restarted-by-host ] || fail "the host's marker is missing"
n=$(ls $M/many | wc -l); [ "$n" = 2000 ] || fail "many has $n entries after restart"
[ "$(sha256sum $M/w/big | cut -d' ' -f1)" = "$SUM" ] || fail "big differs after restart"
umount $M || fail "final umount"
echo "=== PHASE2 OK"
"#;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// sha256 (hex) of `bytes`, by the host's `sha256sum`.
fn sha256(bytes: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Reads `w/big` and `w/sub/c` through the core API of the stopped server's volume, and
/// leaves a marker file the guest looks for after the restart.
fn check_through_core(data: &Path) -> (String, Vec<u8>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let volume = Volume::open(&VolumeConfig::new(data)).unwrap();
        let fs = volume.fs().clone();
        let c = Caller::ROOT;
        let w = fs.lookup(fs.root(), b"w", &c).await.unwrap();
        let big = fs.lookup(w.id, b"big", &c).await.unwrap();
        assert_eq!(big.size, 64 << 20, "size of w/big through the core");
        let mut bytes = Vec::with_capacity(big.size as usize);
        while (bytes.len() as u64) < big.size {
            let chunk = fs.read(big.id, bytes.len() as u64, 1 << 20).await.unwrap();
            assert!(!chunk.is_empty(), "short read at {}", bytes.len());
            bytes.extend_from_slice(&chunk);
        }
        let sub = fs.lookup(w.id, b"sub", &c).await.unwrap();
        let cfile = fs.lookup(sub.id, b"c", &c).await.unwrap();
        let small = fs.read(cfile.id, 0, 100).await.unwrap().to_vec();
        fs.create(w.id, b"restarted-by-host", 0o644, &c, true)
            .await
            .unwrap();
        drop(fs);
        volume.close().await.unwrap();
        (sha256(&bytes), small)
    })
}

#[test]
fn the_linux_kernel_client_works_across_a_server_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("vol");
    let mut server = Server::start(&data);
    server.wait_serving();
    let port = server.port;
    let guest = tmp.path().join("guest.sh");
    std::fs::write(&guest, GUEST.replace("@PORT@", &port.to_string())).unwrap();

    let mut vm = Command::new("bash")
        .arg(repo().join("scripts/nfs-kernel-vm.sh"))
        .arg("run")
        .arg(&guest)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/nfs-kernel-vm.sh");
    let (tx, lines) = mpsc::channel();
    let stdout = vm.stdout.take().unwrap();
    let stderr = vm.stderr.take().unwrap();
    for out in [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ] {
        let tx = tx.clone();
        thread::spawn(move || {
            for line in BufReader::new(out).split(b'\n') {
                let Ok(line) = line else { break };
                let _ = tx.send(String::from_utf8_lossy(&line).replace('\r', ""));
            }
        });
    }
    drop(tx);

    let deadline = Instant::now() + VM_DEADLINE;
    let (mut console, mut bigsum, mut rc) = (Vec::new(), None, None);
    let mut server = Some(server);
    while rc.is_none() {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match lines.recv_timeout(left) {
            Ok(line) => line,
            Err(_) => break,
        };
        console.push(line.clone());
        if let Some(sum) = line.split("=== BIGSUM ").nth(1) {
            bigsum = Some(sum.trim().to_string());
        } else if line.contains("=== PHASE1 DONE") {
            let (status, stderr) = server.take().unwrap().stop(libc::SIGTERM);
            assert_eq!(status.code(), Some(0), "serve exited {status}: {stderr}");
            let (sum, small) = check_through_core(&data);
            assert_eq!(
                Some(&sum),
                bigsum.as_ref(),
                "64 MiB file through the core API"
            );
            assert_eq!(small, b"hello\nworld\n");
        } else if line.contains("=== SAW SERVER DOWN") {
            let mut restarted = Server::start_on(&data, port);
            restarted.wait_serving();
            assert_eq!(restarted.port, port);
            server = Some(restarted);
        } else if let Some(code) = line.split("=== GUEST EXIT rc=").nth(1) {
            rc = code.trim().parse::<i32>().ok();
        }
    }
    let _ = vm.kill();
    let _ = vm.wait();
    let log = console.join("\n");
    assert_eq!(rc, Some(0), "guest failed or timed out; console:\n{log}");
    assert!(log.contains("=== PHASE2 OK"), "console:\n{log}");
    if let Some(server) = server {
        let (status, stderr) = server.stop(libc::SIGTERM);
        assert_eq!(status.code(), Some(0), "serve exited {status}: {stderr}");
    }
}
