#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds everything, then shows the broker's main job end to end in a private network namespace.
#
# Usage: examples/demo.sh [--host-namespace]
#   --host-namespace  run in the machine's own network namespace (creates a
#                     real bridge there); the default is a private one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# Its own build folder: the tests-off cache must not leak into the
# test command's build/.
build=${BUILD_DIR:-$root/build-demo}

if [ -z "${VMNET_BROKER_DEMO_NETNS:-}" ]; then
    [ "$(id -u)" = 0 ] || { echo "demo: run as root (it creates a bridge)" >&2; exit 1; }
    echo "== installing what the build and the broker need (scripts/install-deps.sh)"
    "$root/scripts/install-deps.sh"
    echo "== building in $build"
    # cmake's own output stays visible: a missing library is named there.
    cmake -S "$root" -B "$build" -DVMNET_BROKER_BUILD_TESTS=OFF -DVMNET_BROKER_BUILD_BENCH=OFF
    cmake --build "$build" -j2
    if [ "${1:-}" != "--host-namespace" ]; then
        # A private network namespace: the machine's own interfaces are untouched.
        exec unshare --net env VMNET_BROKER_DEMO_NETNS=1 "$0" "$@"
    fi
fi
if [ -n "${VMNET_BROKER_DEMO_NETNS:-}" ]; then
    ip link set lo up
    echo "== in a private network namespace"
fi

broker=$build/broker/vmnet-broker
client=$build/cli/vmnet-broker-client
tmp=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill -TERM "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

export VMNET_BROKER_SOCKET=$tmp/vmnet-broker.sock
# A private runtime directory, with the plain names ("vmb-shared") the
# default /run/vmnet-broker broker has (docs/linux-networking.md).
VMNET_BROKER_INSTANCE=default "$broker" --socket "$VMNET_BROKER_SOCKET" --config-dir "$tmp/config.d" \
    --idle-timeout 1 2>"$tmp/broker.log" &
broker_pid=$!
for _ in $(seq 100); do [ -S "$VMNET_BROKER_SOCKET" ] && break; sleep 0.05; done

echo "== broker started (pid $broker_pid); a client acquires 'shared' and holds it while a command runs"
"$client" run --network shared -- sh -c '
    echo "-- the network the client got:"
    echo "$VMNET_BROKER_NETWORKS"
    echo "-- the bridge the broker made:"
    ip -brief address show dev vmb-shared
    echo "-- broker status while the network is held:"
    "$0" status' "$client"

echo "== the command exited, so its connection closed and the reference was released:"
"$client" status
sleep 1.5
echo "== after the 1 s idle delay the network is gone:"
"$client" status
ip -brief link show dev vmb-shared 2>/dev/null || echo "(no bridge vmb-shared)"

kill -TERM "$broker_pid"
wait "$broker_pid" && echo "== broker exited 0 on SIGTERM with no peers"
broker_pid=
echo "== broker log:"
cat "$tmp/broker.log"
