// SPDX-License-Identifier: Apache-2.0
// Why the request being handled failed, in words, for the reply's "message".
#ifndef VMNET_BROKER_CORE_REASON_H
#define VMNET_BROKER_CORE_REASON_H

#include "log.h"

// A non-root user cannot read the broker's log, so the error reply says
// why a request failed beside its code. The transport clears the reason
// before handling each request and sends it with the error; the core, the
// config source and the backend set it where they decide to fail. The core
// is single-threaded and handles one request at a time, so one reason is
// kept for the whole process.
//
// The first reason set after reason_clear() is kept: the root cause comes
// first (a subnet overlapping a route), and the generic failures of the
// callers above it ("acquire failed") must not hide it.
void reason_clear(void);
void reason_set(const char *fmt, ...) LOG_PRINTF(1, 2);
// The reason, or NULL when none was set since reason_clear().
const char *reason_get(void);

#endif
