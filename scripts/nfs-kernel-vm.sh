#!/usr/bin/env bash
# A throwaway Linux VM with the stock kernel NFSv3 client, to mount an NFS server that listens
# on this machine's 127.0.0.1:PORT with a real `mount -t nfs` (adapted from
# ../shared/tools/nfs-kernel-vm.sh; used by cli/tests/kernel_nfs.rs).
#
#   nfs-kernel-vm.sh install                         # idempotent: qemu, kmod, cpio, kernel, busybox
#   nfs-kernel-vm.sh run GUEST_SCRIPT PORT [FILE...]  # boot, run the script, power off
#
# Inside the guest: busybox sh as root, the host is 10.0.2.2, $NFSOPTS holds working mount
# options for PORT, FILEs are copied to /extra/ (static binaries, or dynamic ones with their
# libraries when LIBS=1). The console goes to stdout; its last line is "=== GUEST EXIT rc=N".
# qemu's user network forwards the guest's connections to 10.0.2.2:PORT to 127.0.0.1:PORT.
#
# Software emulation (KVM does not work on these machines): boot to a mounted share ~6-10 s.
# Env: NOKV_VM_DIR (kernel + busybox cache, default /var/cache/nokv-nfs-vm), TIMEOUT (seconds,
# default 600), MEM (MiB, default 1024), LIBS=1.
set -euo pipefail
VMDIR=${NOKV_VM_DIR:-/var/cache/nokv-nfs-vm}

as_root() {
    if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi
}

installed() {
    [[ -f $VMDIR/ready ]] && command -v qemu-system-x86_64 >/dev/null &&
        command -v depmod >/dev/null && command -v cpio >/dev/null
}

install() {
    installed && return 0
    local need=""
    for t in qemu-system-x86_64:qemu-system-x86 depmod:kmod cpio:cpio; do
        command -v "${t%%:*}" >/dev/null || need="$need ${t#*:}"
    done
    if [[ -n $need ]]; then
        echo "installing$need (apt): the kernel NFS client VM"
        as_root apt-get update -qq >/dev/null
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $need >/dev/null
    fi
    if [[ ! -f $VMDIR/ready ]]; then
        echo "downloading a Debian kernel and busybox-static into $VMDIR"
        as_root mkdir -p "$VMDIR"
        as_root chown "$(id -u)" "$VMDIR"
        local dl
        dl=$(mktemp -d)
        # apt-get download writes into the current directory, as the _apt user when it can.
        chmod 777 "$dl"
        local pkg
        pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image/{print $2; exit}')
        [[ -n $pkg ]] || { as_root apt-get update -qq >/dev/null; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image/{print $2; exit}'); }
        (cd "$dl" && apt-get download "$pkg" busybox-static >/dev/null 2>&1)
        rm -rf "$VMDIR/kimg" "$VMDIR/bb"
        dpkg-deb -x "$dl"/linux-image-*.deb "$VMDIR/kimg"
        dpkg-deb -x "$dl"/busybox-static_*.deb "$VMDIR/bb"
        rm -rf "$dl"
        local kv
        kv=$(ls "$VMDIR/kimg/lib/modules")
        depmod -b "$VMDIR/kimg" "$kv"
        touch "$VMDIR/ready"
    fi
}

run() {
    installed || { echo "nfs-kernel-vm: not installed; run scripts/install-test-deps.sh" >&2; exit 2; }
    local test port kv
    test=$(readlink -f "$1")
    port=$2
    shift 2
    kv=$(ls "$VMDIR/kimg/lib/modules")
    w=$(mktemp -d) # global: the EXIT trap runs outside this function
    trap 'rm -rf "$w"' EXIT
    mkdir -p "$w"/root/{bin,proc,sys,dev,mnt,tmp,mods,extra}
    cp "$VMDIR/bb/bin/busybox" "$w/root/bin/"
    for m in nfsv3 virtio_net virtio_pci; do modprobe -d "$VMDIR/kimg" -S "$kv" --show-depends $m; done |
        awk '$1=="insmod" && !s[$2]++{print $2}' | nl -nrz -w2 |
        while read -r i p; do cp "$p" "$w/root/mods/$i-$(basename "$p")"; done
    for f in "$@"; do
        cp "$f" "$w/root/extra/"
        if [[ ${LIBS:-0} == 1 ]]; then
            # Not every FILE is a dynamic executable (scripts, configuration): no libraries then.
            { ldd "$f" 2>/dev/null || true; } | { grep -o '/[^ ]*' || true; } | while read -r lib; do
                mkdir -p "$w/root$(dirname "$lib")"
                cp -L "$lib" "$w/root$lib"
            done
        fi
    done
    cat >"$w/root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin; export PATH=/bin:/extra
mount -t proc p /proc; mount -t sysfs s /sys; mount -t devtmpfs d /dev; mount -t tmpfs t /tmp
for m in /mods/*.ko; do insmod \$m; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
export NFSOPTS=vers=3,proto=tcp,port=$port,mountport=$port,mountproto=tcp,nolock,addr=10.0.2.2
sh /test.sh; echo "=== GUEST EXIT rc=\$?"; sync; poweroff -f
INIT
    chmod +x "$w/root/init"
    cp "$test" "$w/root/test.sh"
    (cd "$w/root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$w/initrd.gz"
    timeout "${TIMEOUT:-600}" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -m "${MEM:-1024}" -smp 2 \
        -nographic -no-reboot -kernel "$VMDIR/kimg/boot/vmlinuz-$kv" -initrd "$w/initrd.gz" \
        -append "console=ttyS0 panic=-1 loglevel=3" -nic user,model=virtio-net-pci </dev/null
}

case ${1:-} in
install) install ;;
run)
    [[ $# -ge 3 ]] || { echo "usage: $0 run GUEST_SCRIPT PORT [FILE...]" >&2; exit 2; }
    shift
    run "$@"
    ;;
*)
    echo "usage: $0 install | run GUEST_SCRIPT PORT [FILE...]" >&2
    exit 2
    ;;
esac
