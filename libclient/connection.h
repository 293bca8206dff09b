// SPDX-License-Identifier: Apache-2.0
// What the process-wide connection needs to know about an explicit one.
#ifndef VMNET_BROKER_CLIENT_CONNECTION_H
#define VMNET_BROKER_CLIENT_CONNECTION_H

#include <stdbool.h>

#include "vmnet-broker.h"

// True once a call on connection failed in the transport (the broker could
// not be written to or closed the connection): the broker has dropped its
// references and every later call fails with VMNET_BROKER_XPC_FAILURE.
bool client_connection_is_lost(vmnet_broker_connection_t *connection);

#endif
