#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs the Go binding's checks for ctest: go test (in a private netns), gofmt + go vet, go get.
#
# Usage: run-tests.sh test|lint|goget
#   VMNET_BROKER_BIN       the broker binary to test against (test, goget)
#   VMNET_BROKER_GO_BUILD  where Go's caches and scratch files go
#                          (default: build-go-cache at the top of the checkout)
# Exits 77 (ctest: skipped) with the reason when Go or root is missing.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:?usage: run-tests.sh test|lint|goget}
build=${VMNET_BROKER_GO_BUILD:-$root/build-go-cache}

if ! command -v go >/dev/null 2>&1; then
    echo "skipped: go is not installed (apt-get install golang-go)" >&2
    exit 77
fi
mkdir -p "$build"
build=$(cd "$build" && pwd)
# Standard library only and no network: nothing is ever downloaded.
export GOCACHE="$build/gocache" GOPATH="$build/gopath" \
    GOMODCACHE="$build/gopath/pkg/mod" GOPROXY=off GOFLAGS= \
    GO111MODULE=on CGO_ENABLED=1 GONOSUMDB= GOSUMDB=off
cd "$root"

need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "skipped: needs root (the broker makes bridges in a private" \
            "network namespace)" >&2
        exit 77
    fi
    : "${VMNET_BROKER_BIN:?VMNET_BROKER_BIN must name the broker binary}"
    export VMNET_BROKER_BIN
}

# Runs "$@" in new network, mount and PID namespaces with lo up and /sys
# showing the new namespace: nothing reaches the host's interfaces, and
# everything started inside (the broker, its dnsmasq) dies with it.
in_netns() {
    VMNET_BROKER_GO_OUTER_NETNS=$(readlink /proc/self/ns/net)
    export VMNET_BROKER_GO_OUTER_NETNS
    unshare -n -m -p -f --kill-child --mount-proc \
        sh -c 'mount -t sysfs sysfs /sys && ip link set lo up && exec "$@"' \
        sh "$@"
}

case "$mode" in
test)
    need_root
    # Build first, outside the namespaces, so a compile error reads plainly.
    go vet ./bindings/go/
    export VMNET_BROKER_GO_REQUIRE=1
    in_netns go test -race -count=1 -timeout 10m -v ./bindings/go/
    ;;
lint)
    unformatted=$(gofmt -l bindings/go examples/go-vm-manager bench/go)
    if [ -n "$unformatted" ]; then
        echo "not gofmt'd:" $unformatted >&2
        exit 1
    fi
    go vet ./bindings/go/ ./examples/go-vm-manager/ ./bench/go/...
    echo "gofmt and go vet: clean"
    ;;
goget)
    need_root
    exec "$root/bindings/go/goget-test.sh" "$build"
    ;;
*)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
