// SPDX-License-Identifier: Apache-2.0
// The named networks that exist right now, with their reference counts.
#ifndef VMNET_BROKER_CORE_REGISTRY_H
#define VMNET_BROKER_CORE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "network_config.h"

#define NO_DEADLINE UINT64_MAX

// A network is created asynchronously: requests for it wait while it is
// CREATING; once REMOVING it is never handed out again, and an acquire of
// its name waits for the removal to end and then creates a new instance.
enum network_state {
    NETWORK_CREATING = 0,
    NETWORK_READY = 1,
    NETWORK_REMOVING = 2,
};

// Opaque outside the core (registry_private.h): read it with these.
struct network;

const char *network_get_name(const struct network *network);
// The configuration the network was created from.
const struct network_config *network_get_config(const struct network *network);
// What the backend made; filled once the network is ready.
const struct network_info *network_get_info(const struct network *network);
enum network_state network_get_state(const struct network *network);
// Number of peers holding a reference (each peer counts once).
unsigned network_get_peers(const struct network *network);
// True while its bridge has ports (broker_network_ports_changed()).
bool network_get_has_ports(const struct network *network);
// Monotonic time (microseconds) at which the unused network is removed;
// NO_DEADLINE while it is in use or persistent.
uint64_t network_get_idle_deadline(const struct network *network);

#endif
