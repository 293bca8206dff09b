// SPDX-License-Identifier: Apache-2.0
// Moves request datagrams and reply datagrams (with descriptors) between
// Unix sockets and the platform-free dispatcher.
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
#include "../protocol/dispatch.h"
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

// Connections one uid holds, for the per-user cap. One per uid with a
// connection: a handful, so a list is enough.
struct user_count {
    uid_t uid;
    unsigned connections;
    struct user_count *next;
};

struct connection {
    struct unix_server *server;
    int fd;
    // Counted against this uid's cap (root's connections are not).
    struct user_count *user;
    sd_event_source *io;
    struct dispatch_conn *conn;
    // Reply bytes sent during this turn's batch: a connection's work per
    // turn is weighed by its cost, not by its number of requests.
    size_t turn_bytes;
    // The peer is gone (a send failed); closed from a deferred event, never
    // from inside the dispatcher's callback.
    bool dead;
    sd_event_source *close_later;
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
    // The socket file bound, so that only it is ever removed.
    dev_t socket_dev;
    ino_t socket_ino;
    sd_event_source *listen_io;
    struct connection *connections;
    struct dispatcher *dispatcher;
    // Kept open so that, out of descriptors, the broker can still accept
    // and close a pending connection instead of spinning on it.
    int reserve_fd;
    uint64_t last_emfile_log;
    struct user_count *users;
    // Refusals by the per-user cap, logged at most every 10 s.
    uint64_t last_cap_log;
    unsigned long cap_refused;
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

// The broker keeps no copy of a descriptor it sent (or could not send).
static void close_sent(struct unix_server *server, int fd) {
    if (fd < 0)
        return;
    if (server->options.close_fd != NULL)
        server->options.close_fd(server->options.close_fd_ctx, fd);
    else
        close(fd);
}

// The count of uid, made at 0 when create is true. NULL when out of
// memory or (create false) when uid has no connection.
static struct user_count *user_find(struct unix_server *server, uid_t uid,
                                    bool create) {
    struct user_count *u;

    for (u = server->users; u != NULL; u = u->next) {
        if (u->uid == uid)
            return u;
    }
    if (!create)
        return NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return NULL;
    u->uid = uid;
    u->next = server->users;
    server->users = u;
    return u;
}

static void user_release(struct unix_server *server, struct user_count *u) {
    struct user_count **p = &server->users;

    if (u == NULL || --u->connections > 0)
        return;
    while (*p != u)
        p = &(*p)->next;
    *p = u->next;
    free(u);
}

static void connection_free(struct connection *c, uint64_t now) {
    if (c == NULL)
        return;
    user_release(c->server, c->user);
    dispatch_disconnect(c->conn, now);
    sd_event_source_disable_unref(c->close_later);
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
        close_sent(c->server, r->fd);
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
        peer_log(LOG_LEVEL_WARNING, dispatch_conn_peer(c->conn),
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
        close_sent(c->server, r->fd);
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
    close_sent(c->server, fd);
    return status;
}

static void update_events(struct connection *c) {
    uint32_t events = EPOLLIN | EPOLLRDHUP;

    // Wait for room to send, or for the next request, never both: a
    // client that does not read its replies is not read from. While a
    // request waits (a network is being created) its later requests stay
    // in the socket, so replies keep request order; a hang-up still shows.
    if (c->queue != NULL)
        events = EPOLLOUT;
    else if (dispatch_conn_waiting(c->conn))
        events = EPOLLRDHUP;
    sd_event_source_set_io_events(c->io, events);
}

static int on_close_later(sd_event_source *s, void *userdata) {
    struct connection *c = userdata;
    struct unix_server *server = c->server;

    (void)s;
    connection_free(c, now_usec(server));
    changed(server);
    return 0;
}

// The dispatcher's reply: sent at once when nothing waits before it, which
// is nearly always; only a reply the kernel will not take yet is copied into
// the queue. Takes ownership of fd.
static void on_reply(void *transport, const char *text, size_t len, int fd) {
    struct connection *c = transport;
    int status = -EAGAIN;

    if (c->dead) {
        close_sent(c->server, fd);
        return;
    }
    c->turn_bytes += len;
    if (c->queue == NULL)
        status = send_or_refuse(c, text, len, fd);
    if (status == -EAGAIN) {
        status = queue_reply(c, text, len, fd);
    } else {
        close_sent(c->server, fd); // sent, or failed
    }
    if (status < 0 && !c->dead) {
        // The dispatcher or the core may be walking their lists: close
        // the connection from the loop, not from here.
        c->dead = true;
        if (sd_event_add_defer(c->server->options.event, &c->close_later,
                               on_close_later, c) < 0)
            sd_event_source_set_io_events(c->io, EPOLLOUT);
        return;
    }
    if (!c->dead)
        update_events(c);
    changed(c->server);
}

// recv() returns 0 both for an empty datagram and at end of stream; only a
// hang-up tells them apart. revents is epoll's: a hang-up it reported
// already (the end of almost every connection) needs no poll() to ask.
static bool peer_hung_up(int fd, uint32_t revents) {
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};

    if (revents & (EPOLLHUP | EPOLLRDHUP))
        return true;
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP)) != 0;
}

// Reply bytes a connection may get per turn before others have their turn.
#define TURN_BYTES_MAX (64 * 1024)

// Reads up to a batch of requests (revents: what epoll reported). Returns
// 0, or a negative errno when the connection must close.
static int read_requests(struct connection *c, uint32_t revents) {
    // One byte more than the limit so that over-long requests are seen as
    // such (MSG_TRUNC returns the real length).
    char buf[MESSAGE_REQUEST_MAX + 1];

    c->turn_bytes = 0;
    for (int i = 0;
         i < UNIX_SERVER_BATCH && c->queue == NULL && !c->dead &&
         !dispatch_conn_waiting(c->conn) && c->turn_bytes < TURN_BYTES_MAX;
         i++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            return -errno;
        }
        if (n == 0 && peer_hung_up(c->fd, revents))
            return -ECONNRESET;
        // MSG_TRUNC reports the datagram's real length, which may exceed
        // buf: hand the decoder only what buf holds, still over the limit.
        if ((size_t)n > sizeof(buf))
            n = (ssize_t)sizeof(buf);
        dispatch_request(c->conn, buf, (size_t)n, now_usec(c->server));
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
    if (c->dead)
        r = -EPIPE;
    if (r >= 0 && (revents & EPOLLOUT))
        r = flush_queue(c);
    if (r >= 0 && dispatch_conn_waiting(c->conn) &&
        (revents & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
        r = -ECONNRESET; // gone while its request waits
    else if (r >= 0 && (revents & (EPOLLIN | EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
        r = read_requests(c, revents);
    if (r < 0 || c->dead)
        connection_free(c, now_usec(server));
    else
        update_events(c);
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
    // Root passes every allow-list (policy_allows()), so its groups are
    // never looked at: one getsockopt() fewer per connection.
    if (ucred.uid == 0) {
        status = 0;
        goto out;
    }
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

// True when cred's uid holds its cap of connections already: the new one
// is to be closed at once. Logs at most every 10 s, with how many were
// refused since, so that a user hammering the socket cannot fill the log.
static bool over_cap(struct unix_server *server, const struct peer_cred *cred) {
    unsigned cap = server->options.max_connections_per_user;
    struct user_count *u;
    uint64_t now;

    if (cred->uid == 0 || cap == 0)
        return false;
    u = user_find(server, cred->uid, false);
    if (u == NULL || u->connections < cap)
        return false;
    server->cap_refused++;
    now = now_usec(server);
    if (server->last_cap_log == 0 ||
        now - server->last_cap_log >= 10 * 1000000ull) {
        log_warning("uid %lu (pid %ld) holds %u connections, the cap "
                    "(--max-connections-per-user): refusing its new ones "
                    "(%lu refused since the last such line)",
                    (unsigned long)cred->uid, (long)cred->pid, u->connections,
                    server->cap_refused);
        server->last_cap_log = now;
        server->cap_refused = 0;
    }
    return true;
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
    if (over_cap(server, &cred)) {
        r = 0; // refused on purpose, and logged: close without a word
        goto out;
    }
    if (cred.uid != 0 && server->options.max_connections_per_user > 0) {
        r = -ENOMEM;
        c->user = user_find(server, cred.uid, true);
        if (c->user == NULL)
            goto out;
        c->user->connections++;
    }
    r = sd_event_add_io(server->options.event, &c->io, c->fd,
                        EPOLLIN | EPOLLRDHUP, on_connection_io, c);
    if (r < 0)
        goto out;
    r = -ENOMEM;
    c->conn = dispatch_connect(server->dispatcher, &cred, c);
    if (c->conn == NULL)
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
    // One connection per turn, as epoll is level-triggered: more pending
    // ones make the socket readable again at once, and take their turns
    // among the other connections' requests, so a connect storm cannot hold
    // the loop. Looping until EAGAIN instead cost a failing accept4() per
    // connection. Bounded for the errors that are retried.
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
        break;
    }
    changed(server);
    return 0;
}

// The socket's name inside its directory (options->dir_fd).
static const char *socket_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash == NULL ? path : slash + 1;
}

// Refuses to steal the socket of a broker that is still running, and
// removes one left behind by a broker that is not. Everything is done
// relative to the directory's descriptor and without following a link: a
// symbolic link in the socket's place is removed, never its target.
static int prepare_path(int dir_fd, const char *path) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const char *name = socket_name(path);
    struct stat st;
    int fd = -1, status = -EADDRINUSE;

    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        status = errno == ENOENT ? 0 : -errno;
        if (status < 0)
            log_error("cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (S_ISSOCK(st.st_mode)) {
        strcpy(addr.sun_path, path);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd >= 0 &&
            connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            log_error("another broker is listening on %s", path);
            goto out;
        }
    } else if (S_ISLNK(st.st_mode)) {
        log_warning("%s is a symbolic link: removing the link, not "
                    "following it",
                    path);
    } else {
        status = -EEXIST;
        log_error("%s exists and is not a socket: not removing it", path);
        goto out;
    }
    status = 0;
    if (unlinkat(dir_fd, name, 0) < 0 && errno != ENOENT) {
        status = -errno;
        log_error("cannot remove %s: %s", path, strerror(errno));
    }
out:
    if (fd >= 0)
        close(fd);
    return status;
}

static int listen_on_path(struct unix_server *server) {
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    const char *path = server->options.path;
    mode_t old_mask;
    struct stat st;
    int fd = -1, r;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        log_error("socket path too long: %s", path);
        return -ENAMETOOLONG;
    }
    r = prepare_path(server->options.dir_fd, path);
    if (r < 0)
        return r;
    strcpy(addr.sun_path, path);
    fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto fail;
    // Access is decided per network by policy, not by the socket's mode:
    // 0666 from the start, so no chmod() by name can follow a link. The
    // directory's every component is root's (runtime_dir_open), so the
    // name bind() resolves is the one just checked.
    old_mask = umask(0111);
    r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
    umask(old_mask);
    if (r < 0)
        goto fail;
    if (fstatat(server->options.dir_fd, socket_name(path), &st,
                AT_SYMLINK_NOFOLLOW) < 0)
        goto fail;
    server->socket_dev = st.st_dev;
    server->socket_ino = st.st_ino;
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

static const struct dispatcher_ops dispatcher_ops = {.reply = on_reply};

int unix_server_new(const struct unix_server_options *options,
                    struct unix_server **out) {
    struct unix_server *server = calloc(1, sizeof(*server));
    int r = -ENOMEM;

    if (server == NULL)
        goto out;
    server->options = *options;
    server->listen_fd = options->listen_fd;
    server->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    server->dispatcher = dispatcher_new(options->broker, &dispatcher_ops);
    if (server->dispatcher == NULL)
        goto out;
    if (server->listen_fd < 0) {
        server->path = strdup(options->path);
        if (server->path == NULL)
            goto out;
        r = listen_on_path(server);
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
    struct stat st;

    if (server == NULL)
        return;
    while (server->connections != NULL)
        connection_free(server->connections, now_usec(server));
    sd_event_source_disable_unref(server->listen_io);
    if (server->listen_fd >= 0 &&
        server->listen_fd != server->options.listen_fd)
        close(server->listen_fd);
    // Only our own socket: a broker started since may own the name now.
    if (server->created_path &&
        fstatat(server->options.dir_fd, socket_name(server->path), &st,
                AT_SYMLINK_NOFOLLOW) == 0 &&
        st.st_dev == server->socket_dev && st.st_ino == server->socket_ino)
        unlinkat(server->options.dir_fd, socket_name(server->path), 0);
    if (server->reserve_fd >= 0)
        close(server->reserve_fd);
    dispatcher_free(server->dispatcher);
    while (server->users != NULL) {
        struct user_count *u = server->users;
        server->users = u->next;
        free(u);
    }
    free(server->path);
    free(server);
}
