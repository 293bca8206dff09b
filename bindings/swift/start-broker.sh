# SPDX-License-Identifier: Apache-2.0
# Sourced by the Swift package's shell tests: starts the built broker on a
# private socket under a work folder and waits until it listens.
#
# start_broker BROKER WORK: runs BROKER with its socket, an empty config
# directory, its state and its log under WORK; sets broker_pid (the caller
# ends it). Exits 1, printing the broker's log, if it does not start.
start_broker() {
    mkdir "$2/conf"
    # The default instance's plain names ("vmb-shared"), which the tests expect.
    VMNET_BROKER_INSTANCE=default "$1" --socket "$2/broker.sock" --config-dir "$2/conf" \
        --idle-timeout 5 --state-dir "$2/state" 2>"$2/broker.log" &
    broker_pid=$!
    tries=0
    while [ ! -S "$2/broker.sock" ]; do
        tries=$((tries + 1))
        if [ $tries -gt 3000 ] || ! kill -0 "$broker_pid" 2>/dev/null; then
            echo "the broker did not start:" >&2
            cat "$2/broker.log" >&2
            exit 1
        fi
        sleep 0.01
    done
}
