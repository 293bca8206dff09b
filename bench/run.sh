#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Builds the benchmark if needed and runs it in a private network namespace.
#
# Usage: bench/run.sh   (as root; the table goes to stdout, progress to stderr)
# VMNET_BROKER_BUILD_DIR overrides the build directory (default ./build).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${VMNET_BROKER_BUILD_DIR:-$root/build}

if [ "$(id -u)" -ne 0 ]; then
    echo "bench/run.sh: must run as root: the broker makes bridges" \
        "(in a private network namespace, never on the host's interfaces)" >&2
    exit 1
fi

# A fresh build directory is optimized; an existing one is used as it is
# configured (the table's first line names its build type).
if [ ! -f "$build/CMakeCache.txt" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DVMNET_BROKER_BUILD_BENCH=ON >&2
elif grep -q '^VMNET_BROKER_BUILD_BENCH:BOOL=OFF' "$build/CMakeCache.txt"; then
    cmake -S "$root" -B "$build" -DVMNET_BROKER_BUILD_BENCH=ON >&2
fi
cmake --build "$build" --target vmnet-broker-bench -j "$(nproc)" >&2

# The bench also enters a network namespace of its own, so it is safe run
# directly; this one makes sure nothing it starts ever sees the host's
# interfaces. In a PID namespace of its own too, everything it starts (the
# broker, the broker's dnsmasq instances, the guests' programs) dies with it
# however it ends: --kill-child kills the bench when unshare dies (Ctrl-C),
# and the kernel kills the rest with the bench.
exec unshare -n -p --kill-child --mount-proc "$build/bench/vmnet-broker-bench"
