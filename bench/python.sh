#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Bench of the Python binding: acquire through Python beside the C library, one command.
#
# Usage: bench/python.sh   (as root; the table goes to stdout, progress to stderr)
# VMNET_BROKER_BUILD_DIR overrides the build directory (default ./build).
# Installs the checkout with pip into $build/bench-python-venv (PyPI for the
# build requirements, cached by pip), builds the broker and the C helper,
# then measures inside private network, mount and PID namespaces.
set -eu

NAME=bench/python.sh
. "$(dirname "$0")/common.sh"

bench_configure
cmake --build "$build" --target vmnet-broker vmnet-broker-acquire-loop -j "$(nproc)" >&2

venv=$build/bench-python-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
# The extension's libclient built as the C helper's is (RelWithDebInfo), so
# the two differ only by the binding.
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --config-settings=cmake.build-type=RelWithDebInfo \
    --force-reinstall --no-deps "$root" >&2

# Printed with the figures: an unoptimized C side would flatter Python.
build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$build/CMakeCache.txt")

# Private namespaces: the bridge never touches the host, /sys shows this
# namespace's links, and everything started dies with the bench.
exec unshare --net --mount --pid --fork --kill-child --mount-proc sh -c '
    mount -t sysfs sysfs /sys && ip link set lo up &&
    cd / && exec "$0" "$@"' "$venv/bin/python" "$root/bench/python_acquire.py" \
    "$build/broker/vmnet-broker" "$build/bench/libvmnet-broker-acquire-loop.so" \
    "${build_type:-none}"
