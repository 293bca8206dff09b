// SPDX-License-Identifier: Apache-2.0
// Line and column of a value or key inside JSON text, for error messages.
#ifndef VMNET_BROKER_CONFIG_JSON_LOCATE_H
#define VMNET_BROKER_CONFIG_JSON_LOCATE_H

#include <stdbool.h>
#include <stddef.h>

// One step down into a JSON value: an object member when key is not NULL,
// otherwise the array element at index.
struct json_step {
    const char *key;
    size_t index;
};

#define JSON_KEY(k) ((struct json_step){.key = (k)})
#define JSON_INDEX(i) ((struct json_step){.key = NULL, .index = (i)})

// jansson keeps no positions once a document parsed, so semantic errors are
// located by walking the text again. text (len bytes) must be JSON that
// jansson accepted; keys are compared after decoding escapes. Positions are
// 1-based, columns counted in characters as jansson counts them.

// Finds the first character of the value reached by following path (n
// steps, none for the top-level value). Returns false, leaving *line and
// *column untouched, when the path does not exist.
bool json_locate_value(const char *text, size_t len,
                       const struct json_step *path, size_t n, int *line,
                       int *column);

// Finds the opening quote of the key named by the last step of path, which
// must be an object member. Returns false, leaving *line and *column
// untouched, when the path does not exist.
bool json_locate_key(const char *text, size_t len, const struct json_step *path,
                     size_t n, int *line, int *column);

#endif
