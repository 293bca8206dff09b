// SPDX-License-Identifier: Apache-2.0
// Per-peer bookkeeping of held networks.
#include "peer.h"

int peer_find_network(const struct peer *peer, const struct network *network) {
    for (size_t i = 0; i < peer->n_networks; i++) {
        if (peer->networks[i] == network)
            return (int)i;
    }
    return -1;
}
