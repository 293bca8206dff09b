// SPDX-License-Identifier: Apache-2.0
// Error codes the broker core returns; the values are the wire protocol's.
#ifndef VMNET_BROKER_CORE_STATUS_H
#define VMNET_BROKER_CORE_STATUS_H

// The numeric values are part of the protocol (docs/protocol.md) and are
// shared with the original macOS broker. Never renumber them.
enum broker_status {
    BROKER_OK = 0,
    BROKER_ERR_NOT_ALLOWED = 3,
    BROKER_ERR_INVALID_REQUEST = 4,
    BROKER_ERR_NOT_FOUND = 5,
    BROKER_ERR_CREATE_FAILURE = 6,
    BROKER_ERR_INTERNAL = 7,
};

// Returns a short constant name ("NOT_ALLOWED"); "UNKNOWN" for other values.
const char *broker_status_name(int status);

#endif
