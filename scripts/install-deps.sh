#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages vmnet-broker needs (build, run, test), saying what it installs and naming what it cannot.
#
# Usage: scripts/install-deps.sh [--tests] [--qemu-kernel] [--check]
#   (none)         what building and running the broker needs (examples/demo.sh)
#   --tests        also what the test suite needs (Check, clang-format, QEMU,
#                  busybox, systemd-socket-activate, groff for the man pages,
#                  Python venv and headers and git for the bindings)
#   --qemu-kernel  also a kernel image for the QEMU guest test. Opt-in: it
#                  installs a kernel on the machine, which nobody should get
#                  unasked; without it that one test is reported as skipped.
#   --check        install nothing: list what is missing and exit 1 if
#                  anything is
#
# Idempotent: installed packages are left alone and apt-get runs only when
# something is missing. Exits 0 when everything asked for is installed, 1
# (after naming the packages) when something is missing and cannot be
# installed here, 2 on a usage error.
set -euo pipefail

build_packages=(
    build-essential cmake pkg-config
    libjansson-dev libsystemd-dev libnl-3-dev libnl-route-3-dev libnftables-dev
)
run_packages=(dnsmasq-base nftables iproute2 util-linux)
test_packages=(
    check libsubunit-dev clang-format clang iputils-ping procps systemd
    busybox-static qemu-system-x86 groff-base dpkg
    # The bindings' tests: a Python venv with pip and Python.h (pip fetches
    # scikit-build-core, swig, pytest and build from PyPI), git for SwiftPM's
    # URL dependencies.
    python3 python3-venv python3-pip python3-dev git
)
kernel_packages=(linux-image-cloud-amd64)

want_tests=0 want_kernel=0 check_only=0
for arg in "$@"; do
    case $arg in
    --tests) want_tests=1 ;;
    --qemu-kernel) want_kernel=1 ;;
    --check) check_only=1 ;;
    -h | --help)
        sed -n '5,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "install-deps: unknown option '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

wanted=("${build_packages[@]}" "${run_packages[@]}")
[ "$want_tests" = 1 ] && wanted+=("${test_packages[@]}")
[ "$want_kernel" = 1 ] && wanted+=("${kernel_packages[@]}")

# Missing packages, by dpkg's own record (no dpkg-query at all: every one).
missing_packages() {
    local p
    for p in "${wanted[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
            grep -q "install ok installed"; then
            echo "$p"
        fi
    done
}

mapfile -t missing < <(missing_packages)
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#wanted[@]} packages are installed"
    exit 0
fi
echo "install-deps: missing: ${missing[*]}"
if [ "$check_only" = 1 ]; then
    exit 1
fi

# Where installing is impossible, say so and name the command that would.
sudo=()
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: not root and no sudo: as root, run" >&2
        echo "    apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: no apt-get (not Debian?): install these packages," \
        "or your distribution's equivalents: ${missing[*]}" >&2
    exit 1
fi

echo "install-deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get update -q ||
    ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    mapfile -t still < <(missing_packages)
    echo "install-deps: apt-get failed; still missing: ${still[*]:-none}" >&2
    exit 1
fi
mapfile -t still < <(missing_packages)
if [ ${#still[@]} -gt 0 ]; then
    echo "install-deps: still missing after apt-get: ${still[*]}" >&2
    exit 1
fi
echo "install-deps: installed ${#missing[@]} packages"
