// SPDX-License-Identifier: Apache-2.0
// The failing request's reason: one short line, the first one set wins.
#include "reason.h"

#include <stdbool.h>
#include <stdio.h>

// Short enough for one line of a CLI's output; longer reasons are cut.
static char reason[256];
static bool reason_is_set;

void reason_clear(void) {
    reason_is_set = false;
    reason[0] = '\0';
}

void reason_set(const char *fmt, ...) {
    va_list ap;

    if (reason_is_set)
        return;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    reason_is_set = true;
}

const char *reason_get(void) { return reason_is_set ? reason : NULL; }
