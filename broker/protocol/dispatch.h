// SPDX-License-Identifier: Apache-2.0
// Platform-free request handling: decode, call the core, encode, complete.
#ifndef VMNET_BROKER_PROTOCOL_DISPATCH_H
#define VMNET_BROKER_PROTOCOL_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/broker.h"

// A transport (the Unix socket on Linux, XPC on macOS) moves bytes and
// descriptors; everything else happens here. One request of a connection
// is handled at a time: while dispatch_conn_waiting() the transport must
// hold the connection's later requests (it stops reading it), so replies
// keep request order. Other connections are not held.
struct dispatcher;
struct dispatch_conn;

struct dispatcher_ops {
    // Sends one reply, in request order. text (len bytes) is valid during
    // the call only; fd is a descriptor the callee now owns, or -1. Called
    // from dispatch_request() or later from a completion, never after
    // dispatch_disconnect().
    void (*reply)(void *transport, const char *text, size_t len, int fd);
};

// Returns NULL when out of memory.
struct dispatcher *dispatcher_new(struct broker *broker,
                                  const struct dispatcher_ops *ops);
// Accepts NULL. Disconnect every connection first.
void dispatcher_free(struct dispatcher *dispatcher);

// Registers a connection with its peer's credentials. NULL when out of
// memory.
struct dispatch_conn *dispatch_connect(struct dispatcher *dispatcher,
                                       const struct peer_cred *cred,
                                       void *transport);
// Drops the connection's peer (and its waiting request: no reply follows).
void dispatch_disconnect(struct dispatch_conn *conn, uint64_t now);

// Handles one request (a datagram of len bytes; may be over-long or
// invalid: it then gets error 4).
void dispatch_request(struct dispatch_conn *conn, const char *data, size_t len,
                      uint64_t now);
// True while the connection's request waits for a network's creation.
bool dispatch_conn_waiting(const struct dispatch_conn *conn);
// The connection's peer, for log lines.
struct peer *dispatch_conn_peer(const struct dispatch_conn *conn);

#endif
