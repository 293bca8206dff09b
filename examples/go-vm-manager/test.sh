#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs go-vm-manager for real: two QEMU guests take DHCP leases; Ctrl-C stops a booting one.
#
# Usage: test.sh   (ctest go/example, as root)
#   VMNET_BROKER_BIN         the broker to run
#   VMNET_BROKER_CLIENT_BIN  vmnet-broker-client, to read the broker's status
#   VMNET_BROKER_GO_BUILD    Go's caches and the built example
# Exits 77 (skipped) saying what is missing: root, go, QEMU, a kernel with
# its modules, a static busybox (for tests/qemu/make-initramfs.sh).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${VMNET_BROKER_GO_BUILD:?}
: "${VMNET_BROKER_BIN:?}" "${VMNET_BROKER_CLIENT_BIN:?}"

skip() {
    echo "skipped: $*" >&2
    exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (the broker makes bridges in a private netns)"
command -v go >/dev/null 2>&1 || skip "go is not installed (apt-get install golang-go)"
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
    skip "qemu-system-x86_64 is not installed (apt-get install qemu-system-x86)"
kernel=
for k in /boot/vmlinuz-*; do
    [ -e "$k" ] && [ -d "/lib/modules/${k#/boot/vmlinuz-}" ] && kernel=$k
done
[ -n "$kernel" ] || skip "no /boot/vmlinuz-VERSION with /lib/modules/VERSION (apt-get install linux-image-cloud-amd64)"
if ! [ -x /bin/busybox ] || ldd /bin/busybox >/dev/null 2>&1; then
    skip "no static /bin/busybox for the guest (apt-get install busybox-static)"
fi

mkdir -p "$build"
export GOCACHE="$build/gocache" GOPATH="$build/gopath" \
    GOMODCACHE="$build/gopath/pkg/mod" GOPROXY=off GOFLAGS= CGO_ENABLED=1
(cd "$root" && go build -o "$build/go-vm-manager" ./examples/go-vm-manager)

work=$(mktemp -d /tmp/vmnet-broker-go-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$root/tests/qemu/make-initramfs.sh" "${kernel#/boot/vmlinuz-}" "$work/guest.cpio"
mkdir "$work/config.d"

# New network, mount and PID namespaces: the broker, its dnsmasq and the
# guests see none of the host's interfaces and die with the namespace.
# TCG, not KVM: nested KVM cannot run every guest (the C QEMU test falls
# back the same way), and the test must not depend on it.
export VMNET_BROKER_SOCKET="$work/broker.sock"
unshare -n -m -p -f --kill-child --mount-proc sh -eu -c '
    work=$1 manager=$2 kernel=$3
    ip link set lo up
    "$VMNET_BROKER_BIN" --socket "$VMNET_BROKER_SOCKET" \
        --config-dir "$work/config.d" --idle-timeout 600 \
        --state-dir "$work/state" 2>"$work/broker.log" &
    broker=$!
    until "$VMNET_BROKER_CLIENT_BIN" status >/dev/null 2>&1; do sleep 0.05; done
    fail() {
        echo "FAIL: $*" >&2
        kill "$broker"
        exit 1
    }

    # Two guests: each takes a lease, with its own MAC, and powers off.
    "$manager" -count 2 -accel tcg -memory 128 -kernel "$kernel" \
        -initrd "$work/guest.cpio" >"$work/run.out" 2>&1 ||
        { cat "$work/run.out"; fail "the manager failed"; }
    grep -E "^(network|guest [0-9]:)|VMNET-GUEST-(LEASE|NO-LEASE)" "$work/run.out"
    leases=$(grep -c "VMNET-GUEST-LEASE 192\.168\." "$work/run.out" || true)
    macs=$(grep -o "VMNET-GUEST-LEASE [^ ]* [^ ]*" "$work/run.out" |
        cut -d" " -f3 | sort -u | wc -l)
    [ "$leases" -eq 2 ] && [ "$macs" -eq 2 ] ||
        { cat "$work/run.out"; fail "want 2 leases with 2 MACs"; }

    # Ctrl-C while a guest boots: the manager stops it and exits.
    "$manager" -count 1 -accel tcg -memory 128 -kernel "$kernel" \
        -initrd "$work/guest.cpio" >"$work/int.out" 2>&1 &
    manager_pid=$!
    until grep -q "^guest 0: pid" "$work/int.out" 2>/dev/null; do
        kill -0 "$manager_pid" 2>/dev/null || fail "the manager exited early"
        sleep 0.05
    done
    kill -INT "$manager_pid"
    wait "$manager_pid" || { cat "$work/int.out"; fail "the manager failed after SIGINT"; }
    grep -q "stopping the guests" "$work/int.out" ||
        { cat "$work/int.out"; fail "no stop on SIGINT"; }
    grep -E "^(interrupt|guest 0)" "$work/int.out"
    # Everything closed: the network has no peer left.
    "$VMNET_BROKER_CLIENT_BIN" status --json >"$work/status.json"
    grep -q "\"peers\": *1" "$work/status.json" && fail "a peer is left: $(cat "$work/status.json")"
    kill "$broker"
    wait "$broker" || true
    echo "go-vm-manager: ok"
' sh "$work" "$build/go-vm-manager" "$kernel"
