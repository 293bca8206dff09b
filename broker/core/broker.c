// SPDX-License-Identifier: Apache-2.0
// Reference counting, idle removal and policy: the original broker's rules.
#include "broker.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "policy.h"
#include "reason.h"

struct broker {
    struct broker_options options;
    struct registry registry;
    struct peer *peers;
    unsigned n_peers;
};

struct broker *broker_new(const struct broker_options *options) {
    struct broker *broker = calloc(1, sizeof(*broker));
    if (broker == NULL)
        return NULL;
    broker->options = *options;
    return broker;
}

static void destroy_network(struct broker *broker, struct network *network,
                            const char *why) {
    log_info("removing network '%s' (bridge %s): %s", network->config.name,
             network->info.bridge, why);
    registry_remove(&broker->registry, network);
    broker->options.backend->destroy(broker->options.backend_ctx,
                                     network->backend_handle);
    free(network);
}

void broker_remove_all(struct broker *broker) {
    for (struct peer *p = broker->peers; p != NULL; p = p->next) {
        p->n_networks = 0;
        p->n_interfaces = 0;
    }
    while (broker->registry.head != NULL)
        destroy_network(broker, broker->registry.head, "broker is stopping");
}

void broker_free(struct broker *broker) {
    if (broker == NULL)
        return;
    broker_remove_all(broker);
    while (broker->peers != NULL) {
        struct peer *p = broker->peers;
        broker->peers = p->next;
        free(p->interfaces);
        free(p);
    }
    free(broker);
}

struct peer *broker_peer_connect(struct broker *broker,
                                 const struct peer_cred *cred,
                                 void *transport) {
    struct peer *peer = calloc(1, sizeof(*peer));
    if (peer == NULL)
        return NULL;
    peer->cred = *cred;
    peer->transport = transport;
    snprintf(peer->label, sizeof(peer->label), "[peer %ld uid %lu]",
             (long)cred->pid, (unsigned long)cred->uid);
    peer->next = broker->peers;
    if (broker->peers != NULL)
        broker->peers->prev = peer;
    broker->peers = peer;
    broker->n_peers++;
    peer_log(LOG_LEVEL_INFO, peer, "connected (gid %lu, peers %u)",
             (unsigned long)cred->gid, broker->n_peers);
    return peer;
}

// Drops one reference; starts the idle delay when it was the last.
static void unref_network(struct broker *broker, struct peer *peer,
                          struct network *network, uint64_t now) {
    network->peers--;
    peer_log(LOG_LEVEL_INFO, peer, "released '%s' (peers %u)",
             network->config.name, network->peers);
    if (network->peers == 0 && !network->config.persistent) {
        network->idle_deadline = now + broker->options.idle_usec;
        // Guard against wrap-around with absurd idle delays.
        if (network->idle_deadline < now)
            network->idle_deadline = NO_DEADLINE - 1;
    }
}

void broker_peer_disconnect(struct broker *broker, struct peer *peer,
                            uint64_t now) {
    while (peer->n_networks > 0) {
        struct network *n = peer->networks[--peer->n_networks];
        unref_network(broker, peer, n, now);
    }
    if (peer->prev != NULL)
        peer->prev->next = peer->next;
    else
        broker->peers = peer->next;
    if (peer->next != NULL)
        peer->next->prev = peer->prev;
    broker->n_peers--;
    peer_log(LOG_LEVEL_INFO, peer, "disconnected (peers %u)", broker->n_peers);
    free(peer->interfaces);
    free(peer);
}

// Creates a network from config and adds it to the registry.
static int create_network(struct broker *broker,
                          const struct network_config *config,
                          struct network **out) {
    struct network *network = calloc(1, sizeof(*network));
    int status = BROKER_ERR_INTERNAL;

    if (network == NULL)
        goto out;
    network->config = *config;
    status = broker->options.backend->create(broker->options.backend_ctx,
                                             &network->config, &network->info,
                                             &network->backend_handle);
    if (status != BROKER_OK)
        goto out;
    network->idle_deadline = NO_DEADLINE;
    registry_add(&broker->registry, network);
    log_info("created network '%s' mode %s bridge %s uuid %s",
             network->config.name, network_mode_name(network->config.mode),
             network->info.bridge, network->info.uuid);
    *out = network;
    network = NULL;
    status = BROKER_OK;
out:
    free(network);
    return status;
}

int broker_acquire(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now, const struct network **out) {
    struct network *network = registry_find(&broker->registry, name);
    int status = BROKER_ERR_INTERNAL;

    (void)now;
    if (network != NULL && peer_find_network(peer, network) >= 0) {
        // Already held: a peer counts once however often it acquires.
        if (!policy_allows(&network->config, &peer->cred)) {
            reason_set("user %lu may not use network '%s' (not in its "
                       "allowed_users or allowed_groups)",
                       (unsigned long)peer->cred.uid, name);
            status = BROKER_ERR_NOT_ALLOWED;
            goto out;
        }
        *out = network;
        status = BROKER_OK;
        goto out;
    }
    if (peer->n_networks >= PEER_MAX_NETWORKS) {
        // The original answers INTERNAL_ERROR here; kept for compatibility.
        peer_log(LOG_LEVEL_WARNING, peer,
                 "cannot acquire '%s': peer already holds %d networks", name,
                 PEER_MAX_NETWORKS);
        reason_set("this connection already holds %d networks, the most "
                   "one connection may hold: release one first",
                   PEER_MAX_NETWORKS);
        status = BROKER_ERR_INTERNAL;
        goto out;
    }
    if (network == NULL) {
        // Check policy before creating: a peer that may not use a network
        // must not be able to make the broker build it either.
        struct network_config config;
        status = broker->options.configs->lookup(broker->options.configs_ctx,
                                                 name, &config);
        if (status != BROKER_OK)
            goto out;
        if (!policy_allows(&config, &peer->cred)) {
            reason_set("user %lu may not use network '%s' (not in its "
                       "allowed_users or allowed_groups)",
                       (unsigned long)peer->cred.uid, name);
            status = BROKER_ERR_NOT_ALLOWED;
            goto out;
        }
        status = create_network(broker, &config, &network);
        if (status != BROKER_OK)
            goto out;
    } else if (!policy_allows(&network->config, &peer->cred)) {
        reason_set("user %lu may not use network '%s' (not in its "
                   "allowed_users or allowed_groups)",
                   (unsigned long)peer->cred.uid, name);
        status = BROKER_ERR_NOT_ALLOWED;
        goto out;
    }
    peer->networks[peer->n_networks++] = network;
    network->peers++;
    network->idle_deadline = NO_DEADLINE;
    peer_log(LOG_LEVEL_INFO, peer, "acquired '%s' (peers %u)", name,
             network->peers);
    *out = network;
    status = BROKER_OK;
out:
    if (status != BROKER_OK)
        peer_log(LOG_LEVEL_WARNING, peer, "acquire '%s' failed: %s", name,
                 broker_status_name(status));
    return status;
}

int broker_release(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now) {
    struct network *network = registry_find(&broker->registry, name);
    int index = network ? peer_find_network(peer, network) : -1;

    if (index < 0) {
        peer_log(LOG_LEVEL_WARNING, peer,
                 "release '%s' failed: not held by this peer", name);
        reason_set("this connection does not hold network '%s'", name);
        return BROKER_ERR_NOT_FOUND;
    }
    // Keep the array dense; order does not matter.
    peer->networks[index] = peer->networks[--peer->n_networks];
    unref_network(broker, peer, network, now);
    return BROKER_OK;
}

// Forgets interfaces whose device is gone (the VM closed its descriptor).
static void prune_interfaces(struct broker *broker, struct peer *peer) {
    size_t kept = 0;
    for (size_t i = 0; i < peer->n_interfaces; i++) {
        struct peer_interface *iface = &peer->interfaces[i];
        if (broker->options.backend->interface_exists(
                broker->options.backend_ctx, iface->name))
            peer->interfaces[kept++] = *iface;
        else
            peer_log(LOG_LEVEL_INFO, peer, "interface %s on '%s' is gone",
                     iface->name, iface->network);
    }
    peer->n_interfaces = kept;
}

// Prunes every peer of uid and counts their live interfaces. One user may
// run many VMs over many connections; the limits and the guest MACs are
// the user's, not one connection's.
static unsigned uid_interfaces(struct broker *broker, uint32_t uid) {
    unsigned count = 0;
    for (struct peer *p = broker->peers; p != NULL; p = p->next) {
        if (p->cred.uid != uid)
            continue;
        prune_interfaces(broker, p);
        count += (unsigned)p->n_interfaces;
    }
    return count;
}

// The smallest index no live interface of uid on network uses, so two VMs
// of one user never share a guest MAC, and a VM started again gets its
// MAC (and its DHCP lease) back.
static unsigned free_index(const struct broker *broker, uint32_t uid,
                           const char *network) {
    for (unsigned index = 0;; index++) {
        bool used = false;
        for (const struct peer *p = broker->peers; p != NULL && !used;
             p = p->next) {
            for (size_t i = 0;
                 p->cred.uid == uid && i < p->n_interfaces && !used; i++)
                used = strcmp(p->interfaces[i].network, network) == 0 &&
                       p->interfaces[i].index == index;
        }
        if (!used)
            return index;
    }
}

int broker_open_interface(struct broker *broker, struct peer *peer,
                          const char *name, uint64_t now,
                          const struct network **network,
                          struct interface_info *info, int *fd) {
    const struct network *acquired = NULL;
    struct network *n = registry_find(&broker->registry, name);
    bool held = n != NULL && peer_find_network(peer, n) >= 0;
    struct interface_info created;
    unsigned index, user_count;
    int created_fd = -1;
    int status = BROKER_ERR_INVALID_REQUEST;

    // A platform without interfaces for unprivileged VMs says so.
    if (broker->options.backend->open_interface == NULL) {
        reason_set("this platform cannot make interfaces for VMs");
        goto out;
    }
    status = broker_acquire(broker, peer, name, now, &acquired);
    if (status != BROKER_OK) {
        held = true; // nothing was acquired, so nothing to give back
        goto out;
    }
    // The registry hands out const pointers; this one is ours to update.
    n = registry_find(&broker->registry, name);
    user_count = uid_interfaces(broker, peer->cred.uid);
    status = BROKER_ERR_INTERNAL;
    if (peer->n_interfaces >= PEER_MAX_INTERFACES ||
        user_count >= USER_MAX_INTERFACES) {
        peer_log(LOG_LEVEL_WARNING, peer,
                 "cannot open an interface on '%s': %zu open on this "
                 "connection (at most %d), %u for this user (at most %d)",
                 name, peer->n_interfaces, PEER_MAX_INTERFACES, user_count,
                 USER_MAX_INTERFACES);
        reason_set("too many interfaces: %zu open on this connection (at "
                   "most %d), %u for this user (at most %d)",
                   peer->n_interfaces, PEER_MAX_INTERFACES, user_count,
                   USER_MAX_INTERFACES);
        goto out;
    }
    if (peer->interfaces == NULL) {
        peer->interfaces =
            calloc(PEER_MAX_INTERFACES, sizeof(*peer->interfaces));
        if (peer->interfaces == NULL)
            goto out;
    }
    index = free_index(broker, peer->cred.uid, name);
    status = broker->options.backend->open_interface(
        broker->options.backend_ctx, n->backend_handle, name, &peer->cred,
        index, &created, &created_fd);
    if (status != BROKER_OK)
        goto out;
    strcpy(peer->interfaces[peer->n_interfaces].network, name);
    peer->interfaces[peer->n_interfaces].index = index;
    memcpy(peer->interfaces[peer->n_interfaces].name, created.name,
           sizeof(created.name));
    peer->n_interfaces++;
    peer_log(LOG_LEVEL_INFO, peer,
             "opened interface %s on '%s' (interfaces %zu)", created.name, name,
             peer->n_interfaces);
    *network = n;
    *info = created;
    *fd = created_fd;
    status = BROKER_OK;
out:
    if (status != BROKER_OK) {
        peer_log(LOG_LEVEL_WARNING, peer, "open_interface '%s' failed: %s",
                 name, broker_status_name(status));
        // A failed call leaves the peer as it found it.
        if (!held)
            broker_release(broker, peer, name, now);
    }
    return status;
}

int broker_create_persistent(struct broker *broker, const char *name) {
    struct network *network = registry_find(&broker->registry, name);
    struct network_config config;
    int status = BROKER_OK;

    if (network == NULL) {
        status = broker->options.configs->lookup(broker->options.configs_ctx,
                                                 name, &config);
        if (status != BROKER_OK)
            goto out;
        status = create_network(broker, &config, &network);
        if (status != BROKER_OK)
            goto out;
    }
    network->config.persistent = true;
    network->idle_deadline = NO_DEADLINE;
out:
    if (status != BROKER_OK)
        log_error("cannot create persistent network '%s': %s", name,
                  broker_status_name(status));
    return status;
}

uint64_t broker_next_deadline(const struct broker *broker) {
    return registry_next_deadline(&broker->registry);
}

void broker_expire(struct broker *broker, uint64_t now) {
    struct network *n = broker->registry.head;
    while (n != NULL) {
        struct network *next = n->next;
        if (n->peers == 0 && n->idle_deadline <= now)
            destroy_network(broker, n, "idle delay passed");
        n = next;
    }
}

void broker_prune_interfaces(struct broker *broker) {
    for (struct peer *p = broker->peers; p != NULL; p = p->next)
        prune_interfaces(broker, p);
}

int broker_list_configs(const struct broker *broker,
                        struct network_config **configs, size_t *n) {
    if (broker->options.configs->list == NULL) {
        *configs = NULL;
        *n = 0;
        return BROKER_OK;
    }
    return broker->options.configs->list(broker->options.configs_ctx, configs,
                                         n);
}

unsigned broker_peer_count(const struct broker *broker) {
    return broker->n_peers;
}

unsigned broker_network_count(const struct broker *broker) {
    return broker->registry.count;
}

const struct network *broker_networks(const struct broker *broker) {
    return broker->registry.head;
}

const struct peer *broker_peers(const struct broker *broker) {
    return broker->peers;
}
