// SPDX-License-Identifier: Apache-2.0
// Network serializations: built from the "network" object of an acquire
// reply.
#ifndef VMNET_BROKER_CLIENT_NETWORK_H
#define VMNET_BROKER_CLIENT_NETWORK_H

#include <jansson.h>

#include "vmnet-broker.h"

// Copies the fields of the "network" object into a new serialization the
// caller owns; json is the object's compact JSON text (malloc'd), which the
// serialization keeps, or frees on failure. On success stores it in
// *network; on failure (only memory running out: absent or mistyped fields
// read as absent) *network is untouched.
vmnet_broker_return_t client_network_new(const json_t *object, char *json,
                                         vmnet_broker_network_t **network);

// Stores in *copy a new serialization equal to network, which the caller
// owns. VMNET_BROKER_INTERNAL_ERROR (and *copy untouched) when memory runs
// out.
vmnet_broker_return_t client_network_copy(const vmnet_broker_network_t *network,
                                          vmnet_broker_network_t **copy);

#endif
