// SPDX-License-Identifier: Apache-2.0
// Unix SOCK_SEQPACKET transport: connect, send a datagram, receive one.
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int64_t monotonic_ms(void) {
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int64_t client_transport_deadline(unsigned timeout_ms) {
    if (timeout_ms == 0)
        return CLIENT_TRANSPORT_NO_DEADLINE;
    return monotonic_ms() + timeout_ms;
}

// Waits until fd is ready for events or the deadline passes. Returns 0 when
// ready (or hung up: the call that follows says how), -1 when the deadline
// passed or poll failed.
static int wait_ready(int fd, short events, int64_t deadline) {
    for (;;) {
        int timeout = -1;
        if (deadline != CLIENT_TRANSPORT_NO_DEADLINE) {
            int64_t left = deadline - monotonic_ms();
            if (left <= 0)
                return -1;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        struct pollfd watched = {.fd = fd, .events = events};
        int ready = poll(&watched, 1, timeout);
        if (ready > 0)
            return 0;
        if (ready < 0 && errno != EINTR)
            return -1;
    }
}

static const char *socket_path_or_default(const char *socket_path) {
    if (socket_path != NULL)
        return socket_path;
    // secure_getenv: a set-user-ID VM manager must not be pointed at a
    // broker of the invoking user's choosing, which could hand it any
    // bridge to attach VMs to.
    const char *from_environment = secure_getenv(VMNET_BROKER_SOCKET_ENV);
    if (from_environment != NULL && from_environment[0] != '\0')
        return from_environment;
    return VMNET_BROKER_DEFAULT_SOCKET;
}

vmnet_broker_return_t client_transport_connect(const char *socket_path,
                                               int *fd) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    const char *path = socket_path_or_default(socket_path);
    size_t path_len = strlen(path);

    if (path_len == 0 || path_len >= sizeof(address.sun_path))
        return VMNET_BROKER_XPC_FAILURE;
    memcpy(address.sun_path, path, path_len);

    for (;;) {
        int socket_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (socket_fd < 0)
            return VMNET_BROKER_XPC_FAILURE;
        if (connect(socket_fd, (const struct sockaddr *)&address,
                    sizeof(address)) == 0) {
            *fd = socket_fd;
            return VMNET_BROKER_SUCCESS;
        }
        int saved_errno = errno;
        close(socket_fd);
        // An interrupted connect leaves the socket in a state that differs
        // between systems; a fresh socket is always safe to retry with.
        if (saved_errno != EINTR)
            return VMNET_BROKER_XPC_FAILURE;
    }
}

vmnet_broker_return_t client_transport_send(int fd, const char *data,
                                            size_t len, int64_t deadline) {
    ssize_t sent;

    for (;;) {
        // MSG_NOSIGNAL: a broker that went away must be an error code, not
        // a SIGPIPE killing the caller. MSG_DONTWAIT: a broker that does
        // not read fills the socket's buffer, and the wait for room is
        // bounded by the deadline.
        sent = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent >= 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN || wait_ready(fd, POLLOUT, deadline) != 0)
            break;
    }
    if (sent < 0 && errno == EMSGSIZE)
        return VMNET_BROKER_INVALID_REQUEST;
    if (sent < 0 || (size_t)sent != len)
        return VMNET_BROKER_XPC_FAILURE;
    return VMNET_BROKER_SUCCESS;
}

// Reading a datagram into a short buffer, without MSG_PEEK, drops it whole;
// with no control buffer the kernel also drops any descriptor it carried.
static void discard_datagram(int fd) {
    char unused;
    ssize_t received;

    do {
        received = recv(fd, &unused, sizeof(unused), 0);
    } while (received < 0 && errno == EINTR);
}

// Keeps the first descriptor msg carried in *passed_fd and closes any
// others. Returns how many came.
static size_t collect_descriptors(struct msghdr *msg, int *passed_fd) {
    size_t count = 0;

    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c != NULL;
         c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int received;
            memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (count++ == 0)
                *passed_fd = received;
            else
                close(received);
        }
    }
    return count;
}

vmnet_broker_return_t client_transport_receive(int fd, char **data, size_t *len,
                                               int *passed_fd,
                                               int64_t deadline) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REPLY;
    union {
        struct cmsghdr header; // aligns the buffer for a cmsghdr
        char buffer[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov;
    struct msghdr msg = {0};
    char *buffer = NULL;
    int received_fd = -1;
    ssize_t size;
    ssize_t received;

    // MSG_TRUNC makes the peek return the datagram's full length, so a
    // reply of any size (a status of many peers) is read whole. No control
    // buffer: on Linux a peek with one installs the attached descriptors
    // anew each time, and nothing would close those copies.
    if (wait_ready(fd, POLLIN, deadline) != 0) {
        status = VMNET_BROKER_XPC_FAILURE;
        goto out;
    }
    do {
        size = recv(fd, NULL, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
    } while (size < 0 && errno == EINTR);
    // 0 is the broker closing the connection: the broker never sends an
    // empty datagram.
    if (size <= 0)
        goto out;

    buffer = malloc((size_t)size + 1);
    if (buffer == NULL) {
        discard_datagram(fd);
        status = VMNET_BROKER_INTERNAL_ERROR;
        goto out;
    }
    iov.iov_base = buffer;
    iov.iov_len = (size_t)size;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.buffer;
    msg.msg_controllen = sizeof(control.buffer);
    // Room for one descriptor, the most a reply carries; a broker sending
    // more gets MSG_CTRUNC (the kernel closes what did not fit).
    do {
        received = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    } while (received < 0 && errno == EINTR);
    if (received < 0)
        goto out;
    if (collect_descriptors(&msg, &received_fd) > 1 ||
        (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) != 0 || received != size)
        goto out;
    buffer[size] = '\0';
    *data = buffer;
    buffer = NULL;
    *len = (size_t)size;
    *passed_fd = received_fd;
    received_fd = -1;
    status = VMNET_BROKER_SUCCESS;
out:
    free(buffer);
    if (received_fd >= 0)
        close(received_fd);
    return status;
}
