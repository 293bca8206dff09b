#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The man pages the build made render without a warning from groff.
#
# Usage: test_man_pages.sh BUILT_MAN_DIR
set -euo pipefail
dir=$1
command -v groff >/dev/null || {
    echo "skipped: groff is not installed (Debian package groff-base)"
    exit 77
}
failures=0
for page in vmnet-broker.8 vmnet-broker-client.1 vmnet-broker.d.5; do
    if [ ! -s "$dir/$page" ]; then
        echo "FAIL: $page was not built in $dir" >&2
        failures=$((failures + 1))
        continue
    fi
    # -ww: every warning; -z: no output, only the diagnostics.
    warnings=$(groff -man -Tutf8 -ww -z "$dir/$page" 2>&1)
    if [ -n "$warnings" ]; then
        echo "FAIL: $page: $warnings" >&2
        failures=$((failures + 1))
    fi
    grep -q '@[A-Z_]*@' "$dir/$page" && {
        echo "FAIL: $page has an unfilled @VARIABLE@" >&2
        failures=$((failures + 1))
    }
    # Without overstriking (bold as "N\bN"), so grep sees the words.
    text=$(groff -man -Tutf8 "$dir/$page" 2>/dev/null | sed "s/.\x08//g")
    grep -q "NAME" <<<"$text" || { echo "FAIL: $page has no NAME section" >&2; failures=$((failures + 1)); }
done
[ "$failures" = 0 ] && echo "man pages: 3 pages render cleanly"
exit $((failures > 0))
