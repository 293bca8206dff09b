// SPDX-License-Identifier: Apache-2.0
// The core's own view of a network and of the registry; only broker/core and
// its unit tests include it, every other layer uses registry.h's accessors.
#ifndef VMNET_BROKER_CORE_REGISTRY_PRIVATE_H
#define VMNET_BROKER_CORE_REGISTRY_PRIVATE_H

#include "registry.h"

struct broker_waiter;

struct network {
    enum network_state state;
    // CREATING only: the backend has been asked (false while an earlier
    // instance of the same name is still being removed).
    bool started;
    // Requests waiting for the creation to end, in arrival order.
    struct broker_waiter *waiters;
    // The configuration the network was created from; policy is checked
    // against it for as long as the network lives.
    struct network_config config;
    struct network_info info;
    void *backend_handle;
    // Number of peers holding a reference (each peer counts once).
    unsigned peers;
    // Its bridge has ports (a VM's TAP, a veth): in use even without
    // peers, and left running when the broker exits.
    bool has_ports;
    // Monotonic time (microseconds) at which an unused network is removed;
    // NO_DEADLINE while it is in use or persistent.
    uint64_t idle_deadline;
    struct network *next;
};

struct registry {
    struct network *head;
    unsigned count;
};

// The network called name that is creating or ready (never one being
// removed), or NULL.
struct network *registry_find(const struct registry *registry,
                              const char *name);
// The instance of name being removed, or NULL.
struct network *registry_find_removing(const struct registry *registry,
                                       const char *name);
// Takes ownership of network.
void registry_add(struct registry *registry, struct network *network);
// Unlinks network; the caller owns it afterwards.
void registry_remove(struct registry *registry, struct network *network);
// Earliest idle deadline of a ready network, or NO_DEADLINE.
uint64_t registry_next_deadline(const struct registry *registry);

#endif
