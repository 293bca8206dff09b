#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The dependency promise: a fresh package outside the checkout depends on a
# clone of it by file:// URL and version, builds, and acquires `shared` from
# the real broker.
#
# Usage: dependency-test.sh SOURCE_DIR BROKER_BIN
# Run inside run-in-netns.sh (it starts a broker, which makes bridges).
# SWIFT names the swift driver (default: swift on PATH).
set -eu

src=$1
broker=$2
swift=${SWIFT:-swift}

if [ "${VMNET_BROKER_SWIFT_NETNS:-}" != 1 ]; then
    echo "dependency-test.sh: run it through run-in-netns.sh" >&2
    exit 2
fi
if ! command -v git >/dev/null 2>&1; then
    echo "skipped: git is not installed (SwiftPM needs it for URL dependencies)" >&2
    exit 77
fi
if ! git -C "$src" rev-parse --git-dir >/dev/null 2>&1; then
    echo "skipped: $src is not a git checkout" >&2
    exit 77
fi
version=$(sed -n 's/^project(vmnet-broker VERSION \([0-9][0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
if [ -z "$version" ]; then
    echo "cannot read the version from $src/CMakeLists.txt" >&2
    exit 1
fi

work=$(mktemp -d /tmp/vmnet-broker-swift-dependency.XXXXXX)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# A clone, then the working tree as it is now (committed or not, minus what
# .gitignore leaves out) committed on top and tagged, so the test covers the
# current tree as a user would get it. SwiftPM names a URL dependency after
# the URL's last component, so the clone is called vmnet-broker, as the
# repository is.
git clone -q "$src" "$work/vmnet-broker"
find "$work/vmnet-broker" -mindepth 1 -maxdepth 1 ! -name .git -exec rm -rf {} +
(cd "$src" && git ls-files -z --cached --others --exclude-standard) |
    tar -C "$src" --null --ignore-failed-read -T - -cf - 2>/dev/null |
    tar -C "$work/vmnet-broker" -xf -
git -C "$work/vmnet-broker" add -A
git -C "$work/vmnet-broker" -c user.name=test -c user.email=test@localhost \
    commit -q --allow-empty -m "the tree under test"
git -C "$work/vmnet-broker" tag "v$version"

# A package of its own, as a user would write it.
mkdir -p "$work/consumer/Sources/consumer"
cat >"$work/consumer/Package.swift" <<MANIFEST
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "consumer",
    dependencies: [
        .package(url: "file://$work/vmnet-broker", from: "$version"),
    ],
    targets: [
        .executableTarget(
            name: "consumer",
            dependencies: [.product(name: "VmnetBroker", package: "vmnet-broker")]
        ),
    ]
)
MANIFEST
cat >"$work/consumer/Sources/consumer/main.swift" <<'PROGRAM'
import VmnetBroker

let network = try VmnetBroker.acquireNetwork(named: "shared")
print("acquired \(network.name) on \(network.bridge) (library \(VmnetBroker.version))")
do {
    _ = try VmnetBroker.acquireNetwork(named: "no-such-network")
    print("acquired a network that does not exist")
} catch VmnetBroker.Error.notFound {
    print("no-such-network: not found")
}
PROGRAM

# No shared dependency cache: each run's repository is a new URL.
"$swift" build --package-path "$work/consumer" --disable-dependency-cache

. "$(dirname "$0")/start-broker.sh"
start_broker "$broker" "$work"

output=$(VMNET_BROKER_SOCKET="$work/broker.sock" \
    "$work/consumer/.build/debug/consumer")
echo "$output"
case $output in
*"acquired shared on vmb-shared"*"no-such-network: not found"*) ;;
*)
    echo "the consumer did not acquire shared; broker log:" >&2
    cat "$work/broker.log" >&2
    exit 1
    ;;
esac
echo "a package depending on vmnet-broker $version by URL built and acquired shared"
