// SPDX-License-Identifier: Apache-2.0
// Per-peer bookkeeping of held networks.
#include "peer_private.h"

int peer_find_network(const struct peer *peer, const struct network *network) {
    for (size_t i = 0; i < peer->n_networks; i++) {
        if (peer->networks[i] == network)
            return (int)i;
    }
    return -1;
}

const struct peer_cred *peer_get_cred(const struct peer *peer) {
    return &peer->cred;
}

const char *peer_get_label(const struct peer *peer) { return peer->label; }

struct log_limit *peer_get_log_limit(struct peer *peer) {
    return &peer->log_limit;
}

size_t peer_get_network_count(const struct peer *peer) {
    return peer->n_networks;
}

const struct network *peer_get_network(const struct peer *peer, size_t i) {
    return i < peer->n_networks ? peer->networks[i] : NULL;
}

size_t peer_get_interface_count(const struct peer *peer) {
    return peer->n_interfaces;
}

const struct peer_interface *peer_get_interface(const struct peer *peer,
                                                size_t i) {
    return i < peer->n_interfaces ? &peer->interfaces[i] : NULL;
}
