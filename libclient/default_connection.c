// SPDX-License-Identifier: Apache-2.0
// The original API: one process-wide connection, opened on first use.
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include "connection.h"

// The lock covers opening, using and replacing the connection, so two
// threads' first calls cannot open two connections (two peers, each with
// its own references).
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static vmnet_broker_connection_t *default_connection;
static pthread_once_t fork_handler_once = PTHREAD_ONCE_INIT;

// Runs in the child of fork(), single-threaded. The parent's connection is
// not the child's: using it would make two processes one peer, each able
// to read the other's replies. So the child forgets it: its copy of the
// descriptor is closed (the socket stays open in the parent, which keeps
// its references), and the next call opens the child's own. The structure
// is left allocated: its mutex may have been held by a thread that does
// not exist in the child, and destroying a held mutex is undefined. For
// the same reason default_lock, held at fork() by another thread perhaps,
// starts over unlocked.
static void forget_in_child(void) {
    pthread_mutex_t unlocked = PTHREAD_MUTEX_INITIALIZER;

    default_lock = unlocked;
    if (default_connection != NULL) {
        close(vmnet_broker_connection_fd(default_connection));
        default_connection = NULL;
    }
}

static void register_fork_handler(void) {
    pthread_atfork(NULL, NULL, forget_in_child);
}

// $VMNET_BROKER_TIMEOUT_MS when it is a whole number of milliseconds, else
// the default. secure_getenv: a set-user-ID program is not the invoking
// user's to configure.
static unsigned timeout_from_environment(void) {
    const char *text = secure_getenv(VMNET_BROKER_TIMEOUT_MS);
    char *end;
    unsigned long value;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return VMNET_BROKER_DEFAULT_TIMEOUT_MS;
    errno = 0;
    value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > UINT_MAX)
        return VMNET_BROKER_DEFAULT_TIMEOUT_MS;
    return (unsigned)value;
}

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
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;

    if (default_connection != NULL)
        return status;
    // Only a process that has had a connection needs to forget one in its
    // children.
    pthread_once(&fork_handler_once, register_fork_handler);
    status = vmnet_broker_connect(NULL, &default_connection);
    if (status == VMNET_BROKER_SUCCESS)
        vmnet_broker_connection_set_timeout(default_connection,
                                            timeout_from_environment());
    return status;
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

char *vmnet_broker_last_message(void) {
    char *message = NULL;

    pthread_mutex_lock(&default_lock);
    if (default_connection != NULL)
        message = vmnet_broker_connection_last_message(default_connection);
    pthread_mutex_unlock(&default_lock);
    return message;
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
