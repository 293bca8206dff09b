// SPDX-License-Identifier: Apache-2.0
// A process's CPU time from /proc/PID/schedstat, in nanoseconds.
#include <inttypes.h>
#include <stdio.h>

#include "bench.h"

bool proc_cpu_ns(pid_t pid, uint64_t *ns) {
    char path[64];
    uint64_t on_cpu;
    FILE *f;
    bool found;

    // schedstat, unlike the tick-counted times of /proc/PID/stat, is exact
    // to the nanosecond: a request costs microseconds.
    snprintf(path, sizeof(path), "/proc/%d/schedstat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    found = fscanf(f, "%" SCNu64, &on_cpu) == 1;
    fclose(f);
    if (found)
        *ns = on_cpu;
    return found;
}
