#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# examples/swift builds as a package of its own and runs against the real
# broker: printing the network, and exec'ing "QEMU" (a stand-in script that
# checks it got the TAP descriptor and the MAC) with the descriptor.
#
# Usage: example-test.sh SOURCE_DIR BROKER_BIN SCRATCH_DIR
# Run inside run-in-netns.sh. SWIFT names the swift driver.
set -eu

src=$1
broker=$2
scratch=$3
swift=${SWIFT:-swift}

if [ "${VMNET_BROKER_SWIFT_NETNS:-}" != 1 ]; then
    echo "example-test.sh: run it through run-in-netns.sh" >&2
    exit 2
fi

"$swift" build --package-path "$src/examples/swift" --scratch-path "$scratch"
example=$scratch/debug/vmnet-broker-qemu

work=$(mktemp -d /tmp/vmnet-broker-swift-example.XXXXXX)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. "$(dirname "$0")/start-broker.sh"
start_broker "$broker" "$work"
export VMNET_BROKER_SOCKET="$work/broker.sock"

fail() {
    echo "example-test.sh: $1" >&2
    echo "broker log:" >&2
    cat "$work/broker.log" >&2
    exit 1
}

# Without QEMU: the network and the interface, printed.
out=$(VMNET_BROKER_QEMU=/nonexistent "$example")
echo "$out"
case $out in
*"network shared (shared) on bridge vmb-shared"*"interface vmt-"*"no QEMU found"*) ;;
*) fail "the example did not print the network" ;;
esac

# With "QEMU": a stand-in that shows what it was given and inherited.
cat >"$work/qemu" <<'QEMU'
#!/bin/sh
# $1 -netdev tap,id=net0,fd=N,vhost=X $3 -device virtio-net-pci,...,mac=M ...
fd=${2#*fd=}
fd=${fd%%,*}
echo "args: $*"
echo "tap: $(grep '^iff:' "/proc/$$/fdinfo/$fd")"
QEMU
chmod +x "$work/qemu"
out=$(VMNET_BROKER_QEMU="$work/qemu" "$example" --network host -- -nographic)
echo "$out"
case $out in
*"-device virtio-net-pci,netdev=net0,mac="*" -nographic"*) ;;
*) fail "the example did not pass QEMU the device, the MAC and the arguments" ;;
esac
echo "$out" | grep -q "^tap: iff:.vmt-" ||
    fail "the descriptor QEMU got is not a TAP device"
echo "examples/swift printed the network and exec'd QEMU with the TAP descriptor"
