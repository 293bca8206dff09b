// SPDX-License-Identifier: Apache-2.0
// "acquire": print networks and interfaces, then hold them until SIGINT or
// SIGTERM.
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static volatile sig_atomic_t stop_requested;

static void request_stop(int signal_number) {
    (void)signal_number;
    stop_requested = 1;
}

static const char *or_dash(const char *value) {
    return value == NULL ? "-" : value;
}

static void print_network(const vmnet_broker_network_t *network) {
    // prefix_length has no accessor: it is read from the JSON text.
    json_t *object = json_loads(vmnet_broker_network_json(network), 0, NULL);
    json_t *prefix = json_object_get(object, "prefix_length");
    const char *subnet = vmnet_broker_network_subnet(network);
    const char *mask = vmnet_broker_network_mask(network);

    printf("name:    %s\n", or_dash(vmnet_broker_network_name(network)));
    printf("mode:    %s\n", or_dash(vmnet_broker_network_mode(network)));
    printf("bridge:  %s\n", or_dash(vmnet_broker_network_bridge(network)));
    if (subnet != NULL && json_is_integer(prefix))
        printf("subnet:  %s/%lld\n", subnet,
               (long long)json_integer_value(prefix));
    else if (subnet != NULL && mask != NULL)
        printf("subnet:  %s/%s\n", subnet, mask);
    else
        printf("subnet:  %s\n", or_dash(subnet));
    printf("gateway: %s\n", or_dash(vmnet_broker_network_gateway(network)));
    if (vmnet_broker_network_mtu(network) != 0)
        printf("mtu:     %u\n", vmnet_broker_network_mtu(network));
    else
        printf("mtu:     -\n");
    printf("uuid:    %s\n", or_dash(vmnet_broker_network_uuid(network)));
    json_decref(object);
}

static void print_interface(const vmnet_broker_interface_t *interface) {
    // network and bridge have no accessors: they are read from the JSON.
    json_t *object =
        json_loads(vmnet_broker_interface_json(interface), 0, NULL);

    printf("interface: %s\n", or_dash(vmnet_broker_interface_name(interface)));
    printf("mac:       %s\n", or_dash(vmnet_broker_interface_mac(interface)));
    printf("network:   %s\n",
           or_dash(json_string_value(json_object_get(object, "network"))));
    printf("bridge:    %s\n",
           or_dash(json_string_value(json_object_get(object, "bridge"))));
    if (vmnet_broker_interface_mtu(interface) != 0)
        printf("mtu:       %u\n", vmnet_broker_interface_mtu(interface));
    else
        printf("mtu:       -\n");
    json_decref(object);
}

static void free_interfaces(vmnet_broker_interface_t **interfaces,
                            size_t count) {
    if (interfaces == NULL)
        return;
    for (size_t i = 0; i < count; i++)
        vmnet_broker_interface_free(interfaces[i]);
    free(interfaces);
}

// Catches SIGINT and SIGTERM from now on, blocked outside ppoll so that a
// signal cannot slip in between the check of stop_requested and the wait.
// Called before the networks are printed: whoever reads them may signal us
// at once. Stores the mask to wait with in *waiting_mask.
static void catch_stop_signals(sigset_t *waiting_mask) {
    struct sigaction action = {.sa_handler = request_stop};
    sigset_t stop_signals;

    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop_signals, waiting_mask);
    sigdelset(waiting_mask, SIGINT);
    sigdelset(waiting_mask, SIGTERM);
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

// Waits for SIGINT or SIGTERM (returns 0) or for the broker to end the
// connection (returns 1: the networks are gone, holding on is pointless).
static int hold(int fd, const sigset_t *waiting_mask) {
    struct pollfd connection = {.fd = fd, .events = POLLIN};

    while (!stop_requested) {
        int ready = ppoll(&connection, 1, NULL, waiting_mask);
        if (ready < 0 && errno != EINTR) {
            fprintf(stderr, CLI_NAME ": poll: %s\n", strerror(errno));
            return 1;
        }
        // The broker never speaks unasked: any event is the end of the
        // connection.
        if (ready > 0) {
            fprintf(stderr, CLI_NAME ": the broker closed the connection; the "
                                     "networks are released\n");
            return 1;
        }
    }
    return 0;
}

int command_acquire(const char *socket_path, int argc, char **argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"tap", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int json = 0;
    int option;
    int exit_status = 1;
    size_t n_taps = 0;
    size_t n_open = 0;
    // Each option asks for at most one interface.
    char **tap_networks = calloc((size_t)argc, sizeof(*tap_networks));
    vmnet_broker_interface_t **interfaces =
        calloc((size_t)argc, sizeof(*interfaces));
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t **networks = NULL;
    sigset_t waiting_mask;

    if (tap_networks == NULL || interfaces == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    optind = 0;
    while ((option = getopt_long(argc, argv, "jt:", options, NULL)) != -1) {
        if (option == 'j') {
            json = 1;
        } else if (option == 't') {
            tap_networks[n_taps++] = optarg;
        } else {
            exit_status = cli_usage_error();
            goto out;
        }
    }
    if (optind == argc && n_taps == 0) {
        fprintf(stderr, CLI_NAME ": acquire: no network named\n");
        exit_status = cli_usage_error();
        goto out;
    }
    if (cli_acquire_networks(socket_path, argv + optind,
                             (size_t)(argc - optind), &connection,
                             &networks) != 0)
        goto out;
    for (; n_open < n_taps; n_open++) {
        if (cli_open_interface(connection, tap_networks[n_open],
                               &interfaces[n_open]) != 0)
            goto out;
    }
    catch_stop_signals(&waiting_mask);
    for (size_t i = 0; networks[i] != NULL; i++) {
        if (json) {
            puts(vmnet_broker_network_json(networks[i]));
        } else {
            if (i > 0)
                putchar('\n');
            print_network(networks[i]);
        }
    }
    for (size_t i = 0; i < n_open; i++) {
        if (json) {
            puts(vmnet_broker_interface_json(interfaces[i]));
        } else {
            if (i > 0 || networks[0] != NULL)
                putchar('\n');
            print_interface(interfaces[i]);
        }
    }
    // Whoever reads our output (a script, a pipe) must get it now, not
    // when the networks are finally released.
    if (fflush(stdout) != 0) {
        fprintf(stderr, CLI_NAME ": write: %s\n", strerror(errno));
        goto out;
    }
    exit_status = hold(vmnet_broker_connection_fd(connection), &waiting_mask);
out:
    free_interfaces(interfaces, n_open);
    free(tap_networks);
    cli_free_networks(networks);
    vmnet_broker_connection_close(connection);
    return exit_status;
}
