// SPDX-License-Identifier: Apache-2.0
// Connecting, acquiring networks and opening interfaces, with the CLI's
// error messages.
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

int cli_connect(const char *socket_path,
                vmnet_broker_connection_t **connection) {
    vmnet_broker_return_t status =
        vmnet_broker_connect(socket_path, connection);
    if (status == VMNET_BROKER_SUCCESS)
        return 0;
    fprintf(stderr, CLI_NAME ": connect to '%s': %s (%d)\n", socket_path,
            vmnet_broker_strerror(status), (int)status);
    return -1;
}

void cli_free_networks(vmnet_broker_network_t **networks) {
    if (networks == NULL)
        return;
    for (size_t i = 0; networks[i] != NULL; i++)
        vmnet_broker_network_free(networks[i]);
    free(networks);
}

int cli_acquire_networks(const char *socket_path, char *const *names,
                         size_t count, vmnet_broker_connection_t **connection,
                         vmnet_broker_network_t ***networks) {
    int result = -1;
    vmnet_broker_connection_t *connected = NULL;
    vmnet_broker_network_t **acquired = calloc(count + 1, sizeof(*acquired));

    if (acquired == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    if (cli_connect(socket_path, &connected) != 0)
        goto out;
    for (size_t i = 0; i < count; i++) {
        vmnet_broker_return_t status =
            vmnet_broker_connection_acquire(connected, names[i], &acquired[i]);
        if (status != VMNET_BROKER_SUCCESS) {
            fprintf(stderr, CLI_NAME ": acquire '%s': %s (%d)\n", names[i],
                    vmnet_broker_strerror(status), (int)status);
            goto out;
        }
    }
    *connection = connected;
    connected = NULL;
    *networks = acquired;
    acquired = NULL;
    result = 0;
out:
    cli_free_networks(acquired);
    vmnet_broker_connection_close(connected);
    return result;
}

int cli_open_interface(vmnet_broker_connection_t *connection,
                       const char *network,
                       vmnet_broker_interface_t **interface) {
    vmnet_broker_return_t status =
        vmnet_broker_connection_open_interface(connection, network, interface);
    if (status == VMNET_BROKER_SUCCESS)
        return 0;
    fprintf(stderr, CLI_NAME ": open interface on '%s': %s (%d)\n", network,
            vmnet_broker_strerror(status), (int)status);
    return -1;
}
