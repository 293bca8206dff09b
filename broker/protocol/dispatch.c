// SPDX-License-Identifier: Apache-2.0
// Request handling shared by every transport; replies complete through
// callbacks so a request waiting for a network never holds the loop.
#include "dispatch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../core/log.h"
#include "../core/reason.h"
#include "message.h"

struct dispatcher {
    struct broker *broker;
    struct dispatcher_ops ops;
    struct message_cache *replies;
    // The last status reply, shared by every request until the broker
    // changes (or, when it shows idle delays, until time moves on).
    char *status;
    size_t status_len;
    uint64_t status_generation;
    uint64_t status_now;
    bool status_timed;
    // Its "configured" array (JSON text), rebuilt only when the
    // configuration changes.
    char *configured;
    size_t configured_len;
    uint64_t configured_generation;
};

struct dispatch_conn {
    struct dispatcher *dispatcher;
    struct peer *peer;
    void *transport;
    bool waiting;
    enum request_command command;
    // A leases request waiting for its network's file to be parsed.
    char leases_name[NETWORK_NAME_MAX + 1];
};

struct dispatcher *dispatcher_new(struct broker *broker,
                                  const struct dispatcher_ops *ops) {
    struct dispatcher *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return NULL;
    d->broker = broker;
    d->ops = *ops;
    d->replies = message_cache_new();
    if (d->replies == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void dispatcher_free(struct dispatcher *d) {
    if (d == NULL)
        return;
    message_cache_free(d->replies);
    free(d->status);
    free(d->configured);
    free(d);
}

struct dispatch_conn *dispatch_connect(struct dispatcher *d,
                                       const struct peer_cred *cred,
                                       void *transport) {
    struct dispatch_conn *conn = calloc(1, sizeof(*conn));
    if (conn == NULL)
        return NULL;
    conn->dispatcher = d;
    conn->transport = transport;
    conn->peer = broker_peer_connect(d->broker, cred, conn);
    if (conn->peer == NULL) {
        free(conn);
        return NULL;
    }
    return conn;
}

void dispatch_disconnect(struct dispatch_conn *conn, uint64_t now) {
    if (conn == NULL)
        return;
    broker_peer_disconnect(conn->dispatcher->broker, conn->peer, now);
    free(conn);
}

bool dispatch_conn_waiting(const struct dispatch_conn *conn) {
    return conn->waiting;
}

struct peer *dispatch_conn_peer(const struct dispatch_conn *conn) {
    return conn->peer;
}

// Every reply goes through here. The log lines held so far are written
// first (log_hold_lines()): a client that has its answer finds in the log
// what its request did.
static void reply(struct dispatcher *d, void *transport, const char *text,
                  size_t len, int fd) {
    log_release();
    d->ops.reply(transport, text, len, fd);
}

// Sends an owned text (NULL when memory ran out: the connection gets
// nothing better than error 7, which needs no memory).
static void send_owned(struct dispatch_conn *conn, char *text, size_t len,
                       int fd) {
    static const char out_of_memory[] = "{\"error\":7}";

    if (text == NULL) {
        if (fd >= 0)
            close(fd);
        reply(conn->dispatcher, conn->transport, out_of_memory,
              sizeof(out_of_memory) - 1, -1);
        return;
    }
    reply(conn->dispatcher, conn->transport, text, len, fd);
    free(text);
}

// {"error": status, "message": why} (no message when message is NULL).
static void send_error(struct dispatch_conn *conn, int status,
                       const char *message) {
    size_t len = 0;
    char *text = message_encode_error_message(status, message, &len);
    send_owned(conn, text, len, -1);
}

static void on_done(void *data, const struct broker_result *result) {
    struct dispatch_conn *conn = data;
    struct dispatcher *d = conn->dispatcher;
    size_t len = 0;

    conn->waiting = false;
    if (result->status != BROKER_OK) {
        send_error(conn, result->status, result->message);
        return;
    }
    if (conn->command == REQUEST_OPEN_INTERFACE) {
        char *text =
            message_encode_interface(result->network, &result->interface, &len);
        send_owned(conn, text, len, result->fd);
        return;
    }
    const char *text = message_cache_network(d->replies, result->network, &len);
    if (text == NULL)
        send_owned(conn, NULL, 0, -1);
    else
        reply(d, conn->transport, text, len, -1);
}

// True when no network shows an idle delay, which is the only part of a
// status that changes with time alone.
static bool status_is_timeless(const struct broker *broker) {
    for (const struct network *n = broker_network_first(broker); n;
         n = broker_network_next(n)) {
        if (network_get_idle_deadline(n) != NO_DEADLINE)
            return false;
    }
    return true;
}

static void send_status(struct dispatch_conn *conn, uint64_t now) {
    struct dispatcher *d = conn->dispatcher;
    uint64_t generation = broker_generation(d->broker);

    if (d->status == NULL || d->status_generation != generation ||
        (d->status_timed && d->status_now != now)) {
        size_t len = 0;
        uint64_t configs = 0;
        char *text;
        if (!broker_config_generation(d->broker, &configs) ||
            d->configured == NULL || d->configured_generation != configs) {
            free(d->configured);
            d->configured =
                message_encode_configured(d->broker, &d->configured_len);
            d->configured_generation = configs;
        }
        text = d->configured == NULL
                   ? NULL
                   : message_encode_status_with(d->broker, now, d->configured,
                                                d->configured_len, &len);
        if (text == NULL) {
            send_owned(conn, NULL, 0, -1);
            return;
        }
        free(d->status);
        d->status = text;
        d->status_len = len;
        d->status_generation = generation;
        d->status_now = now;
        d->status_timed = !status_is_timeless(d->broker);
    }
    reply(d, conn->transport, d->status, d->status_len, -1);
}

static void answer_leases(struct dispatch_conn *conn, const char *name);

static void retry_leases(void *data) {
    struct dispatch_conn *conn = data;

    conn->waiting = false;
    answer_leases(conn, conn->leases_name);
}

static void answer_leases(struct dispatch_conn *conn, const char *name) {
    struct dispatcher *d = conn->dispatcher;
    struct lease_info *leases = NULL;
    size_t n = 0, out_len = 0;
    struct reason why = {0};
    char *text;
    int status = broker_leases(d->broker, conn->peer, name, &leases, &n, &why);

    if (status == BROKER_PENDING) {
        // Its file is being parsed: later requests of this connection wait
        // behind this one.
        snprintf(conn->leases_name, sizeof(conn->leases_name), "%s", name);
        status = broker_wait_configs(d->broker, conn->peer, retry_leases, conn);
        if (status == BROKER_OK) {
            conn->waiting = true;
            return;
        }
    }
    if (status != BROKER_OK) {
        peer_log(LOG_LEVEL_WARNING, conn->peer, "leases '%s' failed: %s", name,
                 broker_status_name(status));
        send_error(conn, status, reason_get(&why));
        return;
    }
    text = message_encode_leases(leases, n, &out_len);
    free(leases);
    send_owned(conn, text, out_len, -1);
}

void dispatch_request(struct dispatch_conn *conn, const char *data, size_t len,
                      uint64_t now) {
    struct dispatcher *d = conn->dispatcher;
    struct request request;
    const char *reason = NULL;
    size_t out_len = 0;
    struct reason why = {0};
    char *text;
    int status;

    status = message_decode_request(data, len, &request, &reason);
    if (status != BROKER_OK) {
        peer_log(LOG_LEVEL_WARNING, conn->peer, "invalid request: %s", reason);
        send_error(conn, status, reason);
        return;
    }
    conn->command = request.command;
    switch (request.command) {
    case REQUEST_ACQUIRE:
    case REQUEST_OPEN_INTERFACE:
        // Set first: the core may complete before it returns.
        conn->waiting = true;
        if (request.command == REQUEST_ACQUIRE)
            broker_acquire_async(d->broker, conn->peer, request.network_name,
                                 now, on_done, conn);
        else
            broker_open_interface_async(d->broker, conn->peer,
                                        request.network_name, now, on_done,
                                        conn);
        return;
    case REQUEST_RELEASE:
        status = broker_release_why(d->broker, conn->peer, request.network_name,
                                    now, &why);
        if (status != BROKER_OK) {
            send_error(conn, status, reason_get(&why));
            return;
        }
        // Encoded first: out_len is only known once it is.
        text = message_encode_released(request.network_name, &out_len);
        send_owned(conn, text, out_len, -1);
        return;
    case REQUEST_STATUS:
        peer_log(LOG_LEVEL_DEBUG, conn->peer, "status");
        send_status(conn, now);
        return;
    case REQUEST_LEASES:
        answer_leases(conn, request.network_name);
        return;
    }
}
