// SPDX-License-Identifier: Apache-2.0
// Example: acquire a network with the original API and print where to
// attach a VM.
#include <stdio.h>
#include <stdlib.h>

#include <vmnet-broker.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "shared";
    vmnet_broker_return_t status;

    // The process-wide connection holds the network until the process
    // exits; freeing the serialization only frees memory.
    vmnet_broker_network_t *network =
        vmnet_broker_acquire_network(name, &status);
    if (network == NULL) {
        fprintf(stderr, "acquire '%s': %s (%d)\n", name,
                vmnet_broker_strerror(status), (int)status);
        return EXIT_FAILURE;
    }
    // Fields the broker did not send are NULL.
    const char *bridge = vmnet_broker_network_bridge(network);
    printf("attach VMs to bridge %s\n", bridge != NULL ? bridge : "(none)");
    printf("network: %s\n", vmnet_broker_network_json(network));
    vmnet_broker_network_free(network);
    return EXIT_SUCCESS;
}
