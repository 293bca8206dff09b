// SPDX-License-Identifier: Apache-2.0
// "run": acquire networks and open TAP interfaces, then become a command that
// inherits the connection and the interfaces' descriptors, so the networks
// and devices live exactly as long as the command.
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

// One --tap NETWORK:FD.
struct tap {
    char *network; // within the --tap argument
    int target_fd; // where the command finds the descriptor
    vmnet_broker_interface_t *interface;
    int fd; // the descriptor once taken from interface, until dup2'd; or -1
};

// Parses NETWORK:FD in place (the colon becomes the name's end). Returns 0,
// or -1 after saying why.
static int parse_tap(char *spec, struct tap *tap) {
    char *colon = strrchr(spec, ':');
    char *end;
    long fd;

    if (colon == NULL || colon == spec || colon[1] == '\0') {
        fprintf(stderr, CLI_NAME ": run: --tap '%s': expected NETWORK:FD\n",
                spec);
        return -1;
    }
    errno = 0;
    fd = strtol(colon + 1, &end, 10);
    // 0 to 2 are the command's standard streams. INT_MAX is left free so
    // that "one above the highest" is always a descriptor number.
    if (*end != '\0' || errno != 0 || fd < 3 || fd >= INT_MAX) {
        fprintf(stderr,
                CLI_NAME ": run: --tap '%s': FD must be a number from 3 to "
                         "%d\n",
                spec, INT_MAX - 1);
        return -1;
    }
    *colon = '\0';
    tap->network = spec;
    tap->target_fd = (int)fd;
    tap->interface = NULL;
    tap->fd = -1;
    return 0;
}

// Each FD may be given once: two devices cannot share a descriptor number.
static int check_distinct_fds(const struct tap *taps, size_t count) {
    for (size_t i = 0; i < count; i++) {
        for (size_t j = 0; j < i; j++) {
            if (taps[i].target_fd == taps[j].target_fd) {
                fprintf(stderr, CLI_NAME ": run: --tap: FD %d given twice\n",
                        taps[i].target_fd);
                return -1;
            }
        }
    }
    return 0;
}

// Appends the networks of taps that --network did not name, so that every
// network the command uses is acquired, in order, and described in
// VMNET_BROKER_NETWORKS. names has room for them.
static size_t add_tap_networks(char **names, size_t count,
                               const struct tap *taps, size_t n_taps) {
    for (size_t i = 0; i < n_taps; i++) {
        bool named = false;
        for (size_t j = 0; j < count && !named; j++)
            named = strcmp(names[j], taps[i].network) == 0;
        if (!named)
            names[count++] = taps[i].network;
    }
    return count;
}

static int open_taps(vmnet_broker_connection_t *connection, struct tap *taps,
                     size_t count) {
    for (size_t i = 0; i < count; i++) {
        if (cli_open_interface(connection, taps[i].network,
                               &taps[i].interface) != 0)
            return -1;
    }
    return 0;
}

static void free_taps(struct tap *taps, size_t count) {
    if (taps == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        vmnet_broker_interface_free(taps[i].interface);
        if (taps[i].fd >= 0)
            close(taps[i].fd);
    }
    free(taps);
}

// A close-on-exec copy of fd numbered above floor, or fd itself when it
// already is. Returns -1 after saying why.
static int above(int fd, int floor) {
    if (fd > floor)
        return fd;
    int moved = fcntl(fd, F_DUPFD_CLOEXEC, floor + 1);
    if (moved < 0)
        fprintf(stderr, CLI_NAME ": fcntl: %s\n", strerror(errno));
    return moved;
}

static int clear_cloexec(int fd) {
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) {
        fprintf(stderr, CLI_NAME ": fcntl: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

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

// The JSON array of the interfaces' objects, each with the "fd" the command
// finds it on; malloc'd, or NULL when memory runs out.
static char *interfaces_json(const struct tap *taps, size_t count) {
    json_t *array = json_array();
    char *text = NULL;

    if (array == NULL)
        goto out;
    for (size_t i = 0; i < count; i++) {
        json_t *object =
            json_loads(vmnet_broker_interface_json(taps[i].interface), 0, NULL);
        if (json_object_set_new(object, "fd",
                                json_integer(taps[i].target_fd)) != 0 ||
            json_array_append_new(array, object) != 0)
            goto out;
    }
    text = json_dumps(array, JSON_COMPACT);
out:
    json_decref(array);
    return text;
}

// Puts each interface's descriptor on its FD and lets the command inherit
// the connection; tells it where they are. Everything the CLI holds is
// first moved above the highest FD asked for, so that no dup2() onto an FD
// closes a descriptor still to be placed (the connection is opened before
// the interfaces, with the lowest free number, often 3).
static int hand_over(vmnet_broker_connection_t *connection,
                     vmnet_broker_network_t *const *networks, struct tap *taps,
                     size_t n_taps) {
    int highest = 2;
    int own_fd = vmnet_broker_connection_fd(connection);
    int connection_fd = -1;
    char fd_text[16];
    char *json = networks_json(networks);
    char *interfaces = interfaces_json(taps, n_taps);
    int result = -1;

    if (json == NULL || interfaces == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n_taps; i++) {
        if (taps[i].target_fd > highest)
            highest = taps[i].target_fd;
    }
    // The connection keeps its own descriptor (close-on-exec, so it goes at
    // exec even when a dup2() below has not already replaced it); the
    // command inherits a copy.
    connection_fd = above(own_fd, highest);
    if (connection_fd < 0 || clear_cloexec(connection_fd) != 0)
        goto out;
    for (size_t i = 0; i < n_taps; i++) {
        taps[i].fd = vmnet_broker_interface_take_fd(taps[i].interface);
        int moved = above(taps[i].fd, highest);
        if (moved < 0)
            goto out;
        if (moved != taps[i].fd) {
            close(taps[i].fd);
            taps[i].fd = moved;
        }
    }
    // dup2() leaves the new descriptor without FD_CLOEXEC; the moved copies
    // keep theirs and vanish at exec.
    for (size_t i = 0; i < n_taps; i++) {
        if (dup2(taps[i].fd, taps[i].target_fd) < 0) {
            fprintf(stderr, CLI_NAME ": --tap %s:%d: dup2: %s\n",
                    taps[i].network, taps[i].target_fd, strerror(errno));
            goto out;
        }
    }
    snprintf(fd_text, sizeof(fd_text), "%d", connection_fd);
    if (setenv("VMNET_BROKER_FD", fd_text, 1) != 0 ||
        setenv("VMNET_BROKER_NETWORKS", json, 1) != 0 ||
        setenv("VMNET_BROKER_INTERFACES", interfaces, 1) != 0) {
        fprintf(stderr, CLI_NAME ": setenv: %s\n", strerror(errno));
        goto out;
    }
    result = 0;
out:
    if (result != 0 && connection_fd >= 0 && connection_fd != own_fd)
        close(connection_fd);
    free(interfaces);
    free(json);
    return result;
}

int command_run(const char *socket_path, int argc, char **argv) {
    static const struct option options[] = {
        {"network", required_argument, NULL, 'n'},
        {"tap", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int option;
    int exit_status = 1;
    size_t count = 0;
    size_t n_taps = 0;
    // Each option names at most one network and asks for at most one tap.
    char **names = calloc((size_t)argc, sizeof(*names));
    struct tap *taps = calloc((size_t)argc, sizeof(*taps));
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t **networks = NULL;

    if (names == NULL || taps == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    optind = 0;
    // "+": stop at the command, whose own options are not ours to parse.
    while ((option = getopt_long(argc, argv, "+n:t:", options, NULL)) != -1) {
        if (option == 'n') {
            names[count++] = optarg;
        } else if (option != 't' || parse_tap(optarg, &taps[n_taps]) != 0) {
            exit_status = cli_usage_error();
            goto out;
        } else {
            n_taps++;
        }
    }
    if ((count == 0 && n_taps == 0) || optind == argc) {
        fprintf(stderr, CLI_NAME ": run: %s\n",
                optind == argc ? "no command given"
                               : "no --network or --tap given");
        exit_status = cli_usage_error();
        goto out;
    }
    if (check_distinct_fds(taps, n_taps) != 0) {
        exit_status = cli_usage_error();
        goto out;
    }
    count = add_tap_networks(names, count, taps, n_taps);
    if (cli_acquire_networks(socket_path, names, count, &connection,
                             &networks) != 0)
        goto out;
    if (open_taps(connection, taps, n_taps) != 0)
        goto out;
    if (hand_over(connection, networks, taps, n_taps) != 0)
        goto out;
    execvp(argv[optind], argv + optind);
    fprintf(stderr, CLI_NAME ": exec '%s': %s\n", argv[optind],
            strerror(errno));
    exit_status = 127;
out:
    free_taps(taps, n_taps);
    cli_free_networks(networks);
    vmnet_broker_connection_close(connection);
    free(names);
    return exit_status;
}
