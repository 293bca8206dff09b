// SPDX-License-Identifier: Apache-2.0
// The daemon's log: levelled lines on stderr, peer-prefixed where one is
// known, that never block the caller.
#ifndef VMNET_BROKER_CORE_LOG_H
#define VMNET_BROKER_CORE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

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
//
// Lines go to stderr whole, never split (one write each, or several held
// lines in one: log_hold_lines()). Under journald (JOURNAL_STREAM
// names stderr) each starts with its syslog priority ("<3>" error, "<4>"
// warning, "<6>" info, "<7>" debug) so `journalctl -p` filters them;
// otherwise with a UTC timestamp. A regular file is written at once; to a
// pipe, terminal or socket, which a slow reader can fill, lines go through
// a bounded buffer drained by a thread, and lines that do not fit are
// dropped and counted ("N log lines dropped").
void log_write(enum log_level level, const char *prefix, const char *fmt, ...)
    LOG_PRINTF(3, 4);

// Per-peer lines: at most LOG_PEER_BURST per LOG_PEER_WINDOW_USEC for one
// peer; the rest are counted and reported once the window ends, so one
// client cannot flood the log.
#define LOG_PEER_BURST 100
#define LOG_PEER_WINDOW_USEC (10 * 1000000ull)

struct log_limit {
    uint64_t window_start;
    unsigned lines;
    unsigned suppressed;
};

void log_write_limited(enum log_level level, struct log_limit *limit,
                       const char *prefix, const char *fmt, ...)
    LOG_PRINTF(4, 5);

// From now on (hold_them true) the calling thread's info and debug lines
// are held back and written several at a time by log_release(), so that a
// busy event loop pays one write() for many lines. A warning or error
// (from any thread) writes what is held first, then itself, at once: the
// log keeps its order and every line keeps the time it was logged at. The
// event loop calls this; false writes what is held and stops holding.
void log_hold_lines(bool hold_them);

// Writes the held lines. The loop calls it before every reply it sends
// (so a client that got its answer finds the line that answer caused),
// when the oldest held line is LOG_HOLD_USEC old, and before it exits.
void log_release(void);
#define LOG_HOLD_USEC 5000

// CLOCK_MONOTONIC time in microseconds of the oldest held line, 0 when
// none is held.
uint64_t log_held_since(void);

// Writes what is held, then waits (up to about a second) for buffered lines
// to be written. Called at exit.
void log_flush(void);

// Lines dropped so far because the buffer was full.
unsigned long log_dropped(void);

#define log_error(...) log_write(LOG_LEVEL_ERROR, NULL, __VA_ARGS__)
#define log_warning(...) log_write(LOG_LEVEL_WARNING, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, NULL, __VA_ARGS__)

#endif
