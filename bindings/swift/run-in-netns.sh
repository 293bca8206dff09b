#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Runs a command (the Swift tests) as root in a private network, mount and PID
# namespace, with lo up and this namespace's sysfs at /sys; exits 77 (ctest:
# skipped) without root.
#
# Usage: run-in-netns.sh COMMAND [ARG...]
set -eu

if [ "$(id -u)" -ne 0 ]; then
    echo "skipped: the Swift tests need root (they start the broker, which" \
        "makes bridges, in a private network namespace)" >&2
    exit 77
fi

# The PID namespace ends everything the tests start (the broker, its dnsmasq
# processes) with the command, however it ends. The mount namespace makes
# /sys show this namespace's links (a TAP's bridge) without touching the
# host's mounts. VMNET_BROKER_SWIFT_NETNS tells the tests they are inside.
export VMNET_BROKER_SWIFT_NETNS=1
exec unshare --net --mount --propagation private --pid --fork --kill-child \
    --mount-proc sh -c '
        ip link set lo up || exit 1
        mount -t sysfs sysfs /sys || exit 1
        exec "$@"' sh "$@"
