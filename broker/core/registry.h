// SPDX-License-Identifier: Apache-2.0
// The named networks that exist right now, with their reference counts.
#ifndef VMNET_BROKER_CORE_REGISTRY_H
#define VMNET_BROKER_CORE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "network_config.h"

#define NO_DEADLINE UINT64_MAX

struct network {
    // The configuration the network was created from; policy is checked
    // against it for as long as the network lives.
    struct network_config config;
    struct network_info info;
    void *backend_handle;
    // Number of peers holding a reference (each peer counts once).
    unsigned peers;
    // Monotonic time (microseconds) at which an unused network is removed;
    // NO_DEADLINE while it is in use or persistent.
    uint64_t idle_deadline;
    struct network *next;
};

struct registry {
    struct network *head;
    unsigned count;
};

struct network *registry_find(const struct registry *registry,
                              const char *name);
// Takes ownership of network.
void registry_add(struct registry *registry, struct network *network);
// Unlinks network; the caller owns it afterwards.
void registry_remove(struct registry *registry, struct network *network);
// Earliest idle deadline, or NO_DEADLINE.
uint64_t registry_next_deadline(const struct registry *registry);

#endif
