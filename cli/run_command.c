// SPDX-License-Identifier: Apache-2.0
// "run": acquire networks, then become a command that inherits the
// connection, so the networks live exactly as long as the command.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

// The JSON array of the networks' objects, malloc'd, or NULL when memory
// runs out.
static char *networks_json(vmnet_broker_network_t *const *networks) {
    json_t *array = json_array();
    char *text = NULL;

    if (array == NULL)
        goto out;
    for (size_t i = 0; networks[i] != NULL; i++) {
        json_t *object =
            json_loads(vmnet_broker_network_json(networks[i]), 0, NULL);
        if (json_array_append_new(array, object) != 0)
            goto out;
    }
    text = json_dumps(array, JSON_COMPACT);
out:
    json_decref(array);
    return text;
}

// Lets the command inherit the connection and tells it where it is.
static int hand_over(vmnet_broker_connection_t *connection,
                     vmnet_broker_network_t *const *networks) {
    int fd = vmnet_broker_connection_fd(connection);
    char fd_text[16];
    char *json = networks_json(networks);
    int result = -1;

    if (json == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) {
        fprintf(stderr, CLI_NAME ": fcntl: %s\n", strerror(errno));
        goto out;
    }
    snprintf(fd_text, sizeof(fd_text), "%d", fd);
    if (setenv("VMNET_BROKER_FD", fd_text, 1) != 0 ||
        setenv("VMNET_BROKER_NETWORKS", json, 1) != 0) {
        fprintf(stderr, CLI_NAME ": setenv: %s\n", strerror(errno));
        goto out;
    }
    result = 0;
out:
    free(json);
    return result;
}

int command_run(const char *socket_path, int argc, char **argv) {
    static const struct option options[] = {
        {"network", required_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    int option;
    int exit_status = 1;
    size_t count = 0;
    char **names = calloc((size_t)argc, sizeof(*names));
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t **networks = NULL;

    if (names == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    optind = 0;
    // "+": stop at the command, whose own options are not ours to parse.
    while ((option = getopt_long(argc, argv, "+n:", options, NULL)) != -1) {
        if (option != 'n') {
            exit_status = cli_usage_error();
            goto out;
        }
        names[count++] = optarg;
    }
    if (count == 0 || optind == argc) {
        fprintf(stderr, CLI_NAME ": run: %s\n",
                count == 0 ? "no --network given" : "no command given");
        exit_status = cli_usage_error();
        goto out;
    }
    if (cli_acquire_networks(socket_path, names, count, &connection,
                             &networks) != 0)
        goto out;
    if (hand_over(connection, networks) != 0)
        goto out;
    execvp(argv[optind], argv + optind);
    fprintf(stderr, CLI_NAME ": exec '%s': %s\n", argv[optind],
            strerror(errno));
    exit_status = 127;
out:
    cli_free_networks(networks);
    vmnet_broker_connection_close(connection);
    free(names);
    return exit_status;
}
