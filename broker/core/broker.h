// SPDX-License-Identifier: Apache-2.0
// The broker's core: peers acquire and release named networks.
#ifndef VMNET_BROKER_CORE_BROKER_H
#define VMNET_BROKER_CORE_BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "peer.h"
#include "registry.h"
#include "status.h"

// The core never reads a clock: every call that can start or end an idle
// delay takes "now" (monotonic microseconds), and the event loop re-arms one
// timer at broker_next_deadline() after each call. Tests drive time directly.
struct broker;

struct broker_options {
    const struct network_backend_ops *backend;
    void *backend_ctx;
    const struct config_source_ops *configs;
    void *configs_ctx;
    uint64_t idle_usec;
};

// Returns NULL when out of memory.
struct broker *broker_new(const struct broker_options *options);
// Removes every network and frees every peer. Accepts NULL.
void broker_free(struct broker *broker);

// Registers a connected peer. Returns NULL when out of memory.
struct peer *broker_peer_connect(struct broker *broker,
                                 const struct peer_cred *cred, void *transport);
// Drops every reference of peer and frees it.
void broker_peer_disconnect(struct broker *broker, struct peer *peer,
                            uint64_t now);

// Acquires a reference to name for peer, creating the network if needed.
// On BROKER_OK *out points at the network (valid until it is removed);
// otherwise *out is untouched and the status says why.
int broker_acquire(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now, const struct network **out);
// Drops peer's reference to name. BROKER_ERR_NOT_FOUND if it holds none.
int broker_release(struct broker *broker, struct peer *peer, const char *name,
                   uint64_t now);

// Acquires name for peer (as broker_acquire) and creates an interface on it
// for the peer's VM. On BROKER_OK stores the network in *network, fills *info
// and stores a descriptor the caller owns in *fd (the broker keeps no copy);
// otherwise the outs are untouched and a network this call acquired is
// released again. A connection may have PEER_MAX_INTERFACES interfaces alive
// at once and a user USER_MAX_INTERFACES; beyond that BROKER_ERR_INTERNAL.
int broker_open_interface(struct broker *broker, struct peer *peer,
                          const char *name, uint64_t now,
                          const struct network **network,
                          struct interface_info *info, int *fd);

// Creates name now and never removes it for idleness (persistent networks).
int broker_create_persistent(struct broker *broker, const char *name);

// Earliest moment broker_expire() has work, or NO_DEADLINE.
uint64_t broker_next_deadline(const struct broker *broker);
// Removes every unused network whose idle delay has passed.
void broker_expire(struct broker *broker, uint64_t now);
// Removes every network (used at exit). Peers keep their slots but lose
// their networks.
void broker_remove_all(struct broker *broker);

// Forgets every peer's interfaces whose device is gone, so that counts in
// the status are current.
void broker_prune_interfaces(struct broker *broker);
// The configured networks, running or not (config_source_ops.list); *configs
// is malloc'd, the caller frees it. Without a list op: none, BROKER_OK.
int broker_list_configs(const struct broker *broker,
                        struct network_config **configs, size_t *n);

unsigned broker_peer_count(const struct broker *broker);
unsigned broker_network_count(const struct broker *broker);
const struct network *broker_networks(const struct broker *broker);
const struct peer *broker_peers(const struct broker *broker);

#endif
