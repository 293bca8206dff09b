// SPDX-License-Identifier: Apache-2.0
// A tokenizer over valid JSON that walks a path to find where it leads.
#include "json_locate.h"

#include <stdint.h>
#include <string.h>

struct cursor {
    const char *p;
    const char *end;
    int line;
    // Characters consumed on the current line; the next one is column + 1.
    int column;
};

static bool at_end(const struct cursor *c) { return c->p >= c->end; }

static char peek(const struct cursor *c) { return at_end(c) ? '\0' : *c->p; }

static void advance(struct cursor *c) {
    unsigned char byte = (unsigned char)*c->p++;
    // jansson counts a UTF-8 sequence as one column: only lead bytes count.
    if (byte == '\n') {
        c->line++;
        c->column = 0;
    } else if ((byte & 0xc0) != 0x80) {
        c->column++;
    }
}

static bool is_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static void skip_space(struct cursor *c) {
    while (!at_end(c) && is_space(*c->p))
        advance(c);
}

static bool expect(struct cursor *c, char ch) {
    skip_space(c);
    if (peek(c) != ch)
        return false;
    advance(c);
    return true;
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

static bool read_hex4(struct cursor *c, uint32_t *out) {
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_digit(peek(c));
        if (digit < 0)
            return false;
        value = value << 4 | (uint32_t)digit;
        advance(c);
    }
    *out = value;
    return true;
}

// Reads what follows "\u": one code unit, or a surrogate pair.
static bool read_unicode_escape(struct cursor *c, uint32_t *code) {
    uint32_t high, low;
    if (!read_hex4(c, &high))
        return false;
    if (high < 0xd800 || high > 0xdfff) {
        *code = high;
        return true;
    }
    if (high > 0xdbff || peek(c) != '\\')
        return false;
    advance(c);
    if (peek(c) != 'u')
        return false;
    advance(c);
    if (!read_hex4(c, &low) || low < 0xdc00 || low > 0xdfff)
        return false;
    *code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
    return true;
}

// Reads the escape after a backslash.
static bool read_escape(struct cursor *c, uint32_t *code) {
    char escape = peek(c);
    if (at_end(c))
        return false;
    advance(c);
    switch (escape) {
    case '"':
    case '\\':
    case '/':
        *code = (uint32_t)escape;
        return true;
    case 'b':
        *code = '\b';
        return true;
    case 'f':
        *code = '\f';
        return true;
    case 'n':
        *code = '\n';
        return true;
    case 'r':
        *code = '\r';
        return true;
    case 't':
        *code = '\t';
        return true;
    case 'u':
        return read_unicode_escape(c, code);
    default:
        return false;
    }
}

static size_t utf8_encode(uint32_t code, char out[4]) {
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xc0 | code >> 6);
        out[1] = (char)(0x80 | (code & 0x3f));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xe0 | code >> 12);
        out[1] = (char)(0x80 | (code >> 6 & 0x3f));
        out[2] = (char)(0x80 | (code & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | code >> 18);
    out[1] = (char)(0x80 | (code >> 12 & 0x3f));
    out[2] = (char)(0x80 | (code >> 6 & 0x3f));
    out[3] = (char)(0x80 | (code & 0x3f));
    return 4;
}

// Consumes the string at the cursor. When key is not NULL, *equal tells
// whether the string decodes to exactly key.
static bool read_string(struct cursor *c, const char *key, bool *equal) {
    size_t key_len = key ? strlen(key) : 0;
    size_t matched = 0;
    bool same = key != NULL;

    if (peek(c) != '"')
        return false;
    advance(c);
    for (;;) {
        char bytes[4];
        size_t n_bytes = 1;
        char ch = peek(c);

        if (at_end(c))
            return false;
        advance(c);
        if (ch == '"')
            break;
        if (ch == '\\') {
            uint32_t code;
            if (!read_escape(c, &code))
                return false;
            n_bytes = utf8_encode(code, bytes);
        } else {
            bytes[0] = ch;
        }
        if (same && (key_len - matched < n_bytes ||
                     memcmp(key + matched, bytes, n_bytes) != 0))
            same = false;
        if (same)
            matched += n_bytes;
    }
    if (equal != NULL)
        *equal = same && matched == key_len;
    return true;
}

static bool is_delimiter(char ch) {
    return is_space(ch) || ch == ',' || ch == ':' || ch == ']' || ch == '}';
}

// Consumes one whole value: a scalar, or a container with all it holds.
static bool skip_value(struct cursor *c) {
    int depth = 0;
    do {
        char ch;
        skip_space(c);
        if (at_end(c))
            return false;
        ch = *c->p;
        if (ch == '"') {
            if (!read_string(c, NULL, NULL))
                return false;
        } else if (ch == '{' || ch == '[') {
            depth++;
            advance(c);
        } else if (ch == '}' || ch == ']' || ch == ',' || ch == ':') {
            if (depth == 0)
                return false;
            if (ch == '}' || ch == ']')
                depth--;
            advance(c);
        } else {
            while (!at_end(c) && !is_delimiter(*c->p))
                advance(c);
        }
    } while (depth > 0);
    return true;
}

// Moves from an object to the value of its member key; *key_at receives
// where the key starts.
static bool enter_member(struct cursor *c, const char *key,
                         struct cursor *key_at) {
    if (peek(c) != '{')
        return false;
    advance(c);
    for (;;) {
        struct cursor here;
        bool equal;

        skip_space(c);
        here = *c;
        if (!read_string(c, key, &equal) || !expect(c, ':'))
            return false;
        if (equal) {
            *key_at = here;
            return true;
        }
        // Past the last member this finds '}' and the key is absent.
        if (!skip_value(c) || !expect(c, ','))
            return false;
    }
}

// Moves from an array to its element at index.
static bool enter_element(struct cursor *c, size_t index) {
    if (peek(c) != '[')
        return false;
    advance(c);
    skip_space(c);
    if (peek(c) == ']')
        return false;
    for (size_t i = 0; i < index; i++) {
        if (!skip_value(c) || !expect(c, ','))
            return false;
    }
    return true;
}

// Leaves *c on the first character of the value path leads to and *key_at
// on the last key matched on the way.
static bool walk(struct cursor *c, const struct json_step *path, size_t n,
                 struct cursor *key_at) {
    skip_space(c);
    for (size_t i = 0; i < n; i++) {
        bool found = path[i].key != NULL ? enter_member(c, path[i].key, key_at)
                                         : enter_element(c, path[i].index);
        if (!found)
            return false;
        skip_space(c);
    }
    return !at_end(c);
}

static struct cursor cursor_start(const char *text, size_t len) {
    struct cursor c = {text, text + len, 1, 0};
    return c;
}

bool json_locate_value(const char *text, size_t len,
                       const struct json_step *path, size_t n, int *line,
                       int *column) {
    struct cursor c = cursor_start(text, len);
    struct cursor key_at = c;

    if (!walk(&c, path, n, &key_at))
        return false;
    *line = c.line;
    *column = c.column + 1;
    return true;
}

bool json_locate_key(const char *text, size_t len, const struct json_step *path,
                     size_t n, int *line, int *column) {
    struct cursor c = cursor_start(text, len);
    struct cursor key_at = c;

    if (n == 0 || path[n - 1].key == NULL || !walk(&c, path, n, &key_at))
        return false;
    *line = key_at.line;
    *column = key_at.column + 1;
    return true;
}
