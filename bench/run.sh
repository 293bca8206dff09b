#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Every benchmark, one command: the broker's, then each binding's against C.
#
# Usage: bench/run.sh   (as root; the tables go to stdout, progress to stderr)
# VMNET_BROKER_BUILD_DIR overrides the build directory (default ./build).
# VMNET_BROKER_BENCH_ONLY=SECTION runs one section of the broker's bench and
# no binding's.
set -eu

NAME=bench/run.sh
. "$(dirname "$0")/common.sh"

# The table's first line names the build type.
bench_configure
cmake --build "$build" --target vmnet-broker-bench -j "$(nproc)" >&2

# The bench also enters a network namespace of its own, so it is safe run
# directly; this one makes sure nothing it starts ever sees the host's
# interfaces. In a PID namespace of its own too, everything it starts (the
# broker, the broker's dnsmasq instances, the guests' programs) dies with it
# however it ends: --kill-child kills the bench when unshare dies (Ctrl-C),
# and the kernel kills the rest with the bench.
status=0
unshare -n -p --kill-child --mount-proc "$build/bench/vmnet-broker-bench" ||
    status=$?
[ -z "${VMNET_BROKER_BENCH_ONLY:-}" ] || exit "$status"

# Each binding's acquire beside the C library's, where its toolchain is
# here; a missing one is said, not counted as a failure of the others.
bench_binding() {
    script=$1
    need=$2
    echo
    if ! command -v "$need" >/dev/null 2>&1 && ! [ -x "/opt/swift/usr/bin/$need" ]; then
        echo "$script: skipped: $need is not installed"
        return 0
    fi
    "$root/$script" || status=$?
}
bench_binding bench/python.sh python3
bench_binding bench/go-acquire.sh go
bench_binding bench/swift.sh swift
exit "$status"
