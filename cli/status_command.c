// SPDX-License-Identifier: Apache-2.0
// "status", "networks" and "info": the broker's state, as tables or JSON.
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

// ADDRESS/LENGTH from two keys; the address alone without a length.
static const char *prefix_cell(const json_t *object, const char *address_key,
                               const char *length_key, char *buffer,
                               size_t size) {
    const char *address =
        json_string_value(json_object_get(object, address_key));
    const json_t *length = json_object_get(object, length_key);
    if (address == NULL)
        return "-";
    if (!json_is_integer(length))
        return address;
    snprintf(buffer, size, "%s/%lld", address,
             (long long)json_integer_value(length));
    return buffer;
}

// The time until an unused network is removed, or why it is not pending.
static const char *removal_cell(const json_t *network, char *buffer,
                                size_t size) {
    const json_t *value = json_object_get(network, "idle_remaining");
    if (json_is_number(value)) {
        snprintf(buffer, size, "%.0fs", json_number_value(value));
        return buffer;
    }
    if (json_is_true(json_object_get(network, "persistent")))
        return "never (persistent)";
    return json_is_null(value) ? "- (in use)" : "-";
}

// "alice (1000)", or the uid alone for a user the host does not know.
static const char *user_cell(const json_t *peer, char *buffer, size_t size) {
    const json_t *uid = json_object_get(peer, "uid");
    if (!json_is_integer(uid))
        return "-";
    json_int_t id = json_integer_value(uid);
    struct passwd *user =
        id >= 0 && id <= 0xffffffffLL ? getpwuid((uid_t)id) : NULL;
    if (user != NULL)
        snprintf(buffer, size, "%s (%lld)", user->pw_name, (long long)id);
    else
        snprintf(buffer, size, "%lld", (long long)id);
    return buffer;
}

// The running network called name in the status, or NULL.
static const json_t *find_named(const json_t *array, const char *name) {
    size_t i;
    const json_t *entry;
    json_array_foreach(array, i, entry) {
        const char *entry_name =
            json_string_value(json_object_get(entry, "name"));
        if (entry_name != NULL && strcmp(entry_name, name) == 0)
            return entry;
    }
    return NULL;
}

// A network's state from its status entry (NULL: not running). Creating:
// its dnsmasq is still starting, and acquires of it wait. Degraded: running
// without DHCP/DNS or a repair it needed (the reason is in `info`).
static const char *state_cell(const json_t *running) {
    const char *state;

    if (running == NULL)
        return "not running";
    state = json_string_value(json_object_get(running, "state"));
    if (state != NULL && strcmp(state, "creating") == 0)
        return "creating";
    return json_is_true(json_object_get(running, "degraded")) ? "degraded"
                                                              : "running";
}

// NAME STATE MODE BRIDGE SUBNET GATEWAY IPV6 IFACES PEERS REMOVAL IN: the
// running networks, then the configured ones that are not (virsh net-list
// --all).
static int add_networks(struct table *table, const json_t *status) {
    static const char *const header[] = {
        "NAME",    "STATE", "MODE",       "BRIDGE", "SUBNET",
        "GATEWAY", "IPV6",  "INTERFACES", "PEERS",  "REMOVAL IN"};
    const json_t *networks = json_object_get(status, "networks");
    const json_t *configured = json_object_get(status, "configured");
    size_t i;
    const json_t *network;

    if (table_add_row(table, header) != 0)
        return -1;
    json_array_foreach(networks, i, network) {
        char subnet[128], ipv6[128], interfaces[32], peers[32], removal[32];
        const char *cells[] = {
            string_cell(network, "name"),
            state_cell(network),
            string_cell(network, "mode"),
            string_cell(network, "bridge"),
            prefix_cell(network, "subnet", "prefix_length", subnet,
                        sizeof(subnet)),
            string_cell(network, "gateway"),
            prefix_cell(network, "ipv6_prefix", "ipv6_prefix_length", ipv6,
                        sizeof(ipv6)),
            integer_cell(network, "interfaces", interfaces, sizeof(interfaces)),
            integer_cell(network, "peers", peers, sizeof(peers)),
            removal_cell(network, removal, sizeof(removal)),
        };
        if (table_add_row(table, cells) != 0)
            return -1;
    }
    json_array_foreach(configured, i, network) {
        char subnet[128];
        const char *name = json_string_value(json_object_get(network, "name"));
        if (name == NULL || find_named(networks, name) != NULL)
            continue;
        const char *cells[] = {
            name,
            "not running",
            string_cell(network, "mode"),
            "-",
            json_object_get(network, "subnet") != NULL
                ? prefix_cell(network, "subnet", "prefix_length", subnet,
                              sizeof(subnet))
                : "(chosen at start)",
            "-",
            "-",
            "-",
            "-",
            "-",
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

// The asking client's own connection is in the status too; it is no one
// an administrator is looking for, so it is left out.
static bool is_self(const json_t *peer) {
    const json_t *pid = json_object_get(peer, "pid");
    return json_is_integer(pid) &&
           json_integer_value(pid) == (json_int_t)getpid();
}

static int add_peers(struct table *table, const json_t *peers, size_t *shown) {
    static const char *const header[] = {"PID", "USER", "NETWORKS"};
    size_t i;
    const json_t *peer;

    *shown = 0;
    if (table_add_row(table, header) != 0)
        return -1;
    json_array_foreach(peers, i, peer) {
        char pid[32];
        char user[300];
        if (is_self(peer))
            continue;
        char *networks = joined_names(json_object_get(peer, "networks"));
        if (networks == NULL)
            return -1;
        const char *cells[] = {
            integer_cell(peer, "pid", pid, sizeof(pid)),
            user_cell(peer, user, sizeof(user)),
            networks,
        };
        int added = table_add_row(table, cells);
        free(networks);
        if (added != 0)
            return -1;
        (*shown)++;
    }
    return 0;
}

static int print_status(const json_t *status) {
    int result = -1;
    struct table *networks = table_new(10);
    struct table *peers = table_new(3);
    size_t shown = 0;

    if (networks == NULL || peers == NULL ||
        add_networks(networks, status) != 0 ||
        add_peers(peers, json_object_get(status, "peers"), &shown) != 0)
        goto out;
    printf("vmnet-broker ");
    cli_print_escaped(stdout, string_cell(status, "version"));
    printf(" (client %s)\n\n", vmnet_broker_version());
    table_print(networks, stdout);
    putchar('\n');
    if (shown == 0)
        printf("No other clients.\n");
    else
        table_print(peers, stdout);
    result = 0;
out:
    table_free(peers);
    table_free(networks);
    return result;
}

static const char *yes_no(const json_t *object, const char *key) {
    const json_t *value = json_object_get(object, key);
    return json_is_boolean(value) ? (json_is_true(value) ? "yes" : "no") : "-";
}

// NAME STATE MODE SUBNET PERSISTENT ACCESS DESCRIPTION: each configured
// network with its settings.
static int print_networks(const json_t *status) {
    static const char *const header[] = {"NAME",   "STATE",      "MODE",
                                         "SUBNET", "MTU",        "PERSISTENT",
                                         "ACCESS", "DESCRIPTION"};
    const json_t *running = json_object_get(status, "networks");
    struct table *table = table_new(8);
    int result = -1;
    size_t i;
    const json_t *network;

    if (table == NULL || table_add_row(table, header) != 0)
        goto out;
    json_array_foreach(json_object_get(status, "configured"), i, network) {
        char subnet[128], mtu[32];
        const char *name = string_cell(network, "name");
        const char *cells[] = {
            name,
            state_cell(find_named(running, name)),
            string_cell(network, "mode"),
            json_object_get(network, "subnet") != NULL
                ? prefix_cell(network, "subnet", "prefix_length", subnet,
                              sizeof(subnet))
                : "(chosen at start)",
            json_object_get(network, "mtu") != NULL
                ? integer_cell(network, "mtu", mtu, sizeof(mtu))
                : "(host's)",
            yes_no(network, "persistent"),
            json_is_true(json_object_get(network, "restricted")) ? "allow-list"
                                                                 : "everyone",
            string_cell(network, "description"),
        };
        if (table_add_row(table, cells) != 0)
            goto out;
    }
    table_print(table, stdout);
    result = 0;
out:
    table_free(table);
    return result;
}

static void print_field(const char *label, const char *value) {
    printf("%-16s ", label);
    cli_print_escaped(stdout, value);
    putchar('\n');
}

// One network, virsh net-info style: what it is configured to be, and
// what it is while it runs.
static int print_info(const json_t *status, const char *name) {
    const json_t *running =
        find_named(json_object_get(status, "networks"), name);
    const json_t *config =
        find_named(json_object_get(status, "configured"), name);
    const json_t *what = running != NULL ? running : config;
    char buffer[128], number[32];

    if (what == NULL) {
        fprintf(stderr, CLI_NAME ": info: no network named '");
        cli_print_escaped(stderr, name);
        fprintf(stderr,
                "' is configured or running (see '" CLI_NAME " networks')\n");
        return 1;
    }
    print_field("Name:", name);
    print_field("State:", state_cell(running));
    if (running != NULL && json_is_true(json_object_get(running, "degraded")))
        print_field("Degraded:", string_cell(running, "degraded_reason"));
    print_field("Mode:", string_cell(what, "mode"));
    if (config != NULL && json_object_get(config, "description") != NULL)
        print_field("Description:", string_cell(config, "description"));
    print_field("Persistent:", yes_no(what, "persistent"));
    if (config != NULL)
        print_field("Access:",
                    json_is_true(json_object_get(config, "restricted"))
                        ? "allow-list"
                        : "everyone");
    if (running != NULL) {
        print_field("UUID:", string_cell(running, "uuid"));
        print_field("Bridge:", string_cell(running, "bridge"));
        print_field("Subnet:", prefix_cell(running, "subnet", "prefix_length",
                                           buffer, sizeof(buffer)));
        print_field("Gateway:", string_cell(running, "gateway"));
        print_field("IPv6 prefix:",
                    prefix_cell(running, "ipv6_prefix", "ipv6_prefix_length",
                                buffer, sizeof(buffer)));
        print_field("MTU:",
                    integer_cell(running, "mtu", number, sizeof(number)));
        print_field("Peers:",
                    integer_cell(running, "peers", number, sizeof(number)));
        print_field("Interfaces:", integer_cell(running, "interfaces", number,
                                                sizeof(number)));
        print_field("Removal in:",
                    removal_cell(running, buffer, sizeof(buffer)));
    } else {
        print_field("Subnet:",
                    json_object_get(config, "subnet") != NULL
                        ? prefix_cell(config, "subnet", "prefix_length", buffer,
                                      sizeof(buffer))
                        : "(chosen at start)");
    }
    if (config != NULL) {
        print_field("DHCP:", yes_no(config, "dhcp"));
        print_field("IPv6:", yes_no(config, "ipv6"));
        print_field("Port forwards:", integer_cell(config, "port_forwards",
                                                   number, sizeof(number)));
        print_field("Reservations:", integer_cell(config, "dhcp_reservations",
                                                  number, sizeof(number)));
    }
    return 0;
}

// Output written in full, or the command fails: a status cut short by a
// full disk or a closed pipe must not look like success.
static int finish_output(void) {
    if (fflush(stdout) != 0 || ferror(stdout)) {
        perror(CLI_NAME ": cannot write the output");
        return 1;
    }
    return 0;
}

enum view { VIEW_STATUS, VIEW_NETWORKS, VIEW_INFO };

// The three commands differ only in what they print from one status.
static int show(const char *socket_path, int argc, char **argv,
                enum view view) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {"names", no_argument, NULL, 'n'},
        {NULL, 0, NULL, 0},
    };
    int json = 0, names = 0;
    int option;
    int exit_status = 1;
    vmnet_broker_connection_t *connection = NULL;
    char *text = NULL;
    json_t *root = NULL;
    const char *name = NULL;

    optind = 0;
    while ((option = getopt_long(argc, argv, "+jn", options, NULL)) != -1) {
        if (option == 'j')
            json = 1;
        else if (option == 'n' && view == VIEW_NETWORKS)
            names = 1;
        else
            return cli_usage_error();
    }
    if (view == VIEW_INFO) {
        if (optind == argc) {
            fprintf(stderr, CLI_NAME ": info: no network named\n");
            return cli_usage_error();
        }
        name = argv[optind++];
    }
    if (optind != argc) {
        fprintf(stderr, CLI_NAME ": %s: unexpected argument '", argv[0]);
        cli_print_escaped(stderr, argv[optind]);
        fprintf(stderr, "'\n");
        return cli_usage_error();
    }
    if (cli_connect(socket_path, &connection) != 0)
        goto out;
    vmnet_broker_return_t status =
        vmnet_broker_connection_status(connection, &text);
    if (status != VMNET_BROKER_SUCCESS) {
        cli_report(connection, argv[0], NULL, status);
        goto out;
    }
    // The library already checked that the reply is a JSON object.
    root = json_loads(text, 0, NULL);
    if (root == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    if (view == VIEW_STATUS && json) {
        puts(text);
    } else if (view == VIEW_STATUS) {
        if (print_status(root) != 0) {
            fprintf(stderr, CLI_NAME ": out of memory\n");
            goto out;
        }
    } else if (view == VIEW_NETWORKS && names) {
        size_t i;
        const json_t *network;
        json_array_foreach(json_object_get(root, "configured"), i, network) {
            cli_print_escaped(stdout, string_cell(network, "name"));
            putchar('\n');
        }
    } else if (view == VIEW_NETWORKS && json) {
        const json_t *configured = json_object_get(root, "configured");
        if (configured != NULL)
            json_dumpf(configured, stdout, JSON_COMPACT);
        else
            fputs("[]", stdout);
        putchar('\n');
    } else if (view == VIEW_NETWORKS) {
        if (print_networks(root) != 0) {
            fprintf(stderr, CLI_NAME ": out of memory\n");
            goto out;
        }
    } else if (json) {
        // {"name", "running": status entry or null, "configured": entry or
        // null}
        const json_t *running =
            find_named(json_object_get(root, "networks"), name);
        const json_t *config =
            find_named(json_object_get(root, "configured"), name);
        if (running == NULL && config == NULL) {
            exit_status = print_info(root, name);
            goto out;
        }
        json_t *info = json_pack("{s:s, s:O?, s:O?}", "name", name, "running",
                                 running, "configured", config);
        if (info == NULL) {
            fprintf(stderr, CLI_NAME ": out of memory\n");
            goto out;
        }
        json_dumpf(info, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(info);
    } else if (print_info(root, name) != 0) {
        goto out;
    }
    exit_status = finish_output();
out:
    json_decref(root);
    free(text);
    vmnet_broker_connection_close(connection);
    return exit_status;
}

int command_status(const char *socket_path, int argc, char **argv) {
    return show(socket_path, argc, argv, VIEW_STATUS);
}

int command_networks(const char *socket_path, int argc, char **argv) {
    return show(socket_path, argc, argv, VIEW_NETWORKS);
}

int command_info(const char *socket_path, int argc, char **argv) {
    return show(socket_path, argc, argv, VIEW_INFO);
}
