#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `cpack -G DEB` builds the .deb, and `dpkg -c` lists every path README.md says it installs.
#
# Usage: test_deb.sh BUILD_DIR README.md
# README.md lists the paths between "<!-- deb-contents:begin -->" and
# "<!-- deb-contents:end -->", one per line (in a code block).
set -euo pipefail
build=$1
readme=$2
command -v dpkg-deb >/dev/null || {
    echo "skipped: dpkg-deb is not installed (Debian package dpkg)"
    exit 77
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

(cd "$build" && cpack -G DEB -B "$tmp/out") >"$tmp/log" 2>&1 || {
    cat "$tmp/log" >&2
    exit 1
}
deb=$(ls "$tmp"/out/vmnet-broker_*.deb)
dpkg -c "$deb" | awk '{print $6}' | sed 's|^\./|/|' >"$tmp/contents"
mapfile -t wanted < <(sed -n '/<!-- deb-contents:begin -->/,/<!-- deb-contents:end -->/p' "$readme" |
    grep '^/')
[ ${#wanted[@]} -gt 5 ] || fail "README.md lists only ${#wanted[@]} paths between the deb-contents markers"
for path in "${wanted[@]}"; do
    grep -qxF "$path" "$tmp/contents" || fail "README says the .deb installs $path; dpkg -c does not list it"
done
# The unit starts the packaged daemon.
dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/systemd/system/vmnet-broker.service >"$tmp/unit"
grep -qx "ExecStart=/usr/sbin/vmnet-broker" "$tmp/unit" || fail "unit: $(grep ExecStart "$tmp/unit")"
# The group is made at install time.
dpkg-deb -e "$deb" "$tmp/control"
grep -q "addgroup --system vmnet-broker" "$tmp/control/postinst" || fail "postinst adds no vmnet-broker group"
grep -q "^Depends:.*dnsmasq-base" "$tmp/control/control" || fail "no dependency on dnsmasq-base"
[ "$failures" = 0 ] && echo "deb: $(basename "$deb") holds the ${#wanted[@]} paths README.md lists"
exit $((failures > 0))
