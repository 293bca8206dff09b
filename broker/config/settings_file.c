// SPDX-License-Identifier: Apache-2.0
// Parses and checks the broker-wide settings file with jansson.
#include "settings_file.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json_locate.h"

// Far more than three keys need; a larger file is a mistake.
#define SETTINGS_FILE_MAX (64 * 1024)
#define MAX_IDLE_SECONDS (365.0 * 24 * 3600)
#define MAX_CONNECTIONS 1000000

struct settings_parser {
    const char *path;
    const char *text;
    size_t len;
    int count;
    config_problem_fn report;
    void *report_ctx;
};

static void problem(struct settings_parser *p, int line, int column,
                    const char *message) {
    p->count++;
    if (p->report != NULL)
        p->report(p->report_ctx, p->path, line, column, message);
}

// A problem with the value of key (or, with at_key, the key itself).
static void problem_at(struct settings_parser *p, const char *key, bool at_key,
                       const char *message) {
    struct json_step step = JSON_KEY(key);
    int line = 1;
    int column = 1;
    char text[256];

    if (at_key)
        json_locate_key(p->text, p->len, &step, 1, &line, &column);
    else
        json_locate_value(p->text, p->len, &step, 1, &line, &column);
    snprintf(text, sizeof(text), "'%s'%s", key, message);
    problem(p, line, column, text);
}

// Why the directory holding path would let another user replace the file,
// or NULL: it must be root's and writable by root only, or sticky (/tmp).
static const char *dir_problem(const char *path, char why[96]) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    struct stat st;

    if (slash == NULL)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == path)
        snprintf(dir, sizeof(dir), "/");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) < 0)
        return NULL; // then the file cannot be opened either: said there
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(why, 96, "is in a directory owned by uid %lu: not used",
                 (unsigned long)st.st_uid);
        return why;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && (st.st_mode & S_ISVTX) == 0)
        return "is in a directory others can write: not used";
    return NULL;
}

// Reads the whole file into *text (NUL-terminated) after checking it is one
// the broker may trust. Returns NULL or why it cannot be used; *missing
// tells a file that does not exist.
static const char *read_trusted(const char *path, char **text, size_t *len,
                                bool *missing, char why[96]) {
    // O_NOFOLLOW: a link is refused, never followed; O_NONBLOCK: a FIFO in
    // its place cannot hang the broker.
    int fd =
        open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
    const char *failure = NULL;
    char *buf = NULL;
    struct stat st;
    ssize_t n;

    *missing = false;
    if (fd < 0 && errno == ENOENT) {
        *missing = true;
        goto out;
    }
    if (fd < 0) {
        failure =
            errno == ELOOP ? "is a symbolic link: not used" : strerror(errno);
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        failure = strerror(errno);
        goto out;
    }
    failure = dir_problem(path, why);
    if (failure != NULL)
        goto out;
    if (!S_ISREG(st.st_mode)) {
        failure = "is not a regular file: not used";
        goto out;
    }
    // Whoever can write it decides the broker's limits.
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(why, 96, "is owned by uid %lu, not root: not used",
                 (unsigned long)st.st_uid);
        failure = why;
        goto out;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
        failure = "is writable by users other than root: not used";
        goto out;
    }
    if (st.st_size > SETTINGS_FILE_MAX) {
        failure = "is larger than 64 KiB";
        goto out;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        failure = "out of memory";
        goto out;
    }
    do
        n = pread(fd, buf, (size_t)st.st_size, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        failure = strerror(errno);
        goto out;
    }
    buf[n] = '\0';
    *text = buf;
    *len = (size_t)n;
    buf = NULL;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return failure;
}

static void apply_key(struct settings_parser *p, const char *key, json_t *value,
                      struct broker_settings *s) {
    if (strcmp(key, "subnet_pool") == 0) {
        uint32_t first, last;
        if (!json_is_string(value) ||
            !ipv4_prefix_parse(json_string_value(value), &s->subnet_pool) ||
            !subnet_pool_range(s->subnet_pool, &first, &last)) {
            problem_at(p, key, false,
                       " must be a string \"A.B.C.D/LEN\" with LEN from 8 to "
                       "24");
            return;
        }
        s->has_subnet_pool = true;
    } else if (strcmp(key, "idle_timeout") == 0) {
        double seconds = json_is_number(value) ? json_number_value(value) : -1;
        if (!isfinite(seconds) || seconds < 0 || seconds > MAX_IDLE_SECONDS) {
            problem_at(p, key, false,
                       " must be a number of seconds from 0 to 31536000");
            return;
        }
        s->idle_usec = (uint64_t)(seconds * 1e6);
        s->has_idle_timeout = true;
    } else if (strcmp(key, "max_connections_per_user") == 0) {
        json_int_t n = json_is_integer(value) ? json_integer_value(value) : -1;
        if (n < 0 || n > MAX_CONNECTIONS) {
            problem_at(p, key, false,
                       " must be an integer from 0 (no cap) to 1000000");
            return;
        }
        s->max_connections_per_user = (unsigned)n;
        s->has_max_connections_per_user = true;
    } else {
        problem_at(p, key, true,
                   ": unknown key (known: subnet_pool, idle_timeout, "
                   "max_connections_per_user)");
    }
}

int settings_file_load(const char *path, struct broker_settings *out,
                       config_problem_fn report, void *report_ctx) {
    struct settings_parser p = {
        .path = path, .report = report, .report_ctx = report_ctx};
    struct broker_settings s = {0};
    json_t *root = NULL;
    char *text = NULL;
    const char *key;
    json_t *value;
    json_error_t error;
    bool missing;
    char why[96];
    const char *failure = read_trusted(path, &text, &p.len, &missing, why);

    if (missing)
        goto out;
    if (failure != NULL) {
        problem(&p, 1, 1, failure);
        goto out;
    }
    p.text = text;
    // Duplicate keys are rejected: which one wins would be a guess.
    root = json_loadb(text, p.len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        // jansson says column 0 at the end of an empty line.
        problem(&p, error.line > 0 ? error.line : 1,
                error.column > 0 ? error.column : 1, error.text);
        goto out;
    }
    if (!json_is_object(root)) {
        problem(&p, 1, 1, "the settings must be a JSON object");
        goto out;
    }
    // jansson keeps an object's keys in file order: problems come in it.
    json_object_foreach(root, key, value) apply_key(&p, key, value, &s);
out:
    if (p.count == 0)
        *out = s;
    json_decref(root);
    free(text);
    return p.count;
}
