// SPDX-License-Identifier: Apache-2.0
// <runtime-dir>/networks.json: what the next broker needs to adopt networks.
#ifndef VMNET_BROKER_LINUX_NETWORKS_STATE_H
#define VMNET_BROKER_LINUX_NETWORKS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core/backend.h"
#include "core/network_config.h"

#define NETWORKS_STATE_FILE "networks.json"

// One ready network as the state file records it.
struct networks_state_entry {
    char name[NETWORK_NAME_MAX + 1];
    enum network_mode mode;
    bool persistent;
    struct network_info info;
    // Its dnsmasq: the pid and its start time (field 22 of /proc/PID/stat);
    // 0 when none ran at the time of writing.
    pid_t dnsmasq_pid;
    unsigned long long dnsmasq_start;
};

// Replaces <dir_fd>/networks.json with entries, atomically (a temporary
// file written and renamed; no symbolic link followed), so a broker killed
// at any moment leaves the old file or the new one. Returns 0 or a
// negative errno (logged). Thread-safe for distinct dir_fds.
int networks_state_write(int dir_fd, const struct networks_state_entry *entries,
                         size_t n);

// The two halves of networks_state_write(): the file's text (malloc'd, the
// caller frees; NULL without memory), which is cheap, and writing it, which
// may wait for a disk (ext4 flushes a file renamed over another): the
// broker formats on its loop and writes on a thread of its own.
char *networks_state_format(const struct networks_state_entry *entries,
                            size_t n);
int networks_state_write_text(int dir_fd, const char *text);

// Reads <dir_fd>/networks.json into *entries (malloc'd, the caller frees;
// NULL when none) and *n. A missing file is no entry; a file that is not
// valid JSON of the expected shape is none either, and logged; an entry
// with a bad field is left out and logged. Never fails otherwise.
void networks_state_read(int dir_fd, struct networks_state_entry **entries,
                         size_t *n);

#endif
