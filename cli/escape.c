// SPDX-License-Identifier: Apache-2.0
// Printing text that came from elsewhere without letting it drive the terminal.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

// Control characters (C0, DEL) as \xNN and the backslash as \\; every other
// byte, UTF-8 included, as it is.
char *cli_escape(const char *text) {
    size_t size = 1;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        size += *p < 0x20 || *p == 0x7f ? 4 : *p == '\\' ? 2 : 1;
    char *escaped = malloc(size);
    if (escaped == NULL)
        return NULL;
    char *out = escaped;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            out += sprintf(out, "\\x%02x", *p);
        } else if (*p == '\\') {
            *out++ = '\\';
            *out++ = '\\';
        } else {
            *out++ = (char)*p;
        }
    }
    *out = '\0';
    return escaped;
}

void cli_print_escaped(FILE *out, const char *text) {
    char *escaped = cli_escape(text);
    fputs(escaped != NULL ? escaped : "(out of memory)", out);
    free(escaped);
}
