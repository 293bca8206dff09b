// SPDX-License-Identifier: Apache-2.0
// The client's side of the wire format: requests encoded, replies decoded.
#ifndef VMNET_BROKER_CLIENT_MESSAGE_H
#define VMNET_BROKER_CLIENT_MESSAGE_H

#include <jansson.h>
#include <stddef.h>

#include "vmnet-broker.h"

// Encodes {"command": command, "network_name": network_name} as compact
// JSON (no "network_name" when it is NULL). On success stores a malloc'd
// NUL-terminated text in *text (caller frees) and its length in *len.
// VMNET_BROKER_INVALID_REQUEST if network_name is not UTF-8.
vmnet_broker_return_t client_message_encode_request(const char *command,
                                                    const char *network_name,
                                                    char **text, size_t *len);

// Decodes a reply expected to carry a value of expected_type under
// expected_key. On success stores a new reference to that value in *value
// (caller decrefs) and, when text is not NULL, the value as compact JSON in
// *text (malloc'd, caller frees). A broker error {"error": N} returns N (3
// to 7); any other reply is VMNET_BROKER_INVALID_REPLY. On failure *value
// and *text are untouched.
vmnet_broker_return_t client_message_decode_reply(const char *data, size_t len,
                                                  const char *expected_key,
                                                  json_type expected_type,
                                                  json_t **value, char **text);

// The "message" of an error reply ({"error": N, "message": "..."}), the
// broker's reason in words, as a malloc'd string (the caller frees), or
// NULL when the reply is not an error, carries no message, or memory runs
// out.
char *client_message_error_text(const char *data, size_t len);

// Copies object[key] into *copy (malloc'd, the caller frees) when it is a
// string; leaves *copy untouched when it is absent or of another type, as
// reply objects gain and change keys over versions. Returns 0, or -1 when
// memory runs out.
int client_message_copy_string(const json_t *object, const char *key,
                               char **copy);

// object[key] when it is an integer from 1 to UINT_MAX, else 0 (absent).
unsigned client_message_positive(const json_t *object, const char *key);

// Serializes json compactly into a malloc'd NUL-terminated text (caller
// frees with free()), or returns NULL when memory runs out. Memory comes
// from malloc, not jansson's allocator, which the application may have
// replaced with json_set_alloc_funcs().
char *client_message_dump(const json_t *json);

#endif
