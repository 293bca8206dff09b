// SPDX-License-Identifier: Apache-2.0
// Writes log lines to stderr without ever blocking the event loop: directly
// to a file, through a bounded buffer and a writer thread otherwise.
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

// Room for a few thousand lines: a burst is kept, a flood is counted.
#define LOG_BUFFER_BYTES (256 * 1024)
#define LINE_MAX_BYTES 1024
// Lines the event loop holds back (log_hold_lines()) before it writes them
// out in one go: a few dozen connect + acquire + close cycles' worth.
#define HOLD_BYTES (16 * 1024)

static enum log_level current_level = LOG_LEVEL_INFO;

void log_set_level(enum log_level level) { current_level = level; }

enum log_level log_get_level(void) { return current_level; }

static const char *level_names[] = {"error", "warning", "info", "debug"};
// sd-daemon(3) priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG.
static const int level_priorities[] = {3, 4, 6, 7};

enum sink { SINK_UNKNOWN, SINK_FILE, SINK_BUFFERED };

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;    // the writer has work
    pthread_cond_t drained; // the buffer is empty
    bool initialized;
    bool journal;
    enum sink sink;
    bool thread_started;
    char *buffer; // a ring of LOG_BUFFER_BYTES
    size_t head;  // next byte to write out
    size_t used;
    bool writing; // the writer holds bytes it took out of the ring
    unsigned long dropped;
    unsigned long dropped_reported;
    // The holding thread's info and debug lines not written yet, the
    // CLOCK_MONOTONIC time of the oldest, and how many there are.
    bool holding;
    pthread_t holder;
    char held[HOLD_BYTES];
    size_t held_len;
    unsigned held_lines;
    uint64_t held_since;
} out = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .wake = PTHREAD_COND_INITIALIZER,
    .drained = PTHREAD_COND_INITIALIZER,
};

// True when JOURNAL_STREAM ("dev:ino") names the file stderr is.
static bool stderr_is_journal(void) {
    const char *env = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (env == NULL || sscanf(env, "%llu:%llu", &dev, &ino) != 2 ||
        fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

// Called with the lock held.
static void init(void) {
    struct stat st;

    if (out.initialized)
        return;
    out.initialized = true;
    out.journal = stderr_is_journal();
    out.sink = fstat(STDERR_FILENO, &st) == 0 && S_ISREG(st.st_mode)
                   ? SINK_FILE
                   : SINK_BUFFERED;
}

static void write_all(const char *data, size_t len) {
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return; // stderr is gone: nothing better to do
        data += n;
        len -= (size_t)n;
    }
}

static void *writer(void *arg) {
    static char chunk[LINE_MAX_BYTES * 16];

    (void)arg;
    pthread_mutex_lock(&out.lock);
    for (;;) {
        size_t n;
        while (out.used == 0 && out.dropped == out.dropped_reported) {
            pthread_cond_broadcast(&out.drained);
            pthread_cond_wait(&out.wake, &out.lock);
        }
        if (out.used == 0) {
            // Everything before the loss is out: say how much was lost.
            unsigned long lost = out.dropped - out.dropped_reported;
            out.dropped_reported = out.dropped;
            n = (size_t)snprintf(chunk, sizeof(chunk),
                                 "%svmnet-broker: warning: %lu log line%s "
                                 "dropped (stderr was not read fast enough)\n",
                                 out.journal ? "<4>" : "", lost,
                                 lost == 1 ? "" : "s");
        } else {
            n = out.used < sizeof(chunk) ? out.used : sizeof(chunk);
            if (out.head + n > LOG_BUFFER_BYTES)
                n = LOG_BUFFER_BYTES - out.head;
            memcpy(chunk, out.buffer + out.head, n);
            out.head = (out.head + n) % LOG_BUFFER_BYTES;
            out.used -= n;
        }
        out.writing = true;
        pthread_mutex_unlock(&out.lock);
        write_all(chunk, n);
        pthread_mutex_lock(&out.lock);
        out.writing = false;
    }
    return NULL;
}

// Called with the lock held. Returns false when the line must be dropped.
static bool enqueue(const char *line, size_t len) {
    if (!out.thread_started) {
        pthread_t thread;
        pthread_attr_t attr;
        sigset_t all, old;
        int r;

        out.buffer = malloc(LOG_BUFFER_BYTES);
        if (out.buffer == NULL)
            return false;
        // The writer takes no signals: the loop handles them by signalfd.
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        r = pthread_create(&thread, &attr, writer, NULL);
        pthread_attr_destroy(&attr);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r != 0) {
            free(out.buffer);
            out.buffer = NULL;
            return false;
        }
        out.thread_started = true;
    }
    if (LOG_BUFFER_BYTES - out.used < len)
        return false;
    for (size_t i = 0; i < len; i++)
        out.buffer[(out.head + out.used + i) % LOG_BUFFER_BYTES] = line[i];
    out.used += len;
    pthread_cond_signal(&out.wake);
    return true;
}

static uint64_t monotonic_usec(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

// Called with the lock held: lines written at once to a file, else through
// the ring; counted as dropped when the ring has no room.
static void emit(const char *data, size_t len, unsigned lines) {
    if (out.sink == SINK_FILE && out.used == 0 && !out.writing)
        write_all(data, len);
    else if (!enqueue(data, len))
        out.dropped += lines;
}

// Called with the lock held.
static void emit_held(void) {
    if (out.held_len == 0)
        return;
    emit(out.held, out.held_len, out.held_lines);
    out.held_len = 0;
    out.held_lines = 0;
    out.held_since = 0;
}

// Called with the lock held: one write() for many lines is what makes a
// busy loop's log cheap (four lines per connect + acquire + close).
static void hold(const char *line, size_t len) {
    if (out.held_len + len > sizeof(out.held))
        emit_held();
    if (out.held_len == 0)
        out.held_since = monotonic_usec();
    memcpy(out.held + out.held_len, line, len);
    out.held_len += len;
    out.held_lines++;
}

// Appends text at *used, within size: the fixed parts of every line are
// copied, not run through snprintf().
static void append(char *line, size_t size, size_t *used, const char *text) {
    size_t len = strlen(text);

    if (len > size - *used)
        len = size - *used;
    memcpy(line + *used, text, len);
    *used += len;
}

// Called with the lock held: the line's start, "<6>" under journald, else
// "2026-01-31T12:34:56.789Z ". The date and time to the second are
// formatted once per second: a busy loop logs thousands of lines in one.
static void stamp(char *line, size_t size, size_t *used, enum log_level level) {
    static time_t stamp_sec = -1;
    static char stamp_text[64];
    struct timespec ts;
    char ms[8];
    int n;

    if (out.journal) {
        char priority[] = {'<', (char)('0' + level_priorities[level]), '>',
                           '\0'};
        append(line, size, used, priority);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != stamp_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(stamp_text, sizeof(stamp_text),
                 "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        stamp_sec = ts.tv_sec;
    }
    n = (int)(ts.tv_nsec / 1000000) % 1000;
    ms[0] = '.';
    ms[1] = (char)('0' + n / 100);
    ms[2] = (char)('0' + n / 10 % 10);
    ms[3] = (char)('0' + n % 10);
    ms[4] = 'Z';
    ms[5] = ' ';
    ms[6] = '\0';
    append(line, size, used, stamp_text);
    append(line, size, used, ms);
}

static void vlog(enum log_level level, const char *prefix, const char *fmt,
                 va_list ap) {
    char line[LINE_MAX_BYTES];
    // One byte is kept for the newline.
    size_t used = 0, room = sizeof(line) - 1;

    pthread_mutex_lock(&out.lock);
    init();
    stamp(line, room, &used, level);
    append(line, room, &used, "vmnet-broker: ");
    append(line, room, &used, level_names[level]);
    append(line, room, &used, ": ");
    if (prefix != NULL) {
        append(line, room, &used, prefix);
        append(line, room, &used, " ");
    }
    if (used < room) {
        int n = vsnprintf(line + used, room + 1 - used, fmt, ap);
        if (n > 0)
            used += (size_t)n;
        if (used > room)
            used = room; // truncated
    }
    line[used++] = '\n';
    if (out.holding && level >= LOG_LEVEL_INFO &&
        pthread_equal(pthread_self(), out.holder)) {
        hold(line, used);
    } else {
        // Warnings and errors go out at once, after what was held, so the
        // log keeps its order.
        emit_held();
        emit(line, used, 1);
    }
    pthread_mutex_unlock(&out.lock);
}

void log_write(enum log_level level, const char *prefix, const char *fmt, ...) {
    va_list ap;

    if (level > current_level)
        return;
    va_start(ap, fmt);
    vlog(level, prefix, fmt, ap);
    va_end(ap);
}

void log_write_limited(enum log_level level, struct log_limit *limit,
                       const char *prefix, const char *fmt, ...) {
    uint64_t now;
    va_list ap;

    if (level > current_level)
        return;
    now = monotonic_usec();
    if (now - limit->window_start >= LOG_PEER_WINDOW_USEC) {
        if (limit->suppressed > 0)
            log_write(LOG_LEVEL_WARNING, prefix,
                      "%u message%s from this peer suppressed",
                      limit->suppressed, limit->suppressed == 1 ? "" : "s");
        limit->window_start = now;
        limit->lines = 0;
        limit->suppressed = 0;
    }
    if (limit->lines >= LOG_PEER_BURST) {
        limit->suppressed++;
        return;
    }
    limit->lines++;
    va_start(ap, fmt);
    vlog(level, prefix, fmt, ap);
    va_end(ap);
}

void log_hold_lines(bool hold_them) {
    pthread_mutex_lock(&out.lock);
    init();
    if (!hold_them)
        emit_held();
    out.holding = hold_them;
    out.holder = pthread_self();
    pthread_mutex_unlock(&out.lock);
}

void log_release(void) {
    pthread_mutex_lock(&out.lock);
    emit_held();
    pthread_mutex_unlock(&out.lock);
}

uint64_t log_held_since(void) {
    uint64_t since;
    pthread_mutex_lock(&out.lock);
    since = out.held_len == 0 ? 0 : out.held_since;
    pthread_mutex_unlock(&out.lock);
    return since;
}

void log_flush(void) {
    struct timespec deadline;

    log_release();
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 1;
    pthread_mutex_lock(&out.lock);
    while (out.thread_started && (out.used > 0 || out.writing ||
                                  out.dropped != out.dropped_reported)) {
        if (pthread_cond_timedwait(&out.drained, &out.lock, &deadline) != 0)
            break;
    }
    pthread_mutex_unlock(&out.lock);
}

unsigned long log_dropped(void) {
    unsigned long dropped;
    pthread_mutex_lock(&out.lock);
    dropped = out.dropped;
    pthread_mutex_unlock(&out.lock);
    return dropped;
}
