// SPDX-License-Identifier: Apache-2.0
// Descriptions of the status codes.
#include "vmnet-broker.h"

const char *vmnet_broker_strerror(vmnet_broker_return_t status) {
    switch (status) {
    case VMNET_BROKER_SUCCESS:
        return "success";
    case VMNET_BROKER_XPC_FAILURE:
        return "could not connect to the broker or send it the request";
    case VMNET_BROKER_INVALID_REPLY:
        return "invalid reply from the broker (or it closed the connection)";
    case VMNET_BROKER_NOT_ALLOWED:
        return "not allowed to use the network";
    case VMNET_BROKER_INVALID_REQUEST:
        return "invalid request";
    case VMNET_BROKER_NOT_FOUND:
        return "network not found";
    case VMNET_BROKER_CREATE_FAILURE:
        return "failed to create the network";
    case VMNET_BROKER_INTERNAL_ERROR:
        return "internal error";
    }
    return "unknown status";
}
