// SPDX-License-Identifier: Apache-2.0
// Connecting, acquiring networks and opening interfaces, with the CLI's
// error messages.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"

// The fix for a broker that cannot be reached, printed after the cause.
static const char start_hint[] =
    "is vmnet-broker running? Start it with 'systemctl start "
    "vmnet-broker.socket' (or run 'vmnet-broker --socket PATH' as root)";

// The library says only that connecting failed; a person needs to know
// why. Tries again here, where errno is at hand, and names the cause.
static void explain_connect_failure(const char *socket_path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    struct stat st;
    int fd, error = 0;

    fprintf(stderr, CLI_NAME ": cannot connect to the broker at '");
    cli_print_escaped(stderr, socket_path);
    fputs("': ", stderr);
    if (strlen(socket_path) >= sizeof(address.sun_path)) {
        fprintf(stderr,
                "the path is too long for a Unix socket (at most "
                "%zu bytes)\n",
                sizeof(address.sun_path) - 1);
        return;
    }
    if (stat(socket_path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            fprintf(stderr, "no such socket: %s\n", start_hint);
        else if (errno == EACCES)
            fprintf(stderr, "permission denied (a directory on the way to "
                            "the socket is closed to you)\n");
        else
            fprintf(stderr, "%s\n", strerror(errno));
        return;
    }
    if (!S_ISSOCK(st.st_mode)) {
        fprintf(stderr, "not a socket, so not a broker: check --socket or "
                        "$" VMNET_BROKER_SOCKET_ENV "\n");
        return;
    }
    memcpy(address.sun_path, socket_path, strlen(socket_path));
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 ||
        connect(fd, (const struct sockaddr *)&address, sizeof(address)) != 0)
        error = errno;
    if (fd >= 0)
        close(fd);
    switch (error) {
    case 0:
        // It works now: the broker was starting or restarting.
        fprintf(stderr, "the broker was not accepting connections; try "
                        "again\n");
        break;
    case EACCES:
    case EPERM:
        fprintf(stderr,
                "permission denied: the socket is closed to user "
                "%lu; ask the administrator (the socket unit makes "
                "it mode 0666)\n",
                (unsigned long)getuid());
        break;
    case ECONNREFUSED:
        fprintf(stderr,
                "nobody is listening (a broker that stopped left "
                "its socket behind): %s\n",
                start_hint);
        break;
    case EPROTOTYPE:
        fprintf(stderr, "not a broker: the socket is not a SOCK_SEQPACKET "
                        "socket, so another program owns it\n");
        break;
    default:
        fprintf(stderr, "%s\n", strerror(error));
    }
}

int cli_connect(const char *socket_path,
                vmnet_broker_connection_t **connection) {
    vmnet_broker_return_t status =
        vmnet_broker_connect(socket_path, connection);
    if (status == VMNET_BROKER_SUCCESS)
        return 0;
    if (status == VMNET_BROKER_XPC_FAILURE)
        explain_connect_failure(socket_path);
    else
        fprintf(stderr, CLI_NAME ": connect: %s (%d)\n",
                vmnet_broker_strerror(status), (int)status);
    return -1;
}

void cli_report(vmnet_broker_connection_t *connection, const char *what,
                const char *name, vmnet_broker_return_t status) {
    char *message = vmnet_broker_connection_last_message(connection);

    fprintf(stderr, CLI_NAME ": %s", what);
    if (name != NULL) {
        fputs(" '", stderr);
        cli_print_escaped(stderr, name);
        fputc('\'', stderr);
    }
    fprintf(stderr, ": %s (%d)", vmnet_broker_strerror(status), (int)status);
    if (message != NULL) {
        // The broker's reason: for people, so printed as it came, escaped.
        fputs(": ", stderr);
        cli_print_escaped(stderr, message);
    } else if (status == VMNET_BROKER_INVALID_REPLY) {
        fputs(": not a broker? the socket's owner answered something that "
              "is not the vmnet-broker protocol",
              stderr);
    } else if (status == VMNET_BROKER_XPC_FAILURE) {
        fputs(": the broker closed the connection or did not answer in time",
              stderr);
    }
    fputc('\n', stderr);
    free(message);
}

void cli_free_networks(vmnet_broker_network_t **networks) {
    if (networks == NULL)
        return;
    for (size_t i = 0; networks[i] != NULL; i++)
        vmnet_broker_network_free(networks[i]);
    free(networks);
}

int cli_acquire_networks(const char *socket_path, char *const *names,
                         size_t count, vmnet_broker_connection_t **connection,
                         vmnet_broker_network_t ***networks) {
    int result = -1;
    vmnet_broker_connection_t *connected = NULL;
    vmnet_broker_network_t **acquired = calloc(count + 1, sizeof(*acquired));

    if (acquired == NULL) {
        fprintf(stderr, CLI_NAME ": out of memory\n");
        goto out;
    }
    if (cli_connect(socket_path, &connected) != 0)
        goto out;
    for (size_t i = 0; i < count; i++) {
        vmnet_broker_return_t status =
            vmnet_broker_connection_acquire(connected, names[i], &acquired[i]);
        if (status != VMNET_BROKER_SUCCESS) {
            cli_report(connected, "acquire", names[i], status);
            goto out;
        }
    }
    *connection = connected;
    connected = NULL;
    *networks = acquired;
    acquired = NULL;
    result = 0;
out:
    cli_free_networks(acquired);
    vmnet_broker_connection_close(connected);
    return result;
}

int cli_open_interface(vmnet_broker_connection_t *connection,
                       const char *network,
                       vmnet_broker_interface_t **interface) {
    vmnet_broker_return_t status =
        vmnet_broker_connection_open_interface(connection, network, interface);
    if (status == VMNET_BROKER_SUCCESS)
        return 0;
    cli_report(connection, "open interface on", network, status);
    return -1;
}
