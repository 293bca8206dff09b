#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Bench: Go binding's acquire of a held network beside the C library's, in one run.
#
# Usage: bench/go-acquire.sh   (as root; the table goes to stdout)
# VMNET_BROKER_BUILD_DIR overrides the CMake build directory (default
# ./build); Go's caches go into it too.
set -eu

NAME=bench/go-acquire.sh
. "$(dirname "$0")/common.sh"
if ! command -v go >/dev/null 2>&1; then
    echo "bench/go-acquire.sh: go is not installed (apt-get install golang-go)" >&2
    exit 1
fi

bench_configure
cmake --build "$build" --target vmnet-broker -j "$(nproc)" >&2

export GOCACHE="$build/go-bench/gocache" GOPATH="$build/go-bench/gopath" \
    GOMODCACHE="$build/go-bench/gopath/pkg/mod" GOPROXY=off GOFLAGS= \
    CGO_ENABLED=1
(cd "$root" && go build -o "$build/go-bench/vmnet-broker-go-bench" ./bench/go) >&2

# Network, mount and PID namespaces of its own: the broker and its dnsmasq
# see none of the host's interfaces and die with the bench.
exec unshare -n -m -p -f --kill-child --mount-proc sh -c \
    'ip link set lo up && exec "$1" -broker "$2"' sh \
    "$build/go-bench/vmnet-broker-go-bench" "$build/broker/vmnet-broker"
