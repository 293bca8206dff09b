// SPDX-License-Identifier: Apache-2.0
// Accepts peers, reads one JSON request per datagram, replies in order.
#include "unix_server.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "../core/log.h"
#include "../protocol/message.h"
#include "linux_tap.h"

struct reply {
    struct reply *next;
    // A descriptor sent with the reply (open_interface), or -1. Closed once
    // sent: the broker keeps no copy, so the device lives as long as the VM.
    int fd;
    size_t len;
    char data[];
};

struct connection {
    struct unix_server *server;
    int fd;
    sd_event_source *io;
    struct peer *peer;
    // Replies the kernel would not take yet. While any is queued the
    // connection is not read from, so the queue never grows past one turn.
    struct reply *queue;
    struct connection *prev;
    struct connection *next;
};

struct unix_server {
    struct unix_server_options options;
    int listen_fd;
    bool created_path;
    char *path;
    sd_event_source *listen_io;
    struct connection *connections;
};

static uint64_t now_usec(struct unix_server *server) {
    uint64_t now = 0;
    sd_event_now(server->options.event, CLOCK_MONOTONIC, &now);
    return now;
}

static void changed(struct unix_server *server) {
    if (server->options.changed != NULL)
        server->options.changed(server->options.changed_ctx);
}

static void connection_free(struct connection *c, uint64_t now) {
    if (c == NULL)
        return;
    if (c->peer != NULL)
        broker_peer_disconnect(c->server->options.broker, c->peer, now);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else if (c->server->connections == c)
        c->server->connections = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    sd_event_source_disable_unref(c->io);
    while (c->queue != NULL) {
        struct reply *r = c->queue;
        c->queue = r->next;
        if (r->fd >= 0)
            close(r->fd);
        free(r);
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

// Sends what is queued. Returns 0 when the queue is empty, 1 when the kernel
// is full (wait for EPOLLOUT), or a negative errno when the peer is gone.
static int flush_queue(struct connection *c) {
    while (c->queue != NULL) {
        struct reply *r = c->queue;
        int err = 0;
        if (r->fd >= 0) {
            err = tap_send_with_fd(c->fd, r->data, r->len, r->fd);
        } else if (send(c->fd, r->data, r->len, MSG_DONTWAIT | MSG_NOSIGNAL) <
                   0) {
            err = -errno;
        }
        if (err == -EINTR)
            continue;
        if (err == -EAGAIN)
            return 1;
        if (err < 0)
            return err;
        c->queue = r->next;
        if (r->fd >= 0)
            close(r->fd);
        free(r);
    }
    return 0;
}

// Takes ownership of text and fd (closed on failure).
static int queue_reply(struct connection *c, char *text, size_t len, int fd) {
    struct reply *r = NULL, **tail = &c->queue;
    int status = -ENOMEM;

    if (text == NULL)
        goto out;
    r = malloc(sizeof(*r) + len);
    if (r == NULL)
        goto out;
    r->next = NULL;
    r->fd = fd;
    fd = -1;
    r->len = len;
    memcpy(r->data, text, len);
    while (*tail != NULL)
        tail = &(*tail)->next;
    *tail = r;
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    free(text);
    return status;
}

// Returns the reply text; *reply_fd is a descriptor to send with it or -1.
static char *handle_request(struct connection *c, const char *data,
                            size_t len, size_t *reply_len, int *reply_fd) {
    struct unix_server *server = c->server;
    struct request request;
    const char *reason = NULL;
    const struct network *network = NULL;
    struct interface_info iface;
    char *reply;
    int status;

    status = message_decode_request(data, len, &request, &reason);
    if (status != BROKER_OK) {
        peer_log(LOG_LEVEL_WARNING, c->peer, "invalid request: %s", reason);
        return message_encode_error(status, reply_len);
    }
    switch (request.command) {
    case REQUEST_ACQUIRE:
        status = broker_acquire(server->options.broker, c->peer,
                                request.network_name, now_usec(server),
                                &network);
        if (status == BROKER_OK)
            return message_encode_network(network, reply_len);
        break;
    case REQUEST_RELEASE:
        status = broker_release(server->options.broker, c->peer,
                                request.network_name, now_usec(server));
        if (status == BROKER_OK)
            return message_encode_released(request.network_name, reply_len);
        break;
    case REQUEST_STATUS:
        peer_log(LOG_LEVEL_DEBUG, c->peer, "status");
        return message_encode_status(server->options.broker, now_usec(server),
                                     reply_len);
    case REQUEST_OPEN_INTERFACE:
        status = broker_open_interface(server->options.broker, c->peer,
                                       request.network_name, now_usec(server),
                                       &network, &iface, reply_fd);
        if (status != BROKER_OK)
            break;
        reply = message_encode_interface(network, &iface, reply_len);
        if (reply == NULL) {
            close(*reply_fd);
            *reply_fd = -1;
        }
        return reply;
    }
    return message_encode_error(status, reply_len);
}

// recv() returns 0 both for an empty datagram and at end of stream; only a
// hang-up tells them apart.
static bool peer_hung_up(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

// Reads up to a batch of requests. Returns 0, or a negative errno when the
// connection must close.
static int read_requests(struct connection *c) {
    // One byte more than the limit so that over-long requests are seen as
    // such (MSG_TRUNC returns the real length).
    char buf[MESSAGE_REQUEST_MAX + 1];

    for (int i = 0; i < UNIX_SERVER_BATCH && c->queue == NULL; i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        size_t reply_len = 0;
        int reply_fd = -1;
        char *reply;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -errno;
        }
        if (n == 0 && peer_hung_up(c->fd))
            return -ECONNRESET;
        reply = handle_request(c, buf, (size_t)n, &reply_len, &reply_fd);
        if (queue_reply(c, reply, reply_len, reply_fd) < 0)
            return -ENOMEM;
        int r = flush_queue(c);
        if (r < 0)
            return r;
    }
    return 0;
}

static int on_connection_io(sd_event_source *s, int fd, uint32_t revents,
                            void *userdata) {
    struct connection *c = userdata;
    struct unix_server *server = c->server;
    int r = 0;

    (void)s;
    (void)fd;
    if (revents & EPOLLOUT)
        r = flush_queue(c);
    if (r >= 0 && (revents & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
        r = read_requests(c);
    if (r < 0) {
        connection_free(c, now_usec(server));
    } else {
        // Wait for room to send, or for the next request, never both: a
        // client that does not read its replies is not read from.
        sd_event_source_set_io_events(
            c->io, c->queue != NULL ? EPOLLOUT : EPOLLIN | EPOLLRDHUP);
    }
    changed(server);
    return 0;
}

static int read_credentials(int fd, struct peer_cred *cred) {
    struct ucred ucred;
    socklen_t len = sizeof(ucred);
    gid_t groups[PEER_MAX_GROUPS];
    socklen_t groups_len = sizeof(groups);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred, &len) < 0)
        return -errno;
    memset(cred, 0, sizeof(*cred));
    cred->pid = ucred.pid;
    cred->uid = ucred.uid;
    cred->gid = ucred.gid;
    // A peer in more groups than we remember is judged by the first ones;
    // policy by group is then conservative, never more permissive.
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &groups_len) == 0) {
        cred->n_groups = groups_len / sizeof(gid_t);
        for (size_t i = 0; i < cred->n_groups; i++)
            cred->groups[i] = groups[i];
    }
    return 0;
}

static void accept_one(struct unix_server *server, int fd) {
    struct connection *c = calloc(1, sizeof(*c));
    struct peer_cred cred;
    int r = -ENOMEM;

    if (c == NULL)
        goto out;
    c->server = server;
    c->fd = fd;
    fd = -1;
    r = read_credentials(c->fd, &cred);
    if (r < 0) {
        log_warning("cannot read peer credentials: %s", strerror(-r));
        goto out;
    }
    r = sd_event_add_io(server->options.event, &c->io, c->fd,
                        EPOLLIN | EPOLLRDHUP, on_connection_io, c);
    if (r < 0)
        goto out;
    r = -ENOMEM;
    c->peer = broker_peer_connect(server->options.broker, &cred, c);
    if (c->peer == NULL)
        goto out;
    c->next = server->connections;
    if (c->next != NULL)
        c->next->prev = c;
    server->connections = c;
    c = NULL;
    r = 0;
out:
    if (r < 0)
        log_warning("dropping new connection: %s", strerror(-r));
    if (fd >= 0)
        close(fd);
    connection_free(c, 0);
}

static int on_listen_io(sd_event_source *s, int fd, uint32_t revents,
                        void *userdata) {
    struct unix_server *server = userdata;

    (void)s;
    (void)revents;
    // Bounded, like requests, so a connect storm cannot hold the loop.
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                log_warning("accept: %s", strerror(errno));
            break;
        }
        accept_one(server, cfd);
    }
    changed(server);
    return 0;
}

// Refuses to steal the socket of a broker that is still running, and
// removes one left behind by a broker that is not.
static int prepare_path(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char *dir = NULL, *slash;
    int fd = -1, status = -EADDRINUSE;

    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd >= 0 &&
        connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
        log_error("another broker is listening on %s", path);
        goto out;
    }
    unlink(path);
    dir = strdup(path);
    status = -ENOMEM;
    if (dir == NULL)
        goto out;
    slash = strrchr(dir, '/');
    if (slash != NULL && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            status = -errno;
            log_error("cannot create %s: %s", dir, strerror(errno));
            goto out;
        }
    }
    status = 0;
out:
    if (fd >= 0)
        close(fd);
    free(dir);
    return status;
}

static int listen_on_path(const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = -1, r;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        log_error("socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    r = prepare_path(path);
    if (r < 0)
        return r;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        goto fail;
    // Access is decided per network by policy, not by the socket's mode.
    if (chmod(path, 0666) < 0)
        goto fail;
    if (listen(fd, SOMAXCONN) < 0)
        goto fail;
    return fd;
fail:
    r = -errno;
    log_error("cannot listen on %s: %s", path, strerror(errno));
    if (fd >= 0)
        close(fd);
    return r;
}

int unix_server_new(const struct unix_server_options *options,
                    struct unix_server **out) {
    struct unix_server *server = calloc(1, sizeof(*server));
    int r = -ENOMEM;

    if (server == NULL)
        goto out;
    server->options = *options;
    server->listen_fd = options->listen_fd;
    if (server->listen_fd < 0) {
        server->path = strdup(options->path);
        if (server->path == NULL)
            goto out;
        r = listen_on_path(options->path);
        if (r < 0)
            goto out;
        server->listen_fd = r;
        server->created_path = true;
    } else {
        // systemd hands the socket over blocking; accept must not block.
        int flags = fcntl(server->listen_fd, F_GETFL);
        if (flags < 0 ||
            fcntl(server->listen_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
            r = -errno;
            goto out;
        }
    }
    r = sd_event_add_io(options->event, &server->listen_io, server->listen_fd,
                        EPOLLIN, on_listen_io, server);
    if (r < 0) {
        log_error("cannot watch the listening socket: %s", strerror(-r));
        goto out;
    }
    *out = server;
    server = NULL;
    r = 0;
out:
    unix_server_free(server);
    return r;
}

void unix_server_free(struct unix_server *server) {
    if (server == NULL)
        return;
    while (server->connections != NULL)
        connection_free(server->connections, now_usec(server));
    sd_event_source_disable_unref(server->listen_io);
    if (server->listen_fd >= 0 && server->listen_fd != server->options.listen_fd)
        close(server->listen_fd);
    if (server->created_path)
        unlink(server->path);
    free(server->path);
    free(server);
}
