#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Proves `go get` builds the binding from the module alone, then (vmnetbroker_system) from an install.
#
# Usage: goget-test.sh BUILD_DIR   (run by run-tests.sh goget, as root)
# 1. Zips the checkout's module as the proxy would (testdata/modzip) into a
#    GOPROXY=file:// tree, then in a fresh module outside the checkout runs
#    `go get MODULE@v0.1.0` and `go build` of testdata/consumer, with an
#    empty module cache, and runs it against the broker in a private netns.
# 2. When VMNET_BROKER_CMAKE_BUILD names the CMake build: installs it into a
#    temporary DESTDIR and builds the same program with -tags
#    vmnetbroker_system against that install (pkg-config), and runs it too.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$1
module=github.com/vmnet-broker/vmnet-broker
version=v0.1.0

# The module's files are the ones version control holds, as for the proxy.
if ! command -v git >/dev/null 2>&1; then
    echo "skipped: git is not installed (apt-get install git)" >&2
    exit 77
fi
if ! git -C "$root" rev-parse --show-toplevel >/dev/null 2>&1; then
    echo "skipped: not a git checkout" >&2
    exit 77
fi

work=$(mktemp -d /tmp/vmnet-broker-goget.XXXXXX)
broker_pid=
cleanup() {
    [ -z "$broker_pid" ] || kill "$broker_pid" 2>/dev/null || true
    # The module cache is read-only unless -modcacherw; it was set.
    rm -rf "$work"
}
trap cleanup EXIT
chmod 755 "$work"

# The files a commit of the worktree would hold.
(cd "$root" && git ls-files -co --exclude-standard) |
    go run "$root/bindings/go/testdata/modzip/main.go" \
        "$module" "$version" "$root" "$work/proxy"

mkdir "$work/consumer"
cp "$root/bindings/go/testdata/consumer/main.go" "$work/consumer/"
cd "$work/consumer"
# A fresh module cache and no workspace: nothing comes from the checkout.
export GOMODCACHE="$work/modcache" GOFLAGS=-modcacherw GOWORK=off \
    GOPROXY="file://$work/proxy" GONOSUMDB="$module" GONOSUMCHECK=1 \
    GOSUMDB=off
go mod init example.com/consumer >/dev/null 2>&1
go get "$module@$version"
go build -o consumer-source .
echo "go get $module@$version and go build: ok"

if [ -n "${VMNET_BROKER_CMAKE_BUILD:-}" ]; then
    # DESTDIR: even the units' absolute destination stays inside $work.
    DESTDIR="$work/prefix" cmake --install "$VMNET_BROKER_CMAKE_BUILD" >/dev/null
    pcdir=$(dirname "$(find "$work/prefix" -name vmnet-broker.pc | head -n 1)")
    PKG_CONFIG_PATH="$pcdir" go build -tags vmnetbroker_system -o consumer-system .
    echo "go build -tags vmnetbroker_system against an install: ok"
fi

VMNET_BROKER_GO_OUTER_NETNS=$(readlink /proc/self/ns/net)
export VMNET_BROKER_BIN VMNET_BROKER_GO_OUTER_NETNS
mkdir "$work/config.d"
# In a private network, mount and PID namespace: the broker never sees
# the host's interfaces and dies with the namespace.
unshare -n -m -p -f --kill-child --mount-proc sh -eu -c '
    work=$1
    [ "$(readlink /proc/self/ns/net)" != "$VMNET_BROKER_GO_OUTER_NETNS" ]
    ip link set lo up
    # The plain names of the default instance ("vmb-host"), which the check expects.
    VMNET_BROKER_INSTANCE=default "$VMNET_BROKER_BIN" --socket "$work/sock" --config-dir "$work/config.d" \
        --idle-timeout 600 --state-dir "$work/state" 2>"$work/broker.log" &
    pid=$!
    tries=0
    until [ -S "$work/sock" ]; do
        tries=$((tries + 1))
        if [ $tries -gt 2000 ]; then
            cat "$work/broker.log" >&2
            exit 1
        fi
        sleep 0.01
    done
    status=0
    for program in "$work"/consumer/consumer-*; do
        lib_dir=$(dirname "$(find "$work" -name "libvmnet-broker.so*" 2>/dev/null | head -n 1)")
        out=$(VMNET_BROKER_SOCKET="$work/sock" LD_LIBRARY_PATH="$lib_dir" "$program") || status=1
        echo "$(basename "$program"): $out"
        case "$out" in
        "library 0.1.0 network host vmb-host not found true") ;;
        *) status=1 ;;
        esac
    done
    kill "$pid"
    wait "$pid" || true
    exit $status
' sh "$work"
