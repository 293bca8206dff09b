#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The bash completion offers the CLI's commands, options and the broker's network names.
#
# Usage: test_completion.sh cli/completion/vmnet-broker-client
# Network names come from "CLI networks --names"; a stand-in CLI that
# prints two names plays the client, so no broker is needed.
set -uo pipefail
source "$1"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat >"$tmp/client" <<'CLIENT'
#!/bin/sh
case "$*" in *"networks --names") printf 'lab\nshared\n' ;; esac
CLIENT
chmod +x "$tmp/client"
failures=0

expect() { # expected replies, then the words (the last one being completed)
    local expected=$1
    shift
    COMP_WORDS=("$@")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMPREPLY=()
    _vmnet_broker_client
    if [ "${COMPREPLY[*]}" != "$expected" ]; then
        echo "FAIL: [${*:1}] gave '${COMPREPLY[*]}', expected '$expected'" >&2
        failures=$((failures + 1))
    fi
}

expect "acquire run release status networks info leases" "$tmp/client" ""
expect "status" "$tmp/client" st
expect "--socket --help --version" "$tmp/client" --
expect "--json" "$tmp/client" status --
expect "--json --names" "$tmp/client" networks --
expect "lab shared" "$tmp/client" info ""
expect "lab shared" "$tmp/client" leases ""
expect "lab" "$tmp/client" --socket /x acquire l
expect "shared" "$tmp/client" run --network s
expect "--network --tap --" "$tmp/client" run --
[ "$failures" = 0 ] && echo "completion: 10 cases"
exit $((failures > 0))
