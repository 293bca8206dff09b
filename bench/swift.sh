#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Bench: acquire of a held network through the Swift binding beside the same
# call through the C library, against one broker in a private namespace.
#
# Usage: bench/swift.sh   (as root; the table goes to stdout, progress to stderr)
# VMNET_BROKER_BUILD_DIR overrides the build directory (default ./build).
set -eu

NAME=bench/swift.sh
. "$(dirname "$0")/common.sh"
if ! command -v swift >/dev/null 2>&1; then
    if [ -x /opt/swift/usr/bin/swift ]; then
        PATH="/opt/swift/usr/bin:$PATH"
    else
        echo "bench/swift.sh: no Swift toolchain (swift not on PATH nor in /opt/swift/usr/bin)" >&2
        exit 1
    fi
fi

bench_configure
cmake --build "$build" --target vmnet-broker -j "$(nproc)" >&2
# Optimized, like an app's release build; the C calls it compares with are
# the same libclient sources, compiled in the same build.
swift build -c release --package-path "$root" --scratch-path "$build/swiftpm-release" \
    --product vmnet-broker-swift-bench >&2
bench=$build/swiftpm-release/release/vmnet-broker-swift-bench
broker=$build/broker/vmnet-broker
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$build/CMakeCache.txt")
echo "broker build type: ${build_type:-none (unoptimized)}; Swift and its C baseline: release" >&2

# A private network and PID namespace: the broker and its dnsmasq end with
# the bench however it ends.
exec unshare -n -p --fork --kill-child --mount-proc sh -c '
    set -eu
    ip link set lo up
    dir=$(mktemp -d)
    mkdir "$dir/conf"
    "$1" --socket "$dir/sock" --config-dir "$dir/conf" 2>"$dir/log" &
    tries=0
    until [ -S "$dir/sock" ]; do
        tries=$((tries + 1))
        [ $tries -lt 3000 ] || { cat "$dir/log" >&2; exit 1; }
        sleep 0.01
    done
    status=0
    "$2" "$dir/sock" || status=$?
    kill $! 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$dir"
    exit $status' sh "$broker" "$bench"
