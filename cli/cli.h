// SPDX-License-Identifier: Apache-2.0
// The client CLI's commands and the helpers they share.
#ifndef VMNET_BROKER_CLI_H
#define VMNET_BROKER_CLI_H

#include <stddef.h>

#include "vmnet-broker.h"

#define CLI_NAME "vmnet-broker-client"
// Exit status for a command line that cannot be understood.
#define CLI_EXIT_USAGE 2

// Each command gets its own argument vector, argv[0] being the command's
// name, and returns the process's exit status. socket_path is never NULL.
int command_acquire(const char *socket_path, int argc, char **argv);
int command_run(const char *socket_path, int argc, char **argv);
int command_status(const char *socket_path, int argc, char **argv);

// Prints "Try 'vmnet-broker-client --help'." to stderr and returns
// CLI_EXIT_USAGE.
int cli_usage_error(void);

// Connects to socket_path and prints why not on failure. Returns 0 and
// stores the connection in *connection, or returns -1.
int cli_connect(const char *socket_path,
                vmnet_broker_connection_t **connection);

// Connects and acquires every name on the one connection. On success
// returns 0 and stores the connection and a NULL-terminated array of count
// networks the caller frees with cli_free_networks(). On failure prints
// which network failed and why, closes the connection and returns -1.
int cli_acquire_networks(const char *socket_path, char *const *names,
                         size_t count, vmnet_broker_connection_t **connection,
                         vmnet_broker_network_t ***networks);

// Frees a NULL-terminated network array. Accepts NULL.
void cli_free_networks(vmnet_broker_network_t **networks);

// Opens an interface on network over connection. Returns 0 and stores it in
// *interface, or prints why not and returns -1.
int cli_open_interface(vmnet_broker_connection_t *connection,
                       const char *network,
                       vmnet_broker_interface_t **interface);

#endif
