// SPDX-License-Identifier: Apache-2.0
// C baseline for bench/python.sh: timed acquires of a held network, in C.
//
// A shared module that bench/python_acquire.py loads with ctypes, so the C
// loop runs in the same process and thread as the Python one, alternating
// with it: the two differ only by the binding, not by scheduling.
#include <stdlib.h>
#include <time.h>

#include "vmnet-broker.h"

// Connects to socket_path, acquires name once (held, untimed), then times
// count more acquires on that connection, each with its own clock readings
// as the Python side does. Stores the median and mean in nanoseconds.
// Returns 0, or the failing call's vmnet_broker_return_t (-1: bad
// arguments or out of memory).
int acquire_loop(const char *socket_path, const char *name, long count,
                 long long *median_ns, long long *mean_ns)
    __attribute__((visibility("default")));

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

static vmnet_broker_return_t acquire(vmnet_broker_connection_t *connection,
                                     const char *name) {
    vmnet_broker_network_t *network = NULL;
    vmnet_broker_return_t status =
        vmnet_broker_connection_acquire(connection, name, &network);

    vmnet_broker_network_free(network);
    return status;
}

int acquire_loop(const char *socket_path, const char *name, long count,
                 long long *median_ns, long long *mean_ns) {
    vmnet_broker_connection_t *connection = NULL;
    long long *samples = NULL;
    long long total = 0;
    int result = -1;

    if (name == NULL || count < 1 || median_ns == NULL || mean_ns == NULL)
        goto out;
    samples = calloc((size_t)count, sizeof(*samples));
    if (samples == NULL)
        goto out;
    result = (int)vmnet_broker_connect(socket_path, &connection);
    if (result != VMNET_BROKER_SUCCESS)
        goto out;
    result = (int)acquire(connection, name);
    for (long i = 0; i < count && result == VMNET_BROKER_SUCCESS; i++) {
        long long start = now_ns();
        result = (int)acquire(connection, name);
        samples[i] = now_ns() - start;
        total += samples[i];
    }
    if (result != VMNET_BROKER_SUCCESS)
        goto out;
    qsort(samples, (size_t)count, sizeof(*samples), compare_ll);
    *median_ns = samples[count / 2];
    *mean_ns = total / count;
out:
    vmnet_broker_connection_close(connection);
    free(samples);
    return result;
}
