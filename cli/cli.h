// SPDX-License-Identifier: Apache-2.0
// The client CLI's commands and the helpers they share.
#ifndef VMNET_BROKER_CLI_H
#define VMNET_BROKER_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "vmnet-broker.h"

#define CLI_NAME "vmnet-broker-client"
// Exit status for a command line that cannot be understood.
#define CLI_EXIT_USAGE 2

// Each command gets its own argument vector, argv[0] being the command's
// name, and returns the process's exit status. socket_path is never NULL.
int command_acquire(const char *socket_path, int argc, char **argv);
int command_run(const char *socket_path, int argc, char **argv);
int command_status(const char *socket_path, int argc, char **argv);
int command_networks(const char *socket_path, int argc, char **argv);
int command_info(const char *socket_path, int argc, char **argv);
int command_release(const char *socket_path, int argc, char **argv);
int command_leases(const char *socket_path, int argc, char **argv);

// Prints "Try 'vmnet-broker-client --help'." to stderr and returns
// CLI_EXIT_USAGE.
int cli_usage_error(void);

// Prints why a request failed: "vmnet-broker-client: WHAT 'NAME': the
// status (N): the broker's reason" (NAME left out when NULL; the reason
// from vmnet_broker_connection_last_message()).
void cli_report(vmnet_broker_connection_t *connection, const char *what,
                const char *name, vmnet_broker_return_t status);

// A malloc'd copy of text with control characters as \xNN and backslashes
// doubled, or NULL when memory runs out: text from the broker or from a
// configuration file must not drive the terminal.
char *cli_escape(const char *text);
// Prints text to out escaped as cli_escape() does.
void cli_print_escaped(FILE *out, const char *text);

// Connects to socket_path and prints why not on failure: the cause (no
// such socket, permission denied, not a broker) and the fix. Returns 0 and
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
