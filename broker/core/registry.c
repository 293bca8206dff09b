// SPDX-License-Identifier: Apache-2.0
// A small list of live networks; a broker holds a handful, so a list is enough.
#include "registry_private.h"

#include <string.h>

static struct network *find(const struct registry *registry, const char *name,
                            bool removing) {
    for (struct network *n = registry->head; n != NULL; n = n->next) {
        if ((n->state == NETWORK_REMOVING) == removing &&
            strcmp(n->config.name, name) == 0)
            return n;
    }
    return NULL;
}

struct network *registry_find(const struct registry *registry,
                              const char *name) {
    return find(registry, name, false);
}

struct network *registry_find_removing(const struct registry *registry,
                                       const char *name) {
    return find(registry, name, true);
}

void registry_add(struct registry *registry, struct network *network) {
    struct network **tail = (struct network **)&registry->head;
    // Appended so that status lists networks in creation order.
    while (*tail != NULL)
        tail = &(*tail)->next;
    network->next = NULL;
    *tail = network;
    registry->count++;
}

void registry_remove(struct registry *registry, struct network *network) {
    for (struct network **p = &registry->head; *p != NULL; p = &(*p)->next) {
        if (*p == network) {
            *p = network->next;
            network->next = NULL;
            registry->count--;
            return;
        }
    }
}

uint64_t registry_next_deadline(const struct registry *registry) {
    uint64_t next = NO_DEADLINE;
    for (const struct network *n = registry->head; n != NULL; n = n->next) {
        if (n->state == NETWORK_READY && n->idle_deadline < next)
            next = n->idle_deadline;
    }
    return next;
}

const char *network_get_name(const struct network *network) {
    return network->config.name;
}

const struct network_config *network_get_config(const struct network *network) {
    return &network->config;
}

const struct network_info *network_get_info(const struct network *network) {
    return &network->info;
}

enum network_state network_get_state(const struct network *network) {
    return network->state;
}

unsigned network_get_peers(const struct network *network) {
    return network->peers;
}

bool network_get_has_ports(const struct network *network) {
    return network->has_ports;
}

uint64_t network_get_idle_deadline(const struct network *network) {
    return network->idle_deadline;
}
