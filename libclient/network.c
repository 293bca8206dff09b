// SPDX-License-Identifier: Apache-2.0
// Network serializations and their accessors.
#include "network.h"

#include <stdlib.h>
#include <string.h>

#include "message.h"

// The string fields, by the key the broker sends each under. One table, so
// decoding, copying and freeing cannot miss a field.
enum network_string {
    NETWORK_NAME,
    NETWORK_MODE,
    NETWORK_UUID,
    NETWORK_BRIDGE,
    NETWORK_SUBNET,
    NETWORK_MASK,
    NETWORK_GATEWAY,
    NETWORK_DESCRIPTION,
    NETWORK_DHCP_START,
    NETWORK_DHCP_END,
    NETWORK_DNS,
    NETWORK_IPV6_PREFIX,
    NETWORK_STRING_COUNT
};

static const char *const string_keys[NETWORK_STRING_COUNT] = {
    [NETWORK_NAME] = "name",
    [NETWORK_MODE] = "mode",
    [NETWORK_UUID] = "uuid",
    [NETWORK_BRIDGE] = "bridge",
    [NETWORK_SUBNET] = "subnet",
    [NETWORK_MASK] = "mask",
    [NETWORK_GATEWAY] = "gateway",
    [NETWORK_DESCRIPTION] = "description",
    [NETWORK_DHCP_START] = "dhcp_start",
    [NETWORK_DHCP_END] = "dhcp_end",
    [NETWORK_DNS] = "dns",
    [NETWORK_IPV6_PREFIX] = "ipv6_prefix",
};

struct vmnet_broker_network {
    // The whole "network" object, for keys the accessors do not cover
    // (later additions).
    char *json;
    char *strings[NETWORK_STRING_COUNT]; // NULL: not sent
    unsigned mtu;
    unsigned prefix_length;
    unsigned ipv6_prefix_length;
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
    for (size_t i = 0; i < NETWORK_STRING_COUNT; i++)
        if (client_message_copy_string(object, string_keys[i],
                                       &built->strings[i]) != 0)
            goto out;
    built->mtu = client_message_positive(object, "mtu");
    built->prefix_length = client_message_positive(object, "prefix_length");
    built->ipv6_prefix_length =
        client_message_positive(object, "ipv6_prefix_length");
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
    if (copy_field(network->json, &built->json) != 0)
        goto out;
    for (size_t i = 0; i < NETWORK_STRING_COUNT; i++)
        if (copy_field(network->strings[i], &built->strings[i]) != 0)
            goto out;
    built->mtu = network->mtu;
    built->prefix_length = network->prefix_length;
    built->ipv6_prefix_length = network->ipv6_prefix_length;
    *copy = built;
    built = NULL;
    status = VMNET_BROKER_SUCCESS;
out:
    vmnet_broker_network_free(built);
    return status;
}

static const char *string_field(const vmnet_broker_network_t *network,
                                enum network_string field) {
    return network == NULL ? NULL : network->strings[field];
}

const char *vmnet_broker_network_name(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_NAME);
}

const char *vmnet_broker_network_mode(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_MODE);
}

const char *vmnet_broker_network_bridge(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_BRIDGE);
}

const char *vmnet_broker_network_uuid(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_UUID);
}

const char *vmnet_broker_network_subnet(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_SUBNET);
}

const char *vmnet_broker_network_mask(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_MASK);
}

unsigned
vmnet_broker_network_prefix_length(const vmnet_broker_network_t *network) {
    return network == NULL ? 0 : network->prefix_length;
}

const char *
vmnet_broker_network_gateway(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_GATEWAY);
}

const char *
vmnet_broker_network_description(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_DESCRIPTION);
}

const char *
vmnet_broker_network_dhcp_start(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_DHCP_START);
}

const char *
vmnet_broker_network_dhcp_end(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_DHCP_END);
}

const char *vmnet_broker_network_dns(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_DNS);
}

const char *
vmnet_broker_network_ipv6_prefix(const vmnet_broker_network_t *network) {
    return string_field(network, NETWORK_IPV6_PREFIX);
}

unsigned
vmnet_broker_network_ipv6_prefix_length(const vmnet_broker_network_t *network) {
    return network == NULL ? 0 : network->ipv6_prefix_length;
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
    for (size_t i = 0; i < NETWORK_STRING_COUNT; i++)
        free(network->strings[i]);
    free(network);
}
