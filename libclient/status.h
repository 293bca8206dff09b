// SPDX-License-Identifier: Apache-2.0
// Status snapshots: built from the "status" object of a status reply.
#ifndef VMNET_BROKER_CLIENT_STATUS_H
#define VMNET_BROKER_CLIENT_STATUS_H

#include <jansson.h>

#include "vmnet-broker.h"

// Stores in *status a new snapshot of object (a new reference is taken)
// and json, its compact text (malloc'd), which the snapshot keeps, or frees
// on failure. VMNET_BROKER_INTERNAL_ERROR (and *status untouched) when
// memory runs out.
vmnet_broker_return_t client_status_new(json_t *object, char *json,
                                        vmnet_broker_status_t **status);

#endif
