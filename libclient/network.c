// SPDX-License-Identifier: Apache-2.0
// Network serializations and their accessors.
#include "network.h"

#include <stdlib.h>
#include <string.h>

#include "message.h"

struct vmnet_broker_network {
    // The whole "network" object, for callers that need keys the accessors
    // do not cover (prefix_length, description, later additions).
    char *json;
    char *name;
    char *mode;
    char *bridge;
    char *subnet;
    char *mask;
    char *gateway;
    char *uuid;
    unsigned mtu;
};

vmnet_broker_return_t client_network_new(const json_t *object, char *json,
                                         vmnet_broker_network_t **network) {
    vmnet_broker_return_t status = VMNET_BROKER_INTERNAL_ERROR;
    vmnet_broker_network_t *built = calloc(1, sizeof(*built));

    if (built == NULL) {
        free(json);
        goto out;
    }
    built->json = json;
    if (client_message_copy_string(object, "name", &built->name) != 0 ||
        client_message_copy_string(object, "mode", &built->mode) != 0 ||
        client_message_copy_string(object, "bridge", &built->bridge) != 0 ||
        client_message_copy_string(object, "subnet", &built->subnet) != 0 ||
        client_message_copy_string(object, "mask", &built->mask) != 0 ||
        client_message_copy_string(object, "gateway", &built->gateway) != 0 ||
        client_message_copy_string(object, "uuid", &built->uuid) != 0)
        goto out;
    built->mtu = client_message_positive(object, "mtu");
    *network = built;
    built = NULL;
    status = VMNET_BROKER_SUCCESS;
out:
    vmnet_broker_network_free(built);
    return status;
}

// Copies a field that may be absent (NULL). Returns 0, or -1 when memory
// runs out.
static int copy_field(const char *field, char **copy) {
    if (field != NULL && (*copy = strdup(field)) == NULL)
        return -1;
    return 0;
}

vmnet_broker_return_t client_network_copy(const vmnet_broker_network_t *network,
                                          vmnet_broker_network_t **copy) {
    vmnet_broker_return_t status = VMNET_BROKER_INTERNAL_ERROR;
    vmnet_broker_network_t *built = calloc(1, sizeof(*built));

    if (built == NULL)
        goto out;
    if (copy_field(network->json, &built->json) != 0 ||
        copy_field(network->name, &built->name) != 0 ||
        copy_field(network->mode, &built->mode) != 0 ||
        copy_field(network->bridge, &built->bridge) != 0 ||
        copy_field(network->subnet, &built->subnet) != 0 ||
        copy_field(network->mask, &built->mask) != 0 ||
        copy_field(network->gateway, &built->gateway) != 0 ||
        copy_field(network->uuid, &built->uuid) != 0)
        goto out;
    built->mtu = network->mtu;
    *copy = built;
    built = NULL;
    status = VMNET_BROKER_SUCCESS;
out:
    vmnet_broker_network_free(built);
    return status;
}

const char *vmnet_broker_network_name(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->name;
}

const char *vmnet_broker_network_mode(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->mode;
}

const char *vmnet_broker_network_bridge(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->bridge;
}

const char *vmnet_broker_network_subnet(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->subnet;
}

const char *vmnet_broker_network_mask(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->mask;
}

const char *
vmnet_broker_network_gateway(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->gateway;
}

const char *vmnet_broker_network_uuid(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->uuid;
}

unsigned vmnet_broker_network_mtu(const vmnet_broker_network_t *network) {
    return network == NULL ? 0 : network->mtu;
}

const char *vmnet_broker_network_json(const vmnet_broker_network_t *network) {
    return network == NULL ? NULL : network->json;
}

void vmnet_broker_network_free(vmnet_broker_network_t *network) {
    if (network == NULL)
        return;
    free(network->json);
    free(network->name);
    free(network->mode);
    free(network->bridge);
    free(network->subnet);
    free(network->mask);
    free(network->gateway);
    free(network->uuid);
    free(network);
}
