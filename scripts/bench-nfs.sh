#!/usr/bin/env bash
# bench-nfs.sh - NFS benchmark of `nokv serve` beside nfs-ganesha, through one real NFS client
# (libnfs), in the same run (issue 4; results in docs/benchmarks.md).
#
# Usage (as root):  bash scripts/bench-nfs.sh
#
# What it does:
#   1. installs what it needs, only when missing (Debian nfs-ganesha nfs-ganesha-vfs rpcbind
#      libnfs-utils libnfs-dev bc iproute2 util-linux gcc), builds `nokv` in release and the
#      small-file client scripts/bench-nfs-small.c (one libnfs process, one connection);
#   2. writes a random source file of SIZE_MIB MiB on the bench disk;
#   3. re-runs itself in a private network namespace (`unshare --net`, lo up) and, for each of
#      ROUNDS rounds, alternating which server goes first, measures against
#        (a) `nokv serve` on a fresh data directory, and
#        (b) nfs-ganesha (VFS FSAL) exporting a fresh local directory on the same disk, run by
#            ../shared/tools/ganesha-peer.sh (ganesha + rpcbind, its WORKLOAD hook),
#      the same workload with the same client binaries:
#        write  nfs-cp of the source file to the server (sequential write)
#        small  bench-nfs-small create: 10,000 files of SMALL_SIZE bytes in one directory
#        -- server stopped, `sync`, page cache dropped, server started again --
#        read   nfs-cp of the file back into a tmpfs file (sequential read, cold), then its
#               sha256 is compared with the source's; every small file is read back and
#               compared (not timed);
#   4. prints per-metric medians, the NoKV/ganesha ratio of the medians and each round's ratio,
#      as a Markdown table (also written to $BENCH_DIR/report.md; raw figures in results.tsv).
#
# Knobs (environment): ROUNDS (3), SIZE_MIB (1024), SMALL_FILES (10000), SMALL_SIZE (4096),
#   BENCH_DIR (/var/tmp/nokv-bench-nfs; must be on the local disk under test),
#   GANESHA_PEER (../shared/tools/ganesha-peer.sh), NOKV_PORT (20490), DROP_CACHES (1).
# Not part of scripts/test.sh: it takes minutes and its figures are only meaningful side by
# side with the peer.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
SIZE_MIB=${SIZE_MIB:-1024}
SMALL_FILES=${SMALL_FILES:-10000}
SMALL_SIZE=${SMALL_SIZE:-4096}
BENCH_DIR=${BENCH_DIR:-/var/tmp/nokv-bench-nfs}
NOKV_PORT=${NOKV_PORT:-20490}
DROP_CACHES=${DROP_CACHES:-1}
BACK=/dev/shm/nokv-bench-nfs-back.bin

die() {
    echo "bench-nfs: ERROR: $*" >&2
    exit 1
}
say() { echo "bench-nfs: $*"; }

now_ns() { date +%s%N; }
# secs T0 T1 -> seconds with 3 decimals
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# record SERVER METRIC VALUE UNIT
record() {
    printf '%s\t%s\t%s\t%s\t%s\n' "$BENCH_ROUND" "$1" "$2" "$3" "$4" >>"$BENCH_DIR/results.tsv"
    printf 'bench-nfs: round %s %-8s %-6s %10s %s\n' "$BENCH_ROUND" "$1" "$2" "$3" "$4"
}

drop_caches() {
    local t0
    t0=$(now_ns)
    sync
    say "sync took $(secs "$t0" "$(now_ns)") s"
    if [[ $DROP_CACHES == 1 ]]; then
        echo 3 >/proc/sys/vm/drop_caches || die "cannot drop the page cache"
    fi
}

# ---- the workload, run once the server answers -----------------------------------------------
# Needs NFS_BASE, NFS_Q (as ganesha-peer.sh exports them), BENCH_SERVER, BENCH_ROUND, BENCH_PHASE.
phase() {
    local root big t0 t1 s
    if [[ $BENCH_SERVER == nokv ]]; then
        root="$NFS_BASE/$NFS_Q" # nfs://127.0.0.1//?... : the export is "/"
    else
        root="$NFS_BASE$NFS_Q" # nfs://127.0.0.1/EXPORT_DIR?...
    fi
    big="$NFS_BASE/big.bin$NFS_Q"
    case $BENCH_PHASE in
    write)
        t0=$(now_ns)
        nfs-cp "$BENCH_DIR/src.bin" "$big" >/dev/null || die "$BENCH_SERVER: nfs-cp upload failed"
        t1=$(now_ns)
        s=$(secs "$t0" "$t1")
        record "$BENCH_SERVER" write "$(awk -v s="$s" -v m="$SIZE_MIB" 'BEGIN{printf "%.1f", m/s}')" "MiB/s ($s s)"
        t0=$(now_ns)
        "$BENCH_DIR/bench-nfs-small" create "$root" /small "$SMALL_FILES" "$SMALL_SIZE" >/dev/null ||
            die "$BENCH_SERVER: small-file creation failed"
        t1=$(now_ns)
        s=$(secs "$t0" "$t1")
        record "$BENCH_SERVER" small "$(awk -v s="$s" -v n="$SMALL_FILES" 'BEGIN{printf "%.0f", n/s}')" "files/s ($s s)"
        ;;
    read)
        rm -f "$BACK"
        t0=$(now_ns)
        nfs-cp "$big" "$BACK" >/dev/null || die "$BENCH_SERVER: nfs-cp download failed"
        t1=$(now_ns)
        s=$(secs "$t0" "$t1")
        record "$BENCH_SERVER" read "$(awk -v s="$s" -v m="$SIZE_MIB" 'BEGIN{printf "%.1f", m/s}')" "MiB/s ($s s)"
        [[ $(sha256sum <"$BACK" | cut -d' ' -f1) == "$(cat "$BENCH_DIR/src.sha256")" ]] ||
            die "$BENCH_SERVER: the file read back differs from the source"
        rm -f "$BACK"
        "$BENCH_DIR/bench-nfs-small" verify "$root" /small "$SMALL_FILES" "$SMALL_SIZE" >/dev/null ||
            die "$BENCH_SERVER: small files read back differ"
        say "round $BENCH_ROUND $BENCH_SERVER: ${SIZE_MIB} MiB sha256 and $SMALL_FILES small files verified"
        ;;
    *) die "unknown phase $BENCH_PHASE" ;;
    esac
}

if [[ ${1:-} == --phase ]]; then
    phase
    exit 0
fi

# ---- inside the private network namespace -----------------------------------------------------
NOKV_PID=
start_nokv() {
    "$NOKV" serve --data "$BENCH_DIR/nokv-data" --listen "127.0.0.1:$NOKV_PORT" \
        >>"$BENCH_DIR/nokv-serve.log" 2>&1 &
    NOKV_PID=$!
    local _
    for _ in $(seq 300); do
        kill -0 "$NOKV_PID" 2>/dev/null || die "nokv serve exited (see $BENCH_DIR/nokv-serve.log)"
        nfs-ls "$NFS_BASE/$NFS_Q" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "nokv serve does not answer after 30 s"
}
stop_nokv() {
    local t0
    t0=$(now_ns)
    kill -TERM "$NOKV_PID"
    wait "$NOKV_PID" || die "nokv serve exited non-zero on SIGTERM"
    NOKV_PID=
    say "nokv serve stopped (publish + close) in $(secs "$t0" "$(now_ns)") s"
}

run_nokv() {
    export BENCH_SERVER=nokv NFS_BASE="nfs://127.0.0.1/" NFS_Q="?nfsport=$NOKV_PORT&mountport=$NOKV_PORT&version=3"
    rm -rf "$BENCH_DIR/nokv-data"
    drop_caches
    start_nokv
    BENCH_PHASE="write" phase
    stop_nokv
    drop_caches
    start_nokv
    BENCH_PHASE="read" phase
    stop_nokv
    rm -rf "$BENCH_DIR/nokv-data"
}

run_ganesha() {
    export BENCH_SERVER=ganesha GAN_DIR="$BENCH_DIR/ganesha" EXPORT_DIR="$BENCH_DIR/ganesha/export"
    export KEEP_FILES=1 RUN_DEFAULT=0 WORKLOAD="$BENCH_DIR/hook.sh"
    rm -rf "$GAN_DIR"
    mkdir -p "$EXPORT_DIR"
    drop_caches
    BENCH_PHASE="write" bash "$GANESHA_PEER" >>"$BENCH_DIR/ganesha-peer.log" 2>&1 ||
        die "ganesha write phase failed (see $BENCH_DIR/ganesha-peer.log)"
    grep "round $BENCH_ROUND ganesha" "$BENCH_DIR/ganesha-peer.log" || true
    drop_caches
    BENCH_PHASE="read" bash "$GANESHA_PEER" >>"$BENCH_DIR/ganesha-peer.log" 2>&1 ||
        die "ganesha read phase failed (see $BENCH_DIR/ganesha-peer.log)"
    grep -E "round $BENCH_ROUND ganesha +read|round $BENCH_ROUND ganesha:" "$BENCH_DIR/ganesha-peer.log" || true
    rm -rf "$GAN_DIR"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() {
    local r="$BENCH_DIR/results.tsv" m unit label n g ratio per
    {
        echo "| metric | NoKV (median) | nfs-ganesha (median) | NoKV / ganesha | per-round ratios |"
        echo "|---|---|---|---|---|"
        for m in write read small; do
            case $m in
            write) unit="MiB/s" label="sequential write ${SIZE_MIB} MiB (nfs-cp up)" ;;
            read) unit="MiB/s" label="sequential read ${SIZE_MIB} MiB, cold (nfs-cp down)" ;;
            small) unit="files/s" label="create ${SMALL_FILES} files of ${SMALL_SIZE} B (one libnfs client)" ;;
            esac
            n=$(awk -F'\t' -v m="$m" '$2 == "nokv" && $3 == m { print $4 }' "$r" | median)
            g=$(awk -F'\t' -v m="$m" '$2 == "ganesha" && $3 == m { print $4 }' "$r" | median)
            ratio=$(awk -v a="$n" -v b="$g" 'BEGIN { printf "%.2f", a / b }')
            per=$(awk -F'\t' -v m="$m" '$3 == m { v[$1, $2] = $4; if ($1 > R) R = $1 }
                END { for (i = 1; i <= R; i++) printf "%s%.2f", (i > 1 ? ", " : ""), v[i, "nokv"] / v[i, "ganesha"] }' "$r")
            echo "| $label | $n $unit | $g $unit | **$ratio** | $per |"
        done
    } | tee "$BENCH_DIR/report.md"
}

inner() {
    ip link set lo up || die "ip link set lo up failed"
    : >"$BENCH_DIR/results.tsv"
    : >"$BENCH_DIR/nokv-serve.log"
    : >"$BENCH_DIR/ganesha-peer.log"
    cat >"$BENCH_DIR/hook.sh" <<EOF
exec bash "$SELF" --phase
EOF
    trap '[[ -n $NOKV_PID ]] && kill -TERM "$NOKV_PID" 2>/dev/null; rm -f "$BACK"' EXIT
    local r
    for r in $(seq "$ROUNDS"); do
        export BENCH_ROUND=$r
        say "round $r of $ROUNDS, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        if ((r % 2)); then
            run_nokv
            run_ganesha
        else
            run_ganesha
            run_nokv
        fi
    done
    say "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
    report
}

SELF=$(realpath "$0")
export SELF BENCH_DIR SIZE_MIB SMALL_FILES SMALL_SIZE DROP_CACHES
if [[ -n ${NOKV_BENCH_NFS_INNER:-} ]]; then
    inner
    exit 0
fi

# ---- outside: install, build, prepare, then re-run in a private network namespace -------------
[[ $(id -u) == 0 ]] || die "must run as root (network namespace, ganesha, drop_caches)"
cd "$(dirname "$SELF")/.."
REPO=$PWD
GANESHA_PEER=${GANESHA_PEER:-$REPO/../shared/tools/ganesha-peer.sh}
[[ -f $GANESHA_PEER ]] || die "no $GANESHA_PEER (set GANESHA_PEER)"
GANESHA_PEER=$(realpath "$GANESHA_PEER")

pkgs=(nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils libnfs-dev bc iproute2 util-linux gcc libc6-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt)"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
fi

mkdir -p "$BENCH_DIR"
say "building nokv (release)"
cargo build --release -q -p nokv || die "cargo build failed"
NOKV="${CARGO_TARGET_DIR:-$REPO/target}/release/nokv"
[[ -x $NOKV ]] || die "no $NOKV after the build"
cc -O2 -Wall -o "$BENCH_DIR/bench-nfs-small" "$REPO/scripts/bench-nfs-small.c" -lnfs ||
    die "cannot build scripts/bench-nfs-small.c"

say "writing a random ${SIZE_MIB} MiB source file"
head -c "$((SIZE_MIB * 1048576))" /dev/urandom >"$BENCH_DIR/src.bin"
sha256sum <"$BENCH_DIR/src.bin" | cut -d' ' -f1 >"$BENCH_DIR/src.sha256"

echo "## machine"
echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), memory: $(free -g | awk '/^Mem/ { print $2 }') GiB"
echo "kernel: $(uname -r)"
echo "disk: $(findmnt -no SOURCE,FSTYPE --target "$BENCH_DIR") holding $BENCH_DIR"
echo "nokv: $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet HEAD -- . 2>/dev/null || echo '+changes'), ganesha: $(dpkg-query -W -f='${Version}' nfs-ganesha), libnfs: $(dpkg-query -W -f='${Version}' libnfs-utils)"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

export NOKV GANESHA_PEER NOKV_PORT ROUNDS NOKV_BENCH_NFS_INNER=1
exec unshare --net bash "$SELF"
