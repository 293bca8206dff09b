// SPDX-License-Identifier: Apache-2.0
// The wire format: JSON requests decoded and replies encoded
// (docs/protocol.md).
#ifndef VMNET_BROKER_PROTOCOL_MESSAGE_H
#define VMNET_BROKER_PROTOCOL_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../core/broker.h"
#include "../core/network_config.h"

// The longest request accepted, in bytes; longer ones get error 4.
#define MESSAGE_REQUEST_MAX 4096

enum request_command {
    REQUEST_ACQUIRE = 0,
    REQUEST_RELEASE = 1,
    REQUEST_STATUS = 2,
    REQUEST_OPEN_INTERFACE = 3,
    REQUEST_LEASES = 4,
};

struct request {
    enum request_command command;
    // Empty for commands without a network.
    char network_name[NETWORK_NAME_MAX + 1];
};

// Decodes one request datagram. Returns BROKER_OK and fills *out, or
// BROKER_ERR_INVALID_REQUEST (out untouched) and, when reason is not NULL,
// points *reason at a constant string saying what was wrong.
int message_decode_request(const char *data, size_t len, struct request *out,
                           const char **reason);

// Encoders return a malloc'd NUL-terminated JSON text (caller frees) and
// store its length in *len, or return NULL when out of memory.
char *message_encode_error(int code, size_t *len);
// {"error": code, "message": message}: the reason in words, for people (a
// non-root user cannot read the broker's log). Without a message (NULL or
// empty) the same as message_encode_error().
char *message_encode_error_message(int code, const char *message, size_t *len);
char *message_encode_network(const struct network *network, size_t *len);
// {"interface": {"name", "mac", "network", "bridge", "mtu", "ipv4", "ipv6"}}
// (the addresses when known); the descriptor travels beside it (SCM_RIGHTS
// on Linux).
char *message_encode_interface(const struct network *network,
                               const struct interface_info *info, size_t *len);
char *message_encode_released(const char *name, size_t *len);
// {"leases": [{"mac", "ipv4", "hostname" (when sent), "expiry"}, ...]}.
char *message_encode_leases(const struct lease_info *leases, size_t n,
                            size_t *len);
char *message_encode_status(const struct broker *broker, uint64_t now,
                            size_t *len);
// The same with the "configured" array given as JSON text (from
// message_encode_configured()): it changes only with the configuration,
// and with hundreds of networks building and encoding it was most of
// every status's work.
char *message_encode_status_with(const struct broker *broker, uint64_t now,
                                 const char *configured, size_t configured_len,
                                 size_t *len);
// The "configured" array of a status, as JSON text; NULL without memory.
char *message_encode_configured(const struct broker *broker, size_t *len);

// Acquire replies already encoded. A network's reply never changes while it
// lives, and encoding it is most of the work of an acquire, so each is kept
// for the network instance it describes: entries are matched by the
// network's address and uuid, so a later network at the same address (a new
// instance has a new uuid) is never answered with an old reply.
struct message_cache;

// Returns NULL when out of memory.
struct message_cache *message_cache_new(void);
// Accepts NULL.
void message_cache_free(struct message_cache *cache);
// Returns the reply message_encode_network() would (its length in *len),
// owned by cache and valid until the next call, or NULL when out of memory.
const char *message_cache_network(struct message_cache *cache,
                                  const struct network *network, size_t *len);

#endif
