// SPDX-License-Identifier: Apache-2.0
// A failure's reason: one short line, the first one set wins.
#include "reason.h"

#include <stdio.h>

void reason_set(struct reason *r, const char *fmt, ...) {
    va_list ap;

    if (r == NULL || r->set)
        return;
    va_start(ap, fmt);
    vsnprintf(r->text, sizeof(r->text), fmt, ap);
    va_end(ap);
    r->set = true;
}

const char *reason_get(const struct reason *r) {
    return r != NULL && r->set ? r->text : NULL;
}
