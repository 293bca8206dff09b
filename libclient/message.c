// SPDX-License-Identifier: Apache-2.0
// JSON (jansson) encoding of requests and decoding of replies.
#include "message.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *client_message_dump(const json_t *json) {
    size_t size = json_dumpb(json, NULL, 0, JSON_COMPACT);
    if (size == 0)
        return NULL;
    char *text = malloc(size + 1);
    if (text == NULL)
        return NULL;
    if (json_dumpb(json, text, size, JSON_COMPACT) != size) {
        free(text);
        return NULL;
    }
    text[size] = '\0';
    return text;
}

char *client_message_error_text(const char *data, size_t len) {
    char *text = NULL;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *message = json_object_get(root, "message");

    // Only beside an error: a successful reply's keys mean other things.
    if (json_is_integer(json_object_get(root, "error")) &&
        json_is_string(message))
        text = strdup(json_string_value(message));
    json_decref(root);
    return text;
}

int client_message_copy_string(const json_t *object, const char *key,
                               char **copy) {
    const json_t *value = json_object_get(object, key);
    if (!json_is_string(value))
        return 0;
    char *copied = strdup(json_string_value(value));
    if (copied == NULL)
        return -1;
    *copy = copied;
    return 0;
}

unsigned client_message_positive(const json_t *object, const char *key) {
    const json_t *value = json_object_get(object, key);
    if (!json_is_integer(value))
        return 0;
    json_int_t number = json_integer_value(value);
    if (number <= 0 || (unsigned long long)number > UINT_MAX)
        return 0;
    return (unsigned)number;
}

// Made only of the characters allowed in network names (docs/protocol.md),
// which need no escaping in JSON.
static bool plain_name(const char *name) {
    for (; *name != '\0'; name++) {
        char c = *name;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

// json_string() fails both on invalid UTF-8 and when memory runs out; only
// the first is the caller's mistake.
static vmnet_broker_return_t string_value(const char *string, json_t **value) {
    json_t *checked = json_string(string);
    if (checked != NULL) {
        *value = checked;
        return VMNET_BROKER_SUCCESS;
    }
    json_t *unchecked = json_string_nocheck(string);
    if (unchecked == NULL)
        return VMNET_BROKER_INTERNAL_ERROR;
    json_decref(unchecked);
    return VMNET_BROKER_INVALID_REQUEST;
}

// Writes a request whose name, if any, needs no escaping: the same bytes as
// jansson's compact dump, without building a JSON tree.
static vmnet_broker_return_t encode_plain(const char *command,
                                          const char *network_name, char **text,
                                          size_t *len) {
    char *encoded = NULL;
    int encoded_len =
        network_name == NULL
            ? asprintf(&encoded, "{\"command\":\"%s\"}", command)
            : asprintf(&encoded, "{\"command\":\"%s\",\"network_name\":\"%s\"}",
                       command, network_name);

    if (encoded_len < 0)
        return VMNET_BROKER_INTERNAL_ERROR;
    *text = encoded;
    *len = (size_t)encoded_len;
    return VMNET_BROKER_SUCCESS;
}

// Any other name is escaped by jansson, and the broker then refuses it.
static vmnet_broker_return_t encode_escaped(const char *command,
                                            const char *network_name,
                                            char **text, size_t *len) {
    vmnet_broker_return_t status = VMNET_BROKER_INTERNAL_ERROR;
    json_t *request = json_object();
    json_t *name = NULL;
    char *encoded = NULL;

    if (request == NULL)
        goto out;
    if (json_object_set_new(request, "command", json_string(command)) != 0)
        goto out;
    status = string_value(network_name, &name);
    if (status != VMNET_BROKER_SUCCESS)
        goto out;
    status = VMNET_BROKER_INTERNAL_ERROR;
    if (json_object_set_new(request, "network_name", name) != 0)
        goto out;
    encoded = client_message_dump(request);
    if (encoded == NULL)
        goto out;
    *len = strlen(encoded);
    *text = encoded;
    status = VMNET_BROKER_SUCCESS;
out:
    json_decref(request);
    return status;
}

vmnet_broker_return_t client_message_encode_request(const char *command,
                                                    const char *network_name,
                                                    char **text, size_t *len) {
    // Commands are the library's own words.
    if (network_name == NULL || plain_name(network_name))
        return encode_plain(command, network_name, text, len);
    return encode_escaped(command, network_name, text, len);
}

static vmnet_broker_return_t broker_error(const json_t *error) {
    if (!json_is_integer(error))
        return VMNET_BROKER_INVALID_REPLY;
    json_int_t code = json_integer_value(error);
    // 0 to 2 are the client's own statuses: a broker sending them is
    // confused, and passing 0 on would turn a failure into a success.
    if (code < VMNET_BROKER_NOT_ALLOWED || code > VMNET_BROKER_INTERNAL_ERROR)
        return VMNET_BROKER_INVALID_REPLY;
    return (vmnet_broker_return_t)code;
}

static bool json_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// The length of the object or array text starts with when it is written
// compactly (no whitespace outside strings); 0 when text starts with
// anything else or is not compact. text is part of a document jansson has
// decoded, so it is well formed and every bracket is matched.
static size_t compact_compound_len(const char *text, size_t len) {
    size_t depth = 0;
    bool in_string = false;

    if (len == 0 || (text[0] != '{' && text[0] != '['))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\')
                i++; // an escaped character never ends the string
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return i + 1;
        } else if (json_space(c)) {
            return 0;
        }
    }
    return 0;
}

// The value's own text in a reply written {"key":VALUE} compactly with no
// other member, as the broker writes it: VALUE is then already the compact
// JSON a new dump would make. Returns NULL when the reply is written
// otherwise, or VALUE is neither an object nor an array.
static const char *value_as_written(const char *data, size_t len,
                                    const char *key, size_t *value_len) {
    size_t key_len = strlen(key);
    size_t head_len = key_len + 4; // {"key":
    const char *value = data + head_len;
    size_t n;

    if (len < head_len || memcmp(data, "{\"", 2) != 0 ||
        memcmp(data + 2, key, key_len) != 0 ||
        memcmp(data + 2 + key_len, "\":", 2) != 0)
        return NULL;
    n = compact_compound_len(value, len - head_len);
    // Only the reply's own closing brace may follow VALUE.
    if (n == 0 || head_len + n + 1 != len || data[len - 1] != '}')
        return NULL;
    *value_len = n;
    return value;
}

// The value's compact JSON text, malloc'd: the reply's own bytes when they
// already are (see value_as_written), else a new dump.
static char *value_text(const char *data, size_t len, const char *key,
                        const json_t *value) {
    size_t text_len = 0;
    const char *written = value_as_written(data, len, key, &text_len);
    char *text;

    if (written == NULL)
        return client_message_dump(value);
    text = malloc(text_len + 1);
    if (text == NULL)
        return NULL;
    memcpy(text, written, text_len);
    text[text_len] = '\0';
    return text;
}

vmnet_broker_return_t client_message_decode_reply(const char *data, size_t len,
                                                  const char *expected_key,
                                                  json_type expected_type,
                                                  json_t **value, char **text) {
    vmnet_broker_return_t status = VMNET_BROKER_INVALID_REPLY;
    json_error_t error;
    json_t *reply = json_loadb(data, len, 0, &error);

    if (reply == NULL && json_error_code(&error) == json_error_out_of_memory) {
        status = VMNET_BROKER_INTERNAL_ERROR;
        goto out;
    }
    if (!json_is_object(reply))
        goto out;
    json_t *error_code = json_object_get(reply, "error");
    if (error_code != NULL) {
        status = broker_error(error_code);
        goto out;
    }
    json_t *expected = json_object_get(reply, expected_key);
    if (expected == NULL || json_typeof(expected) != expected_type)
        goto out;
    if (text != NULL) {
        char *copy = value_text(data, len, expected_key, expected);
        if (copy == NULL) {
            status = VMNET_BROKER_INTERNAL_ERROR;
            goto out;
        }
        *text = copy;
    }
    *value = json_incref(expected);
    status = VMNET_BROKER_SUCCESS;
out:
    json_decref(reply);
    return status;
}
