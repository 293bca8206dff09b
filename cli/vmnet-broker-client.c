// SPDX-License-Identifier: Apache-2.0
// vmnet-broker-client: acquire networks, run commands holding them, show
// the broker's status.
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage: " CLI_NAME " [--socket PATH] COMMAND [ARGS...]\n"
    "\n"
    "Commands:\n"
    "  acquire [--json] [--tap NAME]... [NAME...]\n"
    "      Acquire the networks and open a TAP interface on each --tap\n"
    "      network, print them (--json: one JSON object per line) and hold\n"
    "      them until SIGINT or SIGTERM.\n"
    "  run [--network NAME]... [--tap NAME:FD]... [--] CMD [ARGS...]\n"
    "      Acquire the networks and execute CMD in place of the client.\n"
    "      CMD inherits the connection (its descriptor in VMNET_BROKER_FD,\n"
    "      the networks as a JSON array in VMNET_BROKER_NETWORKS): the\n"
    "      networks live as long as CMD, or any child it passes the\n"
    "      descriptor to, keeps it open. Each --tap opens a TAP device on\n"
    "      network NAME and gives CMD its descriptor as FD (3 or more), for\n"
    "      example 'qemu-system-x86_64 -netdev tap,id=n0,fd=FD,vhost=on';\n"
    "      VMNET_BROKER_INTERFACES holds the interfaces as a JSON array\n"
    "      (name, mac for the guest, network, bridge, mtu, fd). A device\n"
    "      goes away when the last process holding its descriptor exits.\n"
    "  release NAME...\n"
    "      Inside a command started by 'run': drop that command's reference\n"
    "      to each network, over the connection it inherited.\n"
    "  status [--json]\n"
    "      The broker's version, its networks (running, and configured but\n"
    "      not running) and the other clients.\n"
    "  networks [--json | --names]\n"
    "      The configured networks, running or not, with their settings.\n"
    "  info [--json] NAME\n"
    "      One network in detail.\n"
    "  leases [--json] NAME\n"
    "      The network's current DHCP leases: expiry, MAC, IPv4 address,\n"
    "      host name (like 'virsh net-dhcp-leases').\n"
    "\n"
    "Options:\n"
    "  -s, --socket PATH  the broker's socket (default: "
    "$" VMNET_BROKER_SOCKET_ENV ",\n"
    "                     else " VMNET_BROKER_DEFAULT_SOCKET ")\n"
    "  -h, --help         print this help and exit\n"
    "  -V, --version      print the version and exit\n";

int cli_usage_error(void) {
    fprintf(stderr, "Try '" CLI_NAME " --help'.\n");
    return CLI_EXIT_USAGE;
}

static const char *default_socket_path(void) {
    const char *from_environment = getenv(VMNET_BROKER_SOCKET_ENV);
    if (from_environment != NULL && from_environment[0] != '\0')
        return from_environment;
    return VMNET_BROKER_DEFAULT_SOCKET;
}

int main(int argc, char **argv) {
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    static const struct {
        const char *name;
        int (*run)(const char *socket_path, int argc, char **argv);
    } commands[] = {
        {"acquire", command_acquire},   {"run", command_run},
        {"status", command_status},     {"release", command_release},
        {"networks", command_networks}, {"info", command_info},
        {"leases", command_leases},
    };
    const char *socket_path = NULL;
    int option;

    // "+": options after the command name belong to the command.
    while ((option = getopt_long(argc, argv, "+s:hV", options, NULL)) != -1) {
        switch (option) {
        case 's':
            socket_path = optarg;
            break;
        case 'h':
            fputs(usage, stdout);
            return 0;
        case 'V':
            printf(CLI_NAME " " VMNET_BROKER_VERSION "\n");
            return 0;
        default:
            return cli_usage_error();
        }
    }
    if (optind == argc) {
        fprintf(stderr, CLI_NAME ": no command given\n");
        return cli_usage_error();
    }
    if (socket_path == NULL)
        socket_path = default_socket_path();
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(argv[optind], commands[i].name) == 0)
            return commands[i].run(socket_path, argc - optind, argv + optind);
    }
    fprintf(stderr, CLI_NAME ": unknown command '%s'\n", argv[optind]);
    return cli_usage_error();
}
