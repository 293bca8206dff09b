// SPDX-License-Identifier: Apache-2.0
// Names of the core's status codes, for log lines.
#include "status.h"

const char *broker_status_name(int status) {
    switch (status) {
    case BROKER_OK:
        return "OK";
    case BROKER_ERR_NOT_ALLOWED:
        return "NOT_ALLOWED";
    case BROKER_ERR_INVALID_REQUEST:
        return "INVALID_REQUEST";
    case BROKER_ERR_NOT_FOUND:
        return "NOT_FOUND";
    case BROKER_ERR_CREATE_FAILURE:
        return "CREATE_FAILURE";
    case BROKER_ERR_INTERNAL:
        return "INTERNAL_ERROR";
    }
    return "UNKNOWN";
}
