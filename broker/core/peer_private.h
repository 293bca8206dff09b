// SPDX-License-Identifier: Apache-2.0
// The core's own view of a peer; only broker/core and its unit tests include
// it, every other layer uses peer.h's accessors.
#ifndef VMNET_BROKER_CORE_PEER_PRIVATE_H
#define VMNET_BROKER_CORE_PEER_PRIVATE_H

#include "peer.h"

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

#endif
