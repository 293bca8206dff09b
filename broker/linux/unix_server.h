// SPDX-License-Identifier: Apache-2.0
// The Linux transport: a SOCK_SEQPACKET Unix socket served from sd-event.
#ifndef VMNET_BROKER_LINUX_UNIX_SERVER_H
#define VMNET_BROKER_LINUX_UNIX_SERVER_H

#include <systemd/sd-event.h>

#include "../core/broker.h"

// Requests handled per connection per event-loop turn: bounds how long one
// flooding client can hold the loop.
#define UNIX_SERVER_BATCH 32

struct unix_server;

struct unix_server_options {
    sd_event *event;
    struct broker *broker;
    // A listening socket passed by systemd, or -1 to create one at path.
    int listen_fd;
    const char *path;
    // The socket's directory, opened by runtime_dir_open() and kept open
    // while the server lives: the socket is made and removed relative to
    // it, never through a link. Unused with listen_fd.
    int dir_fd;
    // Connections one uid other than root may hold at once; beyond it a
    // new connection of that uid is closed as soon as it is accepted.
    // 0: no cap.
    unsigned max_connections_per_user;
    // Called after anything that may have changed the broker's state, so
    // the daemon can re-arm its timers.
    void (*changed)(void *ctx);
    void *changed_ctx;
    // Closes a descriptor once it is sent (or cannot be); NULL: close().
    void (*close_fd)(void *ctx, int fd);
    void *close_fd_ctx;
};

// Starts serving. Returns 0 and stores the server in *out, or a negative
// errno (logged) with *out untouched.
int unix_server_new(const struct unix_server_options *options,
                    struct unix_server **out);
// Closes every connection (their peers disconnect from the broker at now)
// and the listening socket; removes the socket file if it created it.
// Accepts NULL.
void unix_server_free(struct unix_server *server);

#endif
