// SPDX-License-Identifier: Apache-2.0
// vmnet-broker-client leases NET: a network's DHCP leases, like virsh
// net-dhcp-leases.
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cli.h"
#include "table.h"

// "2026-11-30 12:00:00" in local time, or "never" for 0.
static void format_expiry(json_int_t expiry, char *out, size_t size) {
    time_t when = (time_t)expiry;
    struct tm tm;

    if (expiry <= 0 || localtime_r(&when, &tm) == NULL ||
        strftime(out, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(out, size, "%s", expiry <= 0 ? "never" : "?");
}

static int print_leases(const json_t *leases) {
    static const char *const header[] = {"Expiry Time", "MAC address",
                                         "IP address", "Hostname"};
    struct table *table = table_new(4);
    const json_t *lease;
    size_t i;
    int status = -1;

    if (table == NULL || table_add_row(table, header) != 0)
        goto out;
    json_array_foreach(leases, i, lease) {
        const char *mac = json_string_value(json_object_get(lease, "mac"));
        const char *ipv4 = json_string_value(json_object_get(lease, "ipv4"));
        const char *host =
            json_string_value(json_object_get(lease, "hostname"));
        char expiry[32];
        const char *row[4];

        format_expiry(json_integer_value(json_object_get(lease, "expiry")),
                      expiry, sizeof(expiry));
        row[0] = expiry;
        row[1] = mac != NULL ? mac : "-";
        row[2] = ipv4 != NULL ? ipv4 : "-";
        row[3] = host != NULL ? host : "-";
        if (table_add_row(table, row) != 0)
            goto out;
    }
    table_print(table, stdout);
    status = 0;
out:
    table_free(table);
    return status;
}

int command_leases(const char *socket_path, int argc, char **argv) {
    static const struct option options[] = {
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_return_t status;
    json_t *leases = NULL;
    char *text = NULL;
    const char *name;
    int json = 0, option, exit_status = 1;

    optind = 0;
    while ((option = getopt_long(argc, argv, "+j", options, NULL)) != -1) {
        if (option != 'j')
            return cli_usage_error();
        json = 1;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, CLI_NAME ": leases: %s\n",
                optind == argc ? "no network named" : "one network only");
        return cli_usage_error();
    }
    name = argv[optind];
    if (cli_connect(socket_path, &connection) != 0)
        goto out;
    status = vmnet_broker_connection_leases(connection, name, &text);
    if (status != VMNET_BROKER_SUCCESS) {
        cli_report(connection, "leases", name, status);
        goto out;
    }
    if (json) {
        puts(text);
        exit_status = 0;
        goto out;
    }
    // The library already checked that the reply is a JSON array.
    leases = json_loads(text, 0, NULL);
    if (leases == NULL || print_leases(leases) != 0) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    exit_status = 0;
out:
    json_decref(leases);
    free(text);
    vmnet_broker_connection_close(connection);
    return exit_status;
}
