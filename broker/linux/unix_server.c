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
#include "../core/reason.h"
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
    struct message_cache *replies;
    // Kept open so that, out of descriptors, the broker can still accept
    // and close a pending connection instead of spinning on it.
    int reserve_fd;
    uint64_t last_emfile_log;
};

// A reply ready to go. Its text is owned (freed once sent or queued) or, for
// acquire, the cache's.
struct outgoing {
    const char *text; // NULL when memory ran out
    size_t len;
    char *owned; // text, when it is owned
    // A descriptor sent with the reply (open_interface), or -1; closed once
    // sent or queued.
    int fd;
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

// Sends one datagram with fd attached unless it is -1. Returns 0, -EAGAIN
// when the kernel is full, or another negative errno when the peer is gone.
static int send_datagram(int socket_fd, const char *data, size_t len, int fd) {
    int err;

    do {
        err = 0;
        if (fd >= 0)
            err = tap_send_with_fd(socket_fd, data, len, fd);
        else if (send(socket_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
            err = -errno;
    } while (err == -EINTR);
    return err;
}

// A reply larger than the socket's send buffer can never be sent (a status
// with thousands of peers): the peer gets error 7 instead of losing its
// connection, and with it its networks.
static const char too_large_reply[] =
    "{\"error\":7,\"message\":\"the reply is too large for one datagram\"}";

static int send_or_refuse(struct connection *c, const char *data, size_t len,
                          int fd) {
    int err = send_datagram(c->fd, data, len, fd);

    if (err == -EMSGSIZE) {
        peer_log(LOG_LEVEL_WARNING, c->peer,
                 "reply of %zu bytes does not fit the socket; answering "
                 "error 7",
                 len);
        err = send_datagram(c->fd, too_large_reply, sizeof(too_large_reply) - 1,
                            -1);
    }
    return err;
}

// Sends what is queued. Returns 0 when the queue is empty, 1 when the kernel
// is full (wait for EPOLLOUT), or a negative errno when the peer is gone.
static int flush_queue(struct connection *c) {
    while (c->queue != NULL) {
        struct reply *r = c->queue;
        int err = send_or_refuse(c, r->data, r->len, r->fd);
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

// Queues a copy of text behind the replies already waiting. Takes
// ownership of fd (closed on failure).
static int queue_reply(struct connection *c, const char *text, size_t len,
                       int fd) {
    struct reply *r = NULL, **tail = &c->queue;
    int status = -ENOMEM;

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
    return status;
}

// Sends the reply at once when nothing waits before it, which is nearly
// always; only a reply the kernel will not take yet is copied into the
// queue. Takes ownership of out->fd. Returns 0, or a negative errno when
// the connection must close.
static int send_reply(struct connection *c, const struct outgoing *out) {
    int fd = out->fd;
    int status = -ENOMEM;

    if (out->text == NULL)
        goto out;
    if (c->queue == NULL) {
        status = send_or_refuse(c, out->text, out->len, fd);
        if (status != -EAGAIN)
            goto out;
    }
    status = queue_reply(c, out->text, out->len, fd);
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return status;
}

// out is to send text, then free it. text is NULL when memory ran out.
static void own(struct outgoing *out, char *text) {
    out->text = text;
    out->owned = text;
}

// Fills *out with the reply to one request datagram.
static void handle_request(struct connection *c, const char *data, size_t len,
                           struct outgoing *out) {
    struct unix_server *server = c->server;
    struct request request;
    const char *reason = NULL;
    const struct network *network = NULL;
    struct interface_info iface;
    int status;

    out->text = NULL;
    out->owned = NULL;
    out->fd = -1;
    // Each error reply says why in its "message" (core/reason.h).
    reason_clear();
    status = message_decode_request(data, len, &request, &reason);
    if (status != BROKER_OK) {
        peer_log(LOG_LEVEL_WARNING, c->peer, "invalid request: %s", reason);
        reason_set("%s", reason);
        own(out, message_encode_error_message(status, reason_get(), &out->len));
        return;
    }
    switch (request.command) {
    case REQUEST_ACQUIRE:
        status =
            broker_acquire(server->options.broker, c->peer,
                           request.network_name, now_usec(server), &network);
        if (status == BROKER_OK) {
            out->text =
                message_cache_network(server->replies, network, &out->len);
            return;
        }
        break;
    case REQUEST_RELEASE:
        status = broker_release(server->options.broker, c->peer,
                                request.network_name, now_usec(server));
        if (status == BROKER_OK) {
            own(out, message_encode_released(request.network_name, &out->len));
            return;
        }
        break;
    case REQUEST_STATUS:
        peer_log(LOG_LEVEL_DEBUG, c->peer, "status");
        // Interface counts in the reply: forget the devices VMs let go.
        broker_prune_interfaces(server->options.broker);
        own(out, message_encode_status(server->options.broker, now_usec(server),
                                       &out->len));
        return;
    case REQUEST_OPEN_INTERFACE:
        status = broker_open_interface(server->options.broker, c->peer,
                                       request.network_name, now_usec(server),
                                       &network, &iface, &out->fd);
        if (status != BROKER_OK)
            break;
        // Without its text the descriptor is closed by send_reply().
        own(out, message_encode_interface(network, &iface, &out->len));
        return;
    }
    own(out, message_encode_error_message(status, reason_get(), &out->len));
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
        struct outgoing reply;
        int r;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -errno;
        }
        if (n == 0 && peer_hung_up(c->fd))
            return -ECONNRESET;
        // MSG_TRUNC reports the datagram's real length, which may exceed
        // buf: hand the decoder only what buf holds, still over the limit.
        if ((size_t)n > sizeof(buf))
            n = (ssize_t)sizeof(buf);
        handle_request(c, buf, (size_t)n, &reply);
        r = send_reply(c, &reply);
        free(reply.owned);
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
    gid_t few[PEER_MAX_GROUPS];
    gid_t *groups = few;
    socklen_t groups_len = sizeof(few);
    int status = -errno;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &ucred, &len) < 0)
        goto out;
    memset(cred, 0, sizeof(*cred));
    cred->pid = ucred.pid;
    cred->uid = ucred.uid;
    cred->gid = ucred.gid;
    // The kernel refuses a short buffer with ERANGE and the size it needs
    // (up to NGROUPS_MAX); ask again with that much.
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &groups_len) < 0 &&
        errno == ERANGE) {
        groups = malloc(groups_len);
        if (groups == NULL ||
            getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &groups_len) < 0)
            groups_len = 0;
    }
    // A peer in more groups than we remember is judged by the first ones:
    // policy by group is then conservative, never more permissive.
    cred->n_groups = groups_len / sizeof(gid_t);
    if (cred->n_groups > PEER_MAX_GROUPS)
        cred->n_groups = PEER_MAX_GROUPS;
    for (size_t i = 0; i < cred->n_groups; i++)
        cred->groups[i] = groups[i];
    status = 0;
out:
    if (groups != few)
        free(groups);
    return status;
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

// Out of descriptors: the pending connection would keep the listening
// socket readable and the loop spinning. Spend the reserve descriptor to
// take it off the queue and close it. Logs at most every 10 s.
static bool refuse_one(struct unix_server *server, int listen_fd) {
    uint64_t now = now_usec(server);
    int cfd;

    if (server->reserve_fd < 0)
        return false;
    close(server->reserve_fd);
    cfd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (cfd >= 0)
        close(cfd);
    server->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (now - server->last_emfile_log >= 10 * 1000000ull ||
        server->last_emfile_log == 0) {
        log_warning("out of file descriptors: refusing new connections "
                    "(%u peers connected)",
                    broker_peer_count(server->options.broker));
        server->last_emfile_log = now;
    }
    return cfd >= 0;
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
            if ((errno == EMFILE || errno == ENFILE) && refuse_one(server, fd))
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
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
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
    server->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    server->replies = message_cache_new();
    if (server->replies == NULL)
        goto out;
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
    if (server->listen_fd >= 0 &&
        server->listen_fd != server->options.listen_fd)
        close(server->listen_fd);
    if (server->created_path)
        unlink(server->path);
    if (server->reserve_fd >= 0)
        close(server->reserve_fd);
    message_cache_free(server->replies);
    free(server->path);
    free(server);
}
