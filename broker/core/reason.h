// SPDX-License-Identifier: Apache-2.0
// Why one request or operation failed, in words, for the reply's "message".
#ifndef VMNET_BROKER_CORE_REASON_H
#define VMNET_BROKER_CORE_REASON_H

#include <stdbool.h>

#include "log.h"

// A non-root user cannot read the broker's log, so the error reply says
// why a request failed beside its code. Requests and backend operations
// complete asynchronously and many are in flight at once, so a reason
// travels with the one it explains: the core, the config source and the
// backend set it where they decide to fail, in the request's or the
// operation's own struct reason, and the dispatcher sends it with the
// error. A failed creation keeps its reason so that every request waiting
// for it gets the same message.
//
// The first reason set is kept: the root cause comes first (a subnet
// overlapping a route), and the generic failures of the callers above it
// ("acquire failed") must not hide it.

// Short enough for one line of a CLI's output; longer reasons are cut.
#define REASON_MAX 256

struct reason {
    bool set;
    char text[REASON_MAX];
};

// Sets r's reason unless one is set already. r may be NULL (the caller
// does not want one).
void reason_set(struct reason *r, const char *fmt, ...) LOG_PRINTF(2, 3);
// The reason, or NULL when r is NULL or none was set.
const char *reason_get(const struct reason *r);

#endif
