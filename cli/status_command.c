// SPDX-License-Identifier: Apache-2.0
// "status": the broker's networks and peers, as tables or as JSON.
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "table.h"

// Fields the broker did not send, or sent with an unexpected type, print
// as "-" rather than failing: the status is for reading, not for checking.
static const char *string_cell(const json_t *object, const char *key) {
    const char *value = json_string_value(json_object_get(object, key));
    return value == NULL ? "-" : value;
}

static const char *integer_cell(const json_t *object, const char *key,
                                char *buffer, size_t size) {
    const json_t *value = json_object_get(object, key);
    if (!json_is_integer(value))
        return "-";
    snprintf(buffer, size, "%lld", (long long)json_integer_value(value));
    return buffer;
}

// Seconds may come with a fraction; whole seconds are enough to read.
static const char *seconds_cell(const json_t *object, const char *key,
                                char *buffer, size_t size) {
    const json_t *value = json_object_get(object, key);
    if (!json_is_number(value))
        return "-";
    snprintf(buffer, size, "%.0fs", json_number_value(value));
    return buffer;
}

static const char *subnet_cell(const json_t *network, char *buffer,
                               size_t size) {
    const char *subnet = json_string_value(json_object_get(network, "subnet"));
    const json_t *prefix = json_object_get(network, "prefix_length");
    if (subnet == NULL)
        return "-";
    if (!json_is_integer(prefix))
        return subnet;
    snprintf(buffer, size, "%s/%lld", subnet,
             (long long)json_integer_value(prefix));
    return buffer;
}

static int add_networks(struct table *table, const json_t *networks) {
    static const char *const header[] = {"NAME",   "MODE",  "BRIDGE",
                                         "SUBNET", "PEERS", "IDLE"};
    size_t i;
    const json_t *network;

    if (table_add_row(table, header) != 0)
        return -1;
    json_array_foreach(networks, i, network) {
        char subnet[128];
        char peers[32];
        char idle[32];
        const char *cells[] = {
            string_cell(network, "name"),
            string_cell(network, "mode"),
            string_cell(network, "bridge"),
            subnet_cell(network, subnet, sizeof(subnet)),
            integer_cell(network, "peers", peers, sizeof(peers)),
            // null while the network is in use: no removal pending.
            seconds_cell(network, "idle_remaining", idle, sizeof(idle)),
        };
        if (table_add_row(table, cells) != 0)
            return -1;
    }
    return 0;
}

// The peer's network names joined by commas, malloc'd; NULL when memory
// runs out.
static char *joined_names(const json_t *names) {
    size_t size = 2;
    size_t i;
    const json_t *name;

    json_array_foreach(names, i, name) {
        if (json_is_string(name))
            size += json_string_length(name) + 1;
    }
    char *joined = malloc(size);
    if (joined == NULL)
        return NULL;
    joined[0] = '\0';
    json_array_foreach(names, i, name) {
        if (!json_is_string(name))
            continue;
        if (joined[0] != '\0')
            strcat(joined, ",");
        strcat(joined, json_string_value(name));
    }
    if (joined[0] == '\0')
        strcpy(joined, "-");
    return joined;
}

static int add_peers(struct table *table, const json_t *peers) {
    static const char *const header[] = {"PID", "UID", "NETWORKS"};
    size_t i;
    const json_t *peer;

    if (table_add_row(table, header) != 0)
        return -1;
    json_array_foreach(peers, i, peer) {
        char pid[32];
        char uid[32];
        char *networks = joined_names(json_object_get(peer, "networks"));
        if (networks == NULL)
            return -1;
        const char *cells[] = {
            integer_cell(peer, "pid", pid, sizeof(pid)),
            integer_cell(peer, "uid", uid, sizeof(uid)),
            networks,
        };
        int added = table_add_row(table, cells);
        free(networks);
        if (added != 0)
            return -1;
    }
    return 0;
}

static int print_tables(const char *json) {
    int result = -1;
    json_error_t error;
    json_t *status = json_loads(json, 0, &error);
    struct table *networks = table_new(6);
    struct table *peers = table_new(3);

    if (status == NULL || networks == NULL || peers == NULL)
        goto out;
    if (add_networks(networks, json_object_get(status, "networks")) != 0 ||
        add_peers(peers, json_object_get(status, "peers")) != 0)
        goto out;
    table_print(networks, stdout);
    putchar('\n');
    table_print(peers, stdout);
    result = 0;
out:
    table_free(peers);
    table_free(networks);
    json_decref(status);
    return result;
}

int command_status(const char *socket_path, int argc, char **argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int json = 0;
    int option;
    int exit_status = 1;
    vmnet_broker_connection_t *connection = NULL;
    char *text = NULL;

    optind = 0;
    while ((option = getopt_long(argc, argv, "j", options, NULL)) != -1) {
        if (option != 'j')
            return cli_usage_error();
        json = 1;
    }
    if (optind != argc) {
        fprintf(stderr, CLI_NAME ": status: unexpected argument '%s'\n",
                argv[optind]);
        return cli_usage_error();
    }
    if (cli_connect(socket_path, &connection) != 0)
        goto out;
    vmnet_broker_return_t status =
        vmnet_broker_connection_status(connection, &text);
    if (status != VMNET_BROKER_SUCCESS) {
        fprintf(stderr, CLI_NAME ": status: %s (%d)\n",
                vmnet_broker_strerror(status), (int)status);
        goto out;
    }
    if (json) {
        puts(text);
    } else if (print_tables(text) != 0) {
        // The library already checked that the reply is JSON.
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    exit_status = 0;
out:
    free(text);
    vmnet_broker_connection_close(connection);
    return exit_status;
}
