// SPDX-License-Identifier: Apache-2.0
// Explicit connections: one broker peer each, calls serialized by a mutex.
#include "connection.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "interface.h"
#include "message.h"
#include "network.h"
#include "status.h"
#include "transport.h"

struct vmnet_broker_connection {
    // Held for a whole request and its reply, so that replies from
    // different threads cannot be swapped.
    pthread_mutex_t lock;
    int fd;
    bool lost;
    // Read at the start of each call; atomic so that setting it, and
    // shutting the connection down, need not wait for a call in progress.
    atomic_uint timeout_ms;
    atomic_bool shut_down;
    // The last acquire reply and the network decoded from it, or NULL. The
    // broker answers every acquire of a network the connection holds with
    // the same bytes, and decoding them is most of the library's work per
    // acquire: a repeated reply is answered with a copy of that network.
    char *last_reply;
    size_t last_reply_len;
    vmnet_broker_network_t *last_network;
    // The "message" of the last call's error reply, or NULL.
    char *last_message;
};

vmnet_broker_return_t
vmnet_broker_connect(const char *socket_path,
                     vmnet_broker_connection_t **connection) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;
    vmnet_broker_connection_t *built = NULL;
    int fd = -1;

    if (connection == NULL)
        goto out;
    status = client_transport_connect(socket_path, &fd);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    status = VMNET_BROKER_INTERNAL_ERROR;
    built = calloc(1, sizeof(*built));
    if (built == NULL)
        goto out;
    // Nothing fails after the mutex exists, so out: never destroys one.
    if (pthread_mutex_init(&built->lock, NULL) != 0)
        goto out;
    built->fd = fd;
    atomic_init(&built->timeout_ms, VMNET_BROKER_DEFAULT_TIMEOUT_MS);
    atomic_init(&built->shut_down, false);
    *connection = built;
    built = NULL;
    fd = -1;
    status = VMNET_BROKER_SUCCESS;
out:
    free(built);
    if (fd >= 0)
        close(fd);
    return status;
}

// Marks connection lost after a transport failure and returns the status
// to report. Shut down, not closed: the descriptor stays valid (the caller
// may hold its number) until vmnet_broker_connection_close(), but a reply
// that comes late can never be read as another request's, and the broker
// sees the hang-up and drops the references at once.
static vmnet_broker_return_t lose(vmnet_broker_connection_t *connection,
                                  vmnet_broker_return_t status) {
    connection->lost = true;
    shutdown(connection->fd, SHUT_RDWR);
    // A cancelled call is the caller's doing, not a confused broker.
    return atomic_load(&connection->shut_down) ? VMNET_BROKER_XPC_FAILURE
                                               : status;
}

// Sends one request and receives its reply; the caller holds the lock. On
// success stores the reply in *reply (malloc'd, the caller frees), its
// length in *reply_len and the descriptor that came with it, or -1, in
// *received_fd (the caller closes it).
static vmnet_broker_return_t round_trip(vmnet_broker_connection_t *connection,
                                        const char *command,
                                        const char *network_name, char **reply,
                                        size_t *reply_len, int *received_fd) {
    vmnet_broker_return_t status = VMNET_BROKER_XPC_FAILURE;
    char *request = NULL;
    size_t request_len;
    // One deadline for the whole exchange: a broker slow to read and slow to
    // answer still answers within the timeout or not at all.
    int64_t deadline =
        client_transport_deadline(atomic_load(&connection->timeout_ms));

    free(connection->last_message);
    connection->last_message = NULL;
    if (connection->lost)
        goto out;
    status = client_message_encode_request(command, network_name, &request,
                                           &request_len);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    status =
        client_transport_send(connection->fd, request, request_len, deadline);
    if (status == VMNET_BROKER_SUCCESS)
        status = client_transport_receive(connection->fd, reply, reply_len,
                                          received_fd, deadline);
    // Either failure leaves the connection unusable; INVALID_REQUEST (too
    // large to send) and INTERNAL_ERROR (memory, the reply discarded) do
    // not.
    if (status == VMNET_BROKER_XPC_FAILURE ||
        status == VMNET_BROKER_INVALID_REPLY)
        status = lose(connection, status);
    // Parsed only when there is one: the successful acquire, the common
    // case, stays one memcmp (see network_from_reply()).
    if (status == VMNET_BROKER_SUCCESS &&
        memmem(*reply, *reply_len, "\"message\"", 9) != NULL)
        connection->last_message =
            client_message_error_text(*reply, *reply_len);
out:
    free(request);
    return status;
}

// Sends one request and decodes its reply; the caller holds the lock. When
// value_text is not NULL, the value's compact JSON text is stored there
// (malloc'd, the caller frees). When passed_fd is not NULL, a successful
// reply's descriptor (or -1 if none came) is stored there. Every other
// descriptor is closed, so that a broker attaching one to an error or to
// another command's reply leaks nothing.
static vmnet_broker_return_t exchange(vmnet_broker_connection_t *connection,
                                      const char *command,
                                      const char *network_name,
                                      const char *expected_key,
                                      json_type expected_type, json_t **value,
                                      char **value_text, int *passed_fd) {
    char *reply = NULL;
    size_t reply_len = 0;
    int received_fd = -1;
    vmnet_broker_return_t status = round_trip(connection, command, network_name,
                                              &reply, &reply_len, &received_fd);

    if (status == VMNET_BROKER_SUCCESS)
        status = client_message_decode_reply(reply, reply_len, expected_key,
                                             expected_type, value, value_text);
    if (status == VMNET_BROKER_SUCCESS && passed_fd != NULL) {
        *passed_fd = received_fd;
        received_fd = -1;
    }
    if (received_fd >= 0)
        close(received_fd);
    free(reply);
    return status;
}

// Keeps reply and the network decoded from it for the next acquire, taking
// *decoded. Without memory for the copy nothing is kept: the next acquire
// decodes its reply.
static void remember_acquired(vmnet_broker_connection_t *connection,
                              const char *reply, size_t len,
                              vmnet_broker_network_t **decoded) {
    char *copy = malloc(len);

    if (copy == NULL)
        return;
    memcpy(copy, reply, len);
    free(connection->last_reply);
    vmnet_broker_network_free(connection->last_network);
    connection->last_reply = copy;
    connection->last_reply_len = len;
    connection->last_network = *decoded;
    *decoded = NULL;
}

// Stores in *network a new network described by an acquire reply; the
// caller holds the lock. The same bytes as the last reply decode to the
// same network, so that one is copied instead.
static vmnet_broker_return_t
network_from_reply(vmnet_broker_connection_t *connection, const char *reply,
                   size_t len, vmnet_broker_network_t **network) {
    vmnet_broker_return_t status;
    json_t *object = NULL;
    char *json = NULL;
    vmnet_broker_network_t *decoded = NULL;

    if (connection->last_network != NULL && len == connection->last_reply_len &&
        memcmp(reply, connection->last_reply, len) == 0)
        return client_network_copy(connection->last_network, network);
    status = client_message_decode_reply(reply, len, "network", JSON_OBJECT,
                                         &object, &json);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    // The broker now holds a reference even if a copy below fails; it is
    // dropped with the connection, as after any failure of the caller.
    status = client_network_new(object, json, &decoded);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    status = client_network_copy(decoded, network);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    remember_acquired(connection, reply, len, &decoded);
out:
    vmnet_broker_network_free(decoded);
    json_decref(object);
    return status;
}

vmnet_broker_return_t
vmnet_broker_connection_acquire(vmnet_broker_connection_t *connection,
                                const char *network_name,
                                vmnet_broker_network_t **network) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;
    char *reply = NULL;
    size_t reply_len = 0;
    int received_fd = -1;

    if (connection == NULL || network_name == NULL || network == NULL)
        return status;
    pthread_mutex_lock(&connection->lock);
    status = round_trip(connection, "acquire", network_name, &reply, &reply_len,
                        &received_fd);
    if (status == VMNET_BROKER_SUCCESS)
        status = network_from_reply(connection, reply, reply_len, network);
    pthread_mutex_unlock(&connection->lock);
    // An acquire reply carries no descriptor; one that came is not leaked.
    if (received_fd >= 0)
        close(received_fd);
    free(reply);
    return status;
}

vmnet_broker_return_t
vmnet_broker_connection_release(vmnet_broker_connection_t *connection,
                                const char *network_name) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;
    json_t *released = NULL;

    if (connection == NULL || network_name == NULL)
        return status;
    pthread_mutex_lock(&connection->lock);
    status = exchange(connection, "release", network_name, "released",
                      JSON_STRING, &released, NULL, NULL);
    pthread_mutex_unlock(&connection->lock);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    // Replies come in order, so another name means the broker and this
    // client disagree about which request is being answered.
    if (strcmp(json_string_value(released), network_name) != 0)
        status = VMNET_BROKER_INVALID_REPLY;
out:
    json_decref(released);
    return status;
}

vmnet_broker_return_t
vmnet_broker_connection_open_interface(vmnet_broker_connection_t *connection,
                                       const char *network_name,
                                       vmnet_broker_interface_t **interface) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;
    json_t *object = NULL;
    int fd = -1;

    if (connection == NULL || network_name == NULL || interface == NULL)
        return status;
    pthread_mutex_lock(&connection->lock);
    status = exchange(connection, "open_interface", network_name, "interface",
                      JSON_OBJECT, &object, NULL, &fd);
    pthread_mutex_unlock(&connection->lock);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    // A description without the device is of no use to a VM; the broker
    // sends both or neither.
    status = VMNET_BROKER_INVALID_REPLY;
    if (fd < 0)
        goto out;
    // On failure the broker's device goes away with fd, closed below; the
    // network stays acquired until the connection closes, as after acquire.
    status = client_interface_new(object, fd, interface);
    if (status == VMNET_BROKER_SUCCESS)
        fd = -1;
out:
    if (fd >= 0)
        close(fd);
    json_decref(object);
    return status;
}

vmnet_broker_return_t
vmnet_broker_connection_status(vmnet_broker_connection_t *connection,
                               char **json) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;
    json_t *object = NULL;

    if (connection == NULL || json == NULL)
        return status;
    pthread_mutex_lock(&connection->lock);
    status = exchange(connection, "status", NULL, "status", JSON_OBJECT,
                      &object, json, NULL);
    pthread_mutex_unlock(&connection->lock);
    json_decref(object);
    return status;
}

vmnet_broker_return_t
vmnet_broker_connection_leases(vmnet_broker_connection_t *connection,
                               const char *network_name, char **json) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REQUEST;
    json_t *array = NULL;

    if (connection == NULL || network_name == NULL || json == NULL)
        return status;
    pthread_mutex_lock(&connection->lock);
    status = exchange(connection, "leases", network_name, "leases", JSON_ARRAY,
                      &array, json, NULL);
    pthread_mutex_unlock(&connection->lock);
    json_decref(array);
    return status;
}

vmnet_broker_return_t
vmnet_broker_connection_get_status(vmnet_broker_connection_t *connection,
                                   vmnet_broker_status_t **status) {
    vmnet_broker_return_t result = VMNET_BROKER_INVALID_REQUEST;
    json_t *object = NULL;
    char *json = NULL;

    if (connection == NULL || status == NULL)
        return result;
    pthread_mutex_lock(&connection->lock);
    result = exchange(connection, "status", NULL, "status", JSON_OBJECT,
                      &object, &json, NULL);
    pthread_mutex_unlock(&connection->lock);
    if (result == VMNET_BROKER_SUCCESS)
        result = client_status_new(object, json, status);
    json_decref(object);
    return result;
}

vmnet_broker_return_t
vmnet_broker_connection_set_timeout(vmnet_broker_connection_t *connection,
                                    unsigned timeout_ms) {
    if (connection == NULL)
        return VMNET_BROKER_INVALID_REQUEST;
    atomic_store(&connection->timeout_ms, timeout_ms);
    return VMNET_BROKER_SUCCESS;
}

void vmnet_broker_connection_shutdown(vmnet_broker_connection_t *connection) {
    if (connection == NULL)
        return;
    // Set before the shutdown, so the call it wakes sees why.
    atomic_store(&connection->shut_down, true);
    shutdown(connection->fd, SHUT_RDWR);
}

int vmnet_broker_connection_fd(const vmnet_broker_connection_t *connection) {
    // fd never changes after connect, so reading it needs no lock.
    return connection == NULL ? -1 : connection->fd;
}

char *
vmnet_broker_connection_last_message(vmnet_broker_connection_t *connection) {
    char *copy = NULL;

    if (connection == NULL)
        return NULL;
    pthread_mutex_lock(&connection->lock);
    if (connection->last_message != NULL)
        copy = strdup(connection->last_message);
    pthread_mutex_unlock(&connection->lock);
    return copy;
}

bool client_connection_is_lost(vmnet_broker_connection_t *connection) {
    pthread_mutex_lock(&connection->lock);
    bool lost = connection->lost;
    pthread_mutex_unlock(&connection->lock);
    return lost;
}

void vmnet_broker_connection_close(vmnet_broker_connection_t *connection) {
    if (connection == NULL)
        return;
    close(connection->fd);
    pthread_mutex_destroy(&connection->lock);
    free(connection->last_reply);
    free(connection->last_message);
    vmnet_broker_network_free(connection->last_network);
    free(connection);
}
