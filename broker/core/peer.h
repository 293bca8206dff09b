// SPDX-License-Identifier: Apache-2.0
// A connected client: its credentials and the networks it holds.
#ifndef VMNET_BROKER_CORE_PEER_H
#define VMNET_BROKER_CORE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// As in the original broker: a peer holds at most this many distinct
// networks; one more gets BROKER_ERR_INTERNAL.
#define PEER_MAX_NETWORKS 8
// Supplementary groups remembered per peer for group policy.
#define PEER_MAX_GROUPS 32

struct network;

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
    struct network *networks[PEER_MAX_NETWORKS];
    size_t n_networks;
    // Opaque to the core: the transport's connection.
    void *transport;
    struct peer *prev;
    struct peer *next;
};

// Index of network in peer->networks, or -1.
int peer_find_network(const struct peer *peer, const struct network *network);

#endif
