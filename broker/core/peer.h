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

struct peer {
    struct peer_cred cred;
    // "[peer 1234 uid 1000]": the prefix of every log line about this peer.
    char label[48];
    // So that one peer cannot flood the log.
    struct log_limit log_limit;
    struct network *networks[PEER_MAX_NETWORKS];
    size_t n_networks;
    // Allocated on first open_interface: most peers never open one.
    struct peer_interface *interfaces;
    size_t n_interfaces;
    // Opaque to the core: the transport's connection.
    void *transport;
    struct peer *prev;
    struct peer *next;
};

// Index of network in peer->networks, or -1.
int peer_find_network(const struct peer *peer, const struct network *network);

#endif
