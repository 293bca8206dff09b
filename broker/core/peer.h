// SPDX-License-Identifier: Apache-2.0
// A connected client: its credentials and the networks it holds.
#ifndef VMNET_BROKER_CORE_PEER_H
#define VMNET_BROKER_CORE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "network_config.h"

// As in the original broker: a peer holds at most this many distinct
// networks; one more gets BROKER_ERR_INTERNAL.
#define PEER_MAX_NETWORKS 8
// Interfaces (TAP devices) alive at once: per connection, and per user
// across all of that user's connections.
#define PEER_MAX_INTERFACES 16
#define USER_MAX_INTERFACES 64
// Supplementary groups remembered per peer for group policy.
#define PEER_MAX_GROUPS 32

struct network;

// An interface opened for the peer; the broker keeps its name, never its
// descriptor. The network is kept by name: the peer may release it while
// its VM still holds the interface.
struct peer_interface {
    char network[NETWORK_NAME_MAX + 1];
    unsigned index;
    char name[16];
};

struct peer_cred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
    size_t n_groups;
    uint32_t groups[PEER_MAX_GROUPS];
};

// Opaque outside the core (peer_private.h): read it with these.
struct peer;

const struct peer_cred *peer_get_cred(const struct peer *peer);
// "[peer 1234 uid 1000]": the prefix of every log line about this peer.
const char *peer_get_label(const struct peer *peer);
// So that one peer cannot flood the log.
struct log_limit *peer_get_log_limit(struct peer *peer);
// The distinct networks the peer holds, in the order it acquired them:
// index 0 to peer_get_network_count() - 1.
size_t peer_get_network_count(const struct peer *peer);
const struct network *peer_get_network(const struct peer *peer, size_t i);
// The interfaces opened for the peer and not yet seen gone.
size_t peer_get_interface_count(const struct peer *peer);
const struct peer_interface *peer_get_interface(const struct peer *peer,
                                                size_t i);

// Index of network among the networks peer holds (peer_get_network), or -1.
int peer_find_network(const struct peer *peer, const struct network *network);

#define peer_log(level, peer, ...)                                             \
    log_write_limited(level, peer_get_log_limit(peer), peer_get_label(peer),   \
                      __VA_ARGS__)

#endif
