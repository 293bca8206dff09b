// SPDX-License-Identifier: Apache-2.0
// Status snapshots: the decoded "status" object and its indexed accessors.
#include "status.h"

#include <limits.h>
#include <stdlib.h>

#include "message.h"

// The decoded tree is kept as it came: jansson reads need no lock (nothing
// is modified, no reference count changes), the accessors are O(1) array
// look-ups, and a key a later broker adds costs nothing until read.
struct vmnet_broker_status {
    json_t *object; // the "status" object
    char *json;     // its compact text, malloc'd
};

vmnet_broker_return_t client_status_new(json_t *object, char *json,
                                        vmnet_broker_status_t **status) {
    vmnet_broker_status_t *built = calloc(1, sizeof(*built));

    if (built == NULL) {
        free(json);
        return VMNET_BROKER_INTERNAL_ERROR;
    }
    built->object = json_incref(object);
    built->json = json;
    *status = built;
    return VMNET_BROKER_SUCCESS;
}

// The index-th member of the array under key, when it is an object.
static const json_t *item(const vmnet_broker_status_t *status, const char *key,
                          size_t index) {
    if (status == NULL)
        return NULL;
    const json_t *found =
        json_array_get(json_object_get(status->object, key), index);
    return json_is_object(found) ? found : NULL;
}

static const json_t *network(const vmnet_broker_status_t *status,
                             size_t index) {
    return item(status, "networks", index);
}

static const json_t *peer(const vmnet_broker_status_t *status, size_t index) {
    return item(status, "peers", index);
}

static size_t count(const vmnet_broker_status_t *status, const char *key) {
    return status == NULL
               ? 0
               : json_array_size(json_object_get(status->object, key));
}

// object[key] when it is a string; NULL when absent or of another type.
static const char *string_of(const json_t *object, const char *key) {
    return json_string_value(json_object_get(object, key));
}

// object[key] when it is an integer, else -1.
static int64_t integer_of(const json_t *object, const char *key) {
    const json_t *value = json_object_get(object, key);
    return json_is_integer(value) ? (int64_t)json_integer_value(value) : -1;
}

const char *
vmnet_broker_status_broker_version(const vmnet_broker_status_t *status) {
    return status == NULL ? NULL : string_of(status->object, "version");
}

size_t vmnet_broker_status_network_count(const vmnet_broker_status_t *status) {
    return count(status, "networks");
}

const char *
vmnet_broker_status_network_name(const vmnet_broker_status_t *status,
                                 size_t index) {
    return string_of(network(status, index), "name");
}

const char *
vmnet_broker_status_network_mode(const vmnet_broker_status_t *status,
                                 size_t index) {
    return string_of(network(status, index), "mode");
}

const char *
vmnet_broker_status_network_bridge(const vmnet_broker_status_t *status,
                                   size_t index) {
    return string_of(network(status, index), "bridge");
}

const char *
vmnet_broker_status_network_subnet(const vmnet_broker_status_t *status,
                                   size_t index) {
    return string_of(network(status, index), "subnet");
}

const char *
vmnet_broker_status_network_uuid(const vmnet_broker_status_t *status,
                                 size_t index) {
    return string_of(network(status, index), "uuid");
}

unsigned
vmnet_broker_status_network_prefix_length(const vmnet_broker_status_t *status,
                                          size_t index) {
    const json_t *found = network(status, index);
    return found == NULL ? 0 : client_message_positive(found, "prefix_length");
}

unsigned vmnet_broker_status_network_peers(const vmnet_broker_status_t *status,
                                           size_t index) {
    const json_t *found = network(status, index);
    return found == NULL ? 0 : client_message_positive(found, "peers");
}

double
vmnet_broker_status_network_idle_remaining(const vmnet_broker_status_t *status,
                                           size_t index) {
    const json_t *value =
        json_object_get(network(status, index), "idle_remaining");
    // null (in use or persistent) and anything unexpected read as "not
    // counting down".
    if (!json_is_number(value) || json_number_value(value) < 0)
        return -1.0;
    return json_number_value(value);
}

bool vmnet_broker_status_network_persistent(const vmnet_broker_status_t *status,
                                            size_t index) {
    return json_is_true(json_object_get(network(status, index), "persistent"));
}

bool vmnet_broker_status_network_degraded(const vmnet_broker_status_t *status,
                                          size_t index) {
    return json_is_true(json_object_get(network(status, index), "degraded"));
}

const char *
vmnet_broker_status_network_degraded_reason(const vmnet_broker_status_t *status,
                                            size_t index) {
    if (!vmnet_broker_status_network_degraded(status, index))
        return NULL;
    return string_of(network(status, index), "degraded_reason");
}

size_t vmnet_broker_status_peer_count(const vmnet_broker_status_t *status) {
    return count(status, "peers");
}

int64_t vmnet_broker_status_peer_pid(const vmnet_broker_status_t *status,
                                     size_t index) {
    return integer_of(peer(status, index), "pid");
}

int64_t vmnet_broker_status_peer_uid(const vmnet_broker_status_t *status,
                                     size_t index) {
    return integer_of(peer(status, index), "uid");
}

int64_t vmnet_broker_status_peer_gid(const vmnet_broker_status_t *status,
                                     size_t index) {
    return integer_of(peer(status, index), "gid");
}

size_t
vmnet_broker_status_peer_network_count(const vmnet_broker_status_t *status,
                                       size_t index) {
    return json_array_size(json_object_get(peer(status, index), "networks"));
}

const char *
vmnet_broker_status_peer_network_name(const vmnet_broker_status_t *status,
                                      size_t index, size_t network_index) {
    return json_string_value(json_array_get(
        json_object_get(peer(status, index), "networks"), network_index));
}

const char *vmnet_broker_status_json(const vmnet_broker_status_t *status) {
    return status == NULL ? NULL : status->json;
}

void vmnet_broker_status_free(vmnet_broker_status_t *status) {
    if (status == NULL)
        return;
    json_decref(status->object);
    free(status->json);
    free(status);
}
