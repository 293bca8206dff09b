// SPDX-License-Identifier: Apache-2.0
// The daemon's log: levelled lines on stderr, peer-prefixed where one is known.
#ifndef VMNET_BROKER_CORE_LOG_H
#define VMNET_BROKER_CORE_LOG_H

#include <stdarg.h>

enum log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_INFO = 2,
    LOG_LEVEL_DEBUG = 3,
};

void log_set_level(enum log_level level);
enum log_level log_get_level(void);

#if defined(__GNUC__)
#define LOG_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LOG_PRINTF(a, b)
#endif

// prefix is the peer's label ("[peer 1234 uid 1000]") or NULL.
void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
    LOG_PRINTF(3, 4);

#define log_error(...) log_write(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)

#define peer_log(level, peer, ...) log_write(level, (peer)->label, __VA_ARGS__)

#endif
