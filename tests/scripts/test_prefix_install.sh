#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `cmake --install BUILD --prefix P` puts everything under P, the systemd units with ExecStart at P.
#
# Usage: test_prefix_install.sh BUILD_DIR
set -euo pipefail
build=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/some prefix"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

cmake --install "$build" --prefix "$prefix" >"$tmp/log" 2>&1 || {
    cat "$tmp/log" >&2
    exit 1
}
unit="$prefix/lib/systemd/system/vmnet-broker.service"
for f in sbin/vmnet-broker bin/vmnet-broker-client include/vmnet-broker.h \
    lib/systemd/system/vmnet-broker.socket lib/systemd/system/vmnet-broker.service \
    share/man/man8/vmnet-broker.8 share/man/man1/vmnet-broker-client.1 \
    share/man/man5/vmnet-broker.d.5 \
    share/bash-completion/completions/vmnet-broker-client \
    share/doc/vmnet-broker/LICENSE; do
    [ -e "$prefix/$f" ] || fail "$f not installed under the prefix"
done
grep -qxF "ExecStart=$prefix/sbin/vmnet-broker" "$unit" ||
    fail "ExecStart is not under the prefix: $(grep ExecStart "$unit" || true)"
[ -x "$(sed -n 's/^ExecStart=//p' "$unit")" ] || fail "ExecStart's program is not executable"
# Nothing outside the prefix: every path the install reported is under it.
if grep -E '^-- (Installing|Up-to-date): ' "$tmp/log" | grep -vF -- ": $prefix/" >&2; then
    fail "files installed outside the prefix (above)"
fi
[ "$failures" = 0 ] && echo "prefix install: units under the prefix, ExecStart=$prefix/sbin/vmnet-broker"
exit $((failures > 0))
