# SPDX-License-Identifier: Apache-2.0
# Shared start of the bench scripts: root check and an optimized build folder.
#
# Sourced with NAME set to the script's name; sets root and build
# (VMNET_BROKER_BUILD_DIR overrides the default ./build).

root=$(cd "$(dirname "$0")/.." && pwd)
build=${VMNET_BROKER_BUILD_DIR:-$root/build}

if [ "$(id -u)" -ne 0 ]; then
    echo "$NAME: must run as root: the broker makes bridges" \
        "(in a private network namespace, never on the host's interfaces)" >&2
    exit 1
fi

# A fresh build directory is optimized (RelWithDebInfo); an existing one is
# used as it is configured, with the benchmarks turned on if they were off.
bench_configure() {
    if [ ! -f "$build/CMakeCache.txt" ]; then
        cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
            -DVMNET_BROKER_BUILD_BENCH=ON >&2
    elif grep -q '^VMNET_BROKER_BUILD_BENCH:BOOL=OFF' "$build/CMakeCache.txt"; then
        cmake -S "$root" -B "$build" -DVMNET_BROKER_BUILD_BENCH=ON >&2
    fi
}
