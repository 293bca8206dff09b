// SPDX-License-Identifier: Apache-2.0
// A process's resident memory from /proc: VmRSS, Pss and Private_Dirty.
#include <stdio.h>
#include <string.h>

#include "bench.h"

// Reads the "key: N kB" line of file into *kib. Returns false if absent.
static bool read_kib(const char *path, const char *key, long *kib) {
    char line[256];
    size_t key_len = strlen(key);
    bool found = false;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, key, key_len) == 0 && line[key_len] == ':')
            found = sscanf(line + key_len + 1, "%ld", kib) == 1;
    }
    fclose(f);
    return found;
}

bool proc_memory_read(pid_t pid, struct proc_memory *memory) {
    struct proc_memory values = {0};
    char status[64];
    char rollup[64];

    snprintf(status, sizeof(status), "/proc/%d/status", (int)pid);
    snprintf(rollup, sizeof(rollup), "/proc/%d/smaps_rollup", (int)pid);
    if (!read_kib(status, "VmRSS", &values.rss_kib) ||
        !read_kib(rollup, "Pss", &values.pss_kib) ||
        !read_kib(rollup, "Private_Dirty", &values.private_dirty_kib))
        return false;
    *memory = values;
    return true;
}
