// SPDX-License-Identifier: Apache-2.0
// Interfaces (TAP devices with their descriptor) and their accessors.
#include "interface.h"

#include <stdlib.h>
#include <unistd.h>

#include "message.h"

struct vmnet_broker_interface {
    // The whole "interface" object, for callers that need keys the
    // accessors do not cover (later additions).
    char *json;
    char *name;
    char *mac;
    char *network;
    char *bridge;
    char *ipv4;
    char *ipv6;
    unsigned mtu;
    int fd; // -1 once taken
};

vmnet_broker_return_t
client_interface_new(const json_t *object, int fd,
                     vmnet_broker_interface_t **interface) {
    vmnet_broker_return_t status = VMNET_BROKER_INTERNAL_ERROR;
    vmnet_broker_interface_t *built = calloc(1, sizeof(*built));

    if (built == NULL)
        goto out;
    // Not the caller's descriptor until success: freeing a half-built
    // interface must not close it.
    built->fd = -1;
    built->json = client_message_dump(object);
    if (built->json == NULL)
        goto out;
    if (client_message_copy_string(object, "name", &built->name) != 0 ||
        client_message_copy_string(object, "mac", &built->mac) != 0 ||
        client_message_copy_string(object, "network", &built->network) != 0 ||
        client_message_copy_string(object, "bridge", &built->bridge) != 0 ||
        client_message_copy_string(object, "ipv4", &built->ipv4) != 0 ||
        client_message_copy_string(object, "ipv6", &built->ipv6) != 0)
        goto out;
    built->mtu = client_message_positive(object, "mtu");
    built->fd = fd;
    *interface = built;
    built = NULL;
    status = VMNET_BROKER_SUCCESS;
out:
    vmnet_broker_interface_free(built);
    return status;
}

const char *
vmnet_broker_interface_name(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->name;
}

const char *
vmnet_broker_interface_mac(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->mac;
}

const char *
vmnet_broker_interface_network(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->network;
}

const char *
vmnet_broker_interface_bridge(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->bridge;
}

const char *
vmnet_broker_interface_ipv4(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->ipv4;
}

const char *
vmnet_broker_interface_ipv6(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->ipv6;
}

const char *
vmnet_broker_interface_json(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? NULL : interface->json;
}

unsigned vmnet_broker_interface_mtu(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? 0 : interface->mtu;
}

int vmnet_broker_interface_fd(const vmnet_broker_interface_t *interface) {
    return interface == NULL ? -1 : interface->fd;
}

int vmnet_broker_interface_take_fd(vmnet_broker_interface_t *interface) {
    if (interface == NULL)
        return -1;
    int fd = interface->fd;
    interface->fd = -1;
    return fd;
}

void vmnet_broker_interface_free(vmnet_broker_interface_t *interface) {
    if (interface == NULL)
        return;
    if (interface->fd >= 0)
        close(interface->fd);
    free(interface->json);
    free(interface->name);
    free(interface->mac);
    free(interface->network);
    free(interface->bridge);
    free(interface->ipv4);
    free(interface->ipv6);
    free(interface);
}
