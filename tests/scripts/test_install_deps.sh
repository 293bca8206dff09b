#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/install-deps.sh names the packages missing, against a fake dpkg-query, installing nothing.
#
# Usage: test_install_deps.sh PATH/TO/install-deps.sh
# The fake dpkg-query on PATH answers "installed" for every package except
# those listed in $FAKE_MISSING, so the machine's own packages do not
# matter and nothing is installed (--check mode; and without root or sudo
# for the install mode).
set -euo pipefail
script=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
cat >"$tmp/bin/dpkg-query" <<'FAKE'
#!/bin/sh
# Fake: the last argument is the package name.
for p; do name=$p; done
for m in $FAKE_MISSING; do
    [ "$m" = "$name" ] && { echo "dpkg-query: no packages found matching $name" >&2; exit 1; }
done
echo "install ok installed"
FAKE
chmod +x "$tmp/bin/dpkg-query"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

run() { # expected-status, output file, args...
    local expected=$1 out=$2 status=0
    shift 2
    PATH="$tmp/bin:$PATH" "$script" "$@" >"$out" 2>&1 || status=$?
    [ "$status" = "$expected" ] || fail "'$*' exited $status, expected $expected: $(cat "$out")"
}

# Nothing missing: success, and says so.
FAKE_MISSING="" run 0 "$tmp/out" --check --tests
grep -q "all .* packages are installed" "$tmp/out" || fail "no 'all installed' line: $(cat "$tmp/out")"

# Build packages missing: named, exit 1, nothing attempted.
export FAKE_MISSING="libnftables-dev libjansson-dev"
run 1 "$tmp/out" --check
grep -q "missing: .*libjansson-dev" "$tmp/out" || fail "libjansson-dev not named: $(cat "$tmp/out")"
grep -q "missing: .*libnftables-dev" "$tmp/out" || fail "libnftables-dev not named: $(cat "$tmp/out")"
grep -q "installing" "$tmp/out" && fail "--check tried to install: $(cat "$tmp/out")"

# Test packages are only wanted with --tests.
export FAKE_MISSING="check"
run 0 "$tmp/out" --check
run 1 "$tmp/out" --check --tests
grep -q "missing: check" "$tmp/out" || fail "check not named with --tests: $(cat "$tmp/out")"

# The QEMU test's kernel only with the explicit opt-in.
export FAKE_MISSING="linux-image-cloud-amd64"
run 0 "$tmp/out" --check --tests
run 1 "$tmp/out" --check --tests --qemu-kernel
grep -q "missing: linux-image-cloud-amd64" "$tmp/out" || fail "kernel not named: $(cat "$tmp/out")"

# Where it cannot install (no root, no sudo, or no apt-get): it names the
# packages and the command, and fails. Simulated with a PATH holding only
# the fake dpkg-query, an id that says uid 1000 and the shell's basics.
mkdir "$tmp/bare"
for tool in bash grep sed cat mktemp; do ln -s "$(command -v $tool)" "$tmp/bare/$tool"; done
printf '#!/bin/sh\necho 1000\n' >"$tmp/bare/id"
chmod +x "$tmp/bare/id"
export FAKE_MISSING="cmake"
status=0
PATH="$tmp/bin:$tmp/bare" bash "$script" >"$tmp/out" 2>&1 || status=$?
[ "$status" = 1 ] || fail "unprivileged install exited $status: $(cat "$tmp/out")"
grep -q "apt-get install cmake" "$tmp/out" || fail "no install command named: $(cat "$tmp/out")"

# Bad usage.
run 2 "$tmp/out" --bogus

[ "$failures" = 0 ] && echo "install-deps: all checks passed"
exit $((failures > 0))
