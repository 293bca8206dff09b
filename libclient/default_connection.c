// SPDX-License-Identifier: Apache-2.0
// The original API: one process-wide connection, opened on first use.
#include <pthread.h>
#include <stddef.h>

#include "connection.h"

// The lock covers opening, using and replacing the connection, so two
// threads' first calls cannot open two connections (two peers, each with
// its own references).
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static vmnet_broker_connection_t *default_connection;

// A lost connection's references are gone on the broker's side; closing it
// lets the next call start over on a new one instead of failing forever.
static void forget_if_lost(void) {
    if (default_connection != NULL &&
        client_connection_is_lost(default_connection)) {
        vmnet_broker_connection_close(default_connection);
        default_connection = NULL;
    }
}

// Opens the connection unless one is open; the caller holds default_lock.
static vmnet_broker_return_t open_if_closed(void) {
    if (default_connection != NULL)
        return VMNET_BROKER_SUCCESS;
    return vmnet_broker_connect(NULL, &default_connection);
}

vmnet_broker_network_t *
vmnet_broker_acquire_network(const char *network_name,
                             vmnet_broker_return_t *status) {
    vmnet_broker_return_t result = VMNET_BROKER_INVALID_REQUEST;
    vmnet_broker_network_t *network = NULL;

    if (network_name == NULL)
        goto out;
    pthread_mutex_lock(&default_lock);
    result = open_if_closed();
    if (result == VMNET_BROKER_SUCCESS)
        result = vmnet_broker_connection_acquire(default_connection,
                                                 network_name, &network);
    forget_if_lost();
    pthread_mutex_unlock(&default_lock);
out:
    if (status != NULL)
        *status = result;
    return network;
}

vmnet_broker_interface_t *
vmnet_broker_open_interface(const char *network_name,
                            vmnet_broker_return_t *status) {
    vmnet_broker_return_t result = VMNET_BROKER_INVALID_REQUEST;
    vmnet_broker_interface_t *interface = NULL;

    if (network_name == NULL)
        goto out;
    pthread_mutex_lock(&default_lock);
    result = open_if_closed();
    if (result == VMNET_BROKER_SUCCESS)
        result = vmnet_broker_connection_open_interface(
            default_connection, network_name, &interface);
    forget_if_lost();
    pthread_mutex_unlock(&default_lock);
out:
    if (status != NULL)
        *status = result;
    return interface;
}

vmnet_broker_return_t vmnet_broker_release_network(const char *network_name) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;

    if (network_name == NULL)
        return status;
    pthread_mutex_lock(&default_lock);
    // No connection holds nothing: answer as the broker would, without
    // registering a peer just to be told so.
    status = VMNET_BROKER_NOT_FOUND;
    if (default_connection != NULL)
        status =
            vmnet_broker_connection_release(default_connection, network_name);
    forget_if_lost();
    pthread_mutex_unlock(&default_lock);
    return status;
}
