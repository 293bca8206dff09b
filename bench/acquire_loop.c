// SPDX-License-Identifier: Apache-2.0
// C baseline for bench/python.sh: timed acquires of a held network, one line.
//
// Usage: vmnet-broker-acquire-loop SOCKET NETWORK COUNT
// Connects to SOCKET, acquires NETWORK once (so it is held and created),
// then times COUNT more acquires on the same connection, each with its own
// clock readings, the way bench/python_acquire.py times the Python call.
// Prints "median_ns mean_ns" on stdout; exits 1 (with the reason on
// stderr) if a call fails.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "vmnet-broker.h"

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int compare_ll(const void *a, const void *b) {
    long long x = *(const long long *)a;
    long long y = *(const long long *)b;
    return (x > y) - (x < y);
}

static bool acquire(vmnet_broker_connection_t *connection, const char *name) {
    vmnet_broker_network_t *network = NULL;
    vmnet_broker_return_t status =
        vmnet_broker_connection_acquire(connection, name, &network);

    if (status != VMNET_BROKER_SUCCESS) {
        fprintf(stderr, "acquire %s: %s\n", name,
                vmnet_broker_strerror(status));
        return false;
    }
    vmnet_broker_network_free(network);
    return true;
}

int main(int argc, char **argv) {
    vmnet_broker_connection_t *connection = NULL;
    long long *samples = NULL;
    long long total = 0;
    long count;
    char *end;
    int result = 1;

    if (argc != 4) {
        fprintf(stderr, "usage: %s SOCKET NETWORK COUNT\n", argv[0]);
        goto out;
    }
    errno = 0;
    count = strtol(argv[3], &end, 10);
    if (errno != 0 || *end != '\0' || count < 1 || count > 10000000) {
        fprintf(stderr, "COUNT must be 1 to 10000000\n");
        goto out;
    }
    samples = calloc((size_t)count, sizeof(*samples));
    if (samples == NULL) {
        fprintf(stderr, "out of memory\n");
        goto out;
    }
    if (vmnet_broker_connect(argv[1], &connection) != VMNET_BROKER_SUCCESS) {
        fprintf(stderr, "cannot connect to %s\n", argv[1]);
        goto out;
    }
    if (!acquire(connection, argv[2]))
        goto out;
    for (long i = 0; i < count; i++) {
        long long start = now_ns();
        if (!acquire(connection, argv[2]))
            goto out;
        samples[i] = now_ns() - start;
        total += samples[i];
    }
    qsort(samples, (size_t)count, sizeof(*samples), compare_ll);
    printf("%lld %lld\n", samples[count / 2], total / count);
    result = 0;
out:
    vmnet_broker_connection_close(connection);
    free(samples);
    return result;
}
