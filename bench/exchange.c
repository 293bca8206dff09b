// SPDX-License-Identifier: Apache-2.0
// Raw SOCK_SEQPACKET round trips: the echo baseline and the bare protocol.
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench.h"

int exchange_connect(const char *path) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    struct timeval timeout = {.tv_sec = 20};
    int fd;

    if (strlen(path) >= sizeof(address.sun_path))
        return -1;
    strcpy(address.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    // A server that stops answering fails the bench instead of hanging it.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) <
            0 ||
        connect(fd, (const struct sockaddr *)&address, sizeof(address)) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

bool exchange_round_trip(void *ctx) {
    struct exchange *e = ctx;
    // Larger than any expected reply, so a wrong reply shows as a wrong
    // length rather than as a truncated right one.
    char reply[8192];
    ssize_t n;

    if (send(e->fd, e->request, e->request_len, MSG_NOSIGNAL) !=
        (ssize_t)e->request_len)
        return false;
    do {
        n = recv(e->fd, reply, sizeof(reply), 0);
    } while (n < 0 && errno == EINTR);
    return n == (ssize_t)e->reply_len;
}

bool exchange_cycle(void *ctx) {
    struct exchange *e = ctx;
    bool ok;

    e->fd = exchange_connect(e->socket_path);
    if (e->fd < 0)
        return false;
    ok = exchange_round_trip(e);
    close(e->fd);
    e->fd = -1;
    return ok;
}
