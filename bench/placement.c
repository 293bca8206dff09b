// SPDX-License-Identifier: Apache-2.0
// Where client and servers run: as scheduled, on one CPU, or on two.
#include <sched.h>
#include <stdio.h>

#include "bench.h"

// The CPUs the bench may use, read once before any is restricted.
static cpu_set_t allowed;
static bool allowed_read;

static bool read_allowed(void) {
    if (!allowed_read)
        allowed_read = sched_getaffinity(0, sizeof(allowed), &allowed) == 0;
    return allowed_read;
}

// The index-th allowed CPU, or -1.
static int allowed_cpu(int index) {
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && index-- == 0)
            return cpu;
    }
    return -1;
}

size_t placement_count(void) {
    if (!read_allowed())
        return 1;
    return CPU_COUNT(&allowed) >= 2 ? PLACEMENTS : PLACEMENTS - 1;
}

static bool pin(pid_t pid, int cpu) {
    cpu_set_t one;

    if (cpu < 0)
        return sched_setaffinity(pid, sizeof(allowed), &allowed) == 0;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(pid, sizeof(one), &one) == 0;
}

bool placement_apply(enum placement placement, const pid_t *servers, size_t n,
                     char *title, size_t size) {
    int client_cpu = -1;
    int server_cpu = -1;

    if (!read_allowed())
        return false;
    switch (placement) {
    case PLACEMENT_SCHEDULED:
        snprintf(title, size, "as scheduled");
        break;
    case PLACEMENT_ONE_CPU:
        client_cpu = server_cpu = allowed_cpu(0);
        snprintf(title, size, "client and server on CPU %d", client_cpu);
        break;
    case PLACEMENT_TWO_CPUS:
        client_cpu = allowed_cpu(0);
        server_cpu = allowed_cpu(1);
        snprintf(title, size, "client on CPU %d, server on CPU %d", client_cpu,
                 server_cpu);
        break;
    }
    // pid 0: the bench itself, the client.
    if (!pin(0, client_cpu))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!pin(servers[i], server_cpu))
            return false;
    }
    return true;
}
