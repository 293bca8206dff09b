// SPDX-License-Identifier: Apache-2.0
// The client's transport: one Unix SOCK_SEQPACKET connection, one datagram
// per message (docs/protocol.md).
#ifndef VMNET_BROKER_CLIENT_TRANSPORT_H
#define VMNET_BROKER_CLIENT_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "vmnet-broker.h"

// Connects to socket_path, or when it is NULL to $VMNET_BROKER_SOCKET, else
// VMNET_BROKER_DEFAULT_SOCKET. On success stores a close-on-exec descriptor
// in *fd; VMNET_BROKER_XPC_FAILURE (fd untouched) if the broker cannot be
// reached.
vmnet_broker_return_t client_transport_connect(const char *socket_path,
                                               int *fd);

// A deadline that never passes.
#define CLIENT_TRANSPORT_NO_DEADLINE INT64_MAX

// The moment timeout_ms from now on the monotonic clock, in milliseconds;
// CLIENT_TRANSPORT_NO_DEADLINE for 0 (wait forever).
int64_t client_transport_deadline(unsigned timeout_ms);

// Sends one request datagram, waiting for room in the socket's buffer
// until deadline (from client_transport_deadline()). VMNET_BROKER_XPC_FAILURE
// means the connection is unusable; VMNET_BROKER_INVALID_REQUEST means the
// request is too large for one datagram and nothing was sent.
vmnet_broker_return_t client_transport_send(int fd, const char *data,
                                            size_t len, int64_t deadline);

// Receives one reply datagram, whatever its size, and the descriptor the
// broker may have attached to it (SCM_RIGHTS; only open_interface replies
// carry one), waiting for it until deadline. On success stores a malloc'd,
// NUL-terminated copy in *data (caller frees), its length in *len, and in
// *passed_fd the descriptor (close-on-exec, the caller owns it) or -1 when none
// came. VMNET_BROKER_INVALID_REPLY means no reply could be read (the broker
// closed the connection or it failed) or it came with more than one descriptor,
// and VMNET_BROKER_XPC_FAILURE that none came before the deadline: either
// way the connection is unusable. VMNET_BROKER_INTERNAL_ERROR means memory ran
// out; the reply was discarded so the next request still gets its own
// reply. On failure no descriptor is left open.
vmnet_broker_return_t client_transport_receive(int fd, char **data, size_t *len,
                                               int *passed_fd,
                                               int64_t deadline);

#endif
