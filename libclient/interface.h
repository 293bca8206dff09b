// SPDX-License-Identifier: Apache-2.0
// Interfaces: built from the "interface" object of an open_interface reply
// and the descriptor that came with it.
#ifndef VMNET_BROKER_CLIENT_INTERFACE_H
#define VMNET_BROKER_CLIENT_INTERFACE_H

#include <jansson.h>

#include "vmnet-broker.h"

// Copies the fields of the "interface" object into a new interface the
// caller owns, which takes fd. On success stores it in *interface; on
// failure (only memory running out: absent or mistyped fields read as
// absent) *interface is untouched and fd stays the caller's.
vmnet_broker_return_t
client_interface_new(const json_t *object, int fd,
                     vmnet_broker_interface_t **interface);

#endif
