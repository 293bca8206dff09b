// SPDX-License-Identifier: Apache-2.0
// Writes log lines to stderr, one write per line so lines never interleave.
#include "log.h"

#include <stdio.h>

static enum log_level current_level = LOG_LEVEL_INFO;

void log_set_level(enum log_level level) { current_level = level; }

enum log_level log_get_level(void) { return current_level; }

static const char *level_names[] = {"error", "warning", "info", "debug"};

void log_write(enum log_level level, const char *prefix, const char *fmt, ...) {
    char line[1024];
    int used;
    va_list ap;

    if (level > current_level)
        return;
    used =
        snprintf(line, sizeof(line), "vmnet-broker: %s: %s%s",
                 level_names[level], prefix ? prefix : "", prefix ? " " : "");
    if (used < 0 || (size_t)used >= sizeof(line))
        return;
    va_start(ap, fmt);
    vsnprintf(line + used, sizeof(line) - (size_t)used, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", line);
}
