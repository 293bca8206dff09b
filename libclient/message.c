// SPDX-License-Identifier: Apache-2.0
// JSON (jansson) encoding of requests and decoding of replies.
#include "message.h"

#include <limits.h>
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

vmnet_broker_return_t client_message_encode_request(const char *command,
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
    if (network_name != NULL) {
        status = string_value(network_name, &name);
        if (status != VMNET_BROKER_SUCCESS)
            goto out;
        status = VMNET_BROKER_INTERNAL_ERROR;
        if (json_object_set_new(request, "network_name", name) != 0)
            goto out;
    }
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

vmnet_broker_return_t client_message_decode_reply(const char *data, size_t len,
                                                  const char *expected_key,
                                                  json_type expected_type,
                                                  json_t **value) {
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
    *value = json_incref(expected);
    status = VMNET_BROKER_SUCCESS;
out:
    json_decref(reply);
    return status;
}
