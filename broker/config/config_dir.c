// SPDX-License-Identifier: Apache-2.0
// Finds network files in the config directory and turns them into configs.
#include "config_dir.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/broker.h"
#include "../core/log.h"
#include "../core/reason.h"
#include "../core/status.h"
#include "../core/subnet.h"
#include "config_file.h"

#define SUFFIX ".json"
#define SUFFIX_LEN (sizeof(SUFFIX) - 1)

// A parsed file, kept while the file stays the same: a request must never
// make the broker parse a file or resolve user and group names again (a
// refused acquire repeated in a loop would otherwise cost both each time).
struct cached_config {
    char name[NETWORK_NAME_MAX + 1];
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime;
    struct timespec ctime;
    int status; // BROKER_OK, or BROKER_ERR_CREATE_FAILURE for a bad file
    // A bad file's first problem: every request refused for it says why.
    struct reason why;
    struct network_config config;
    // SIGHUP with the parser thread: parse again (names too) before a
    // lookup may use it; list() shows it meanwhile.
    bool stale;
    struct cached_config *next;
};

// A parse the parser thread is asked for: one network's file, or (name
// empty) every file of the directory that changed.
struct parse_job {
    char name[NETWORK_NAME_MAX + 1];
    // With the directory scan: log its problems as --check-config prints
    // them (SIGHUP).
    bool report;
    struct parse_job *next;
};

struct config_dir {
    char *path;
    // Guarded by lock once the parser thread runs: it adds and updates
    // entries, the loop copies them out.
    struct cached_config *cache;
    // Off-loop parsing (config_dir_start_parser()): the loop never parses
    // a file nor resolves a name then.
    bool threaded;
    pthread_t thread;
    pthread_mutex_t lock; // cache, jobs, stop
    pthread_cond_t wake;
    struct parse_job *jobs;
    bool stop;
    config_dir_parsed_fn parsed;
    void *parsed_ctx;
    // VMNET_BROKER_TEST_RESOLVE_DELAY_MS: each parse waits this long
    // first, as a slow user database would; VMNET_BROKER_TEST_PARSE_GATE:
    // each parse waits until that file exists (tests).
    unsigned delay_ms;
    char *gate;
    // --check-config prints the problems itself: nothing is logged then.
    bool quiet;
    // list()'s answer, valid until a file or the directory changes.
    bool list_valid;
    struct network_config *list;
    size_t n_list;
    // Grows at each change list() may show (config_source_ops.generation).
    uint64_t generation;
    // Whether the daemon watches the directory (inotify); without a watch
    // the directory's own stat() is compared at each generation() call.
    bool watched;
    bool dir_seen;
    struct stat dir_st;
    // The directory's problem last logged ("" when none): logged once per
    // change, not at every request it refuses.
    char dir_problem_logged[128];
};

struct config_dir *config_dir_new(const char *path) {
    struct config_dir *dir = calloc(1, sizeof(*dir));
    if (dir == NULL)
        return NULL;
    dir->path = strdup(path);
    if (dir->path == NULL) {
        free(dir);
        return NULL;
    }
    pthread_mutex_init(&dir->lock, NULL);
    pthread_cond_init(&dir->wake, NULL);
    return dir;
}

void config_dir_free(struct config_dir *dir) {
    if (dir == NULL)
        return;
    if (dir->threaded) {
        pthread_mutex_lock(&dir->lock);
        dir->stop = true;
        pthread_cond_signal(&dir->wake);
        pthread_mutex_unlock(&dir->lock);
        pthread_join(dir->thread, NULL);
    }
    while (dir->jobs != NULL) {
        struct parse_job *job = dir->jobs;
        dir->jobs = job->next;
        free(job);
    }
    pthread_cond_destroy(&dir->wake);
    pthread_mutex_destroy(&dir->lock);
    free(dir->gate);
    while (dir->cache != NULL) {
        struct cached_config *c = dir->cache;
        dir->cache = c->next;
        free(c);
    }
    free(dir->list);
    free(dir->path);
    free(dir);
}

void config_dir_free_names(char **names, size_t n) {
    if (names == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

// Returns a malloc'd "<dir>/<name>.json", or NULL when out of memory.
static char *file_path(const char *dir, const char *name) {
    size_t size = strlen(dir) + 1 + strlen(name) + SUFFIX_LEN + 1;
    char *path = malloc(size);
    if (path != NULL)
        snprintf(path, size, "%s/%s%s", dir, name, SUFFIX);
    return path;
}

// Root, or the uid the broker runs as: the only owners trusted with what
// decides who may use which network.
static bool trusted_owner(uid_t uid) { return uid == 0 || uid == geteuid(); }

// Why a file whose lstat() is st is not used, or NULL: it must be a
// regular file (a link is never followed: its target could be anything,
// and parse errors would quote it), owned by root, writable by root only.
static const char *file_problem(const struct stat *st, char *buf, size_t size) {
    if (S_ISLNK(st->st_mode))
        return "is a symbolic link";
    if (!S_ISREG(st->st_mode))
        return "is not a regular file";
    if (!trusted_owner(st->st_uid)) {
        snprintf(buf, size, "is owned by uid %lu, not root",
                 (unsigned long)st->st_uid);
        return buf;
    }
    if ((st->st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return "is writable by users other than root";
    return NULL;
}

// Why no file of the directory path is used, or NULL (a missing
// directory is no problem: built-ins only). Another user who can write
// there could add, replace or remove networks and their allow-lists.
static const char *dir_problem(const char *path, char *buf, size_t size) {
    struct stat st;

    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return NULL;
    if (!trusted_owner(st.st_uid)) {
        snprintf(buf, size, "is owned by uid %lu, not root",
                 (unsigned long)st.st_uid);
        return buf;
    }
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
        return "is writable by users other than root";
    return NULL;
}

#define NOT_USED_HINT                                                          \
    "network files must be regular files owned by root and writable by "       \
    "root only"

// Checks the directory before any of its files is used; logs a new
// problem once. Returns false when its files must not be used.
static bool dir_usable(struct config_dir *dir, struct reason *why) {
    char buf[64];
    const char *problem = dir_problem(dir->path, buf, sizeof(buf));

    if (problem == NULL) {
        dir->dir_problem_logged[0] = '\0';
        return true;
    }
    reason_set(why,
               "configuration directory %s %s: none of its networks is "
               "used",
               dir->path, problem);
    if (!dir->quiet && strcmp(dir->dir_problem_logged, problem) != 0) {
        log_error("configuration directory %s %s: none of its networks is "
                  "used (not even the built-ins) until only root can write it",
                  dir->path, problem);
        snprintf(dir->dir_problem_logged, sizeof(dir->dir_problem_logged), "%s",
                 problem);
    }
    return false;
}

// Starts from what the network is without a file.
static bool config_defaults(const char *name, struct network_config *config) {
    if (network_config_builtin(name, config))
        return true;
    // "mode" is required in the file, so the mode given here never shows.
    network_config_init(config, name, NETWORK_MODE_SHARED);
    return false;
}

// Where a parse reports its problems: the entry's reason and the log.
struct problem_sink {
    struct reason *why;
    bool quiet;
};

static void log_problem(void *ctx, const char *path, int line, int column,
                        const char *message) {
    struct problem_sink *sink = ctx;
    if (!sink->quiet)
        log_error("%s:%d:%d: %s", path, line, column, message);
    // The first problem is the reply's reason; the log has them all.
    reason_set(sink->why, "invalid configuration: %s:%d:%d: %s", path, line,
               column, message);
}

// Something list() shows may have changed.
static void invalidate(struct config_dir *dir) {
    dir->list_valid = false;
    dir->generation++;
}

static bool same_time(struct timespec a, struct timespec b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// The cache entry of name, whether or not it still matches the file.
static struct cached_config *cache_find(struct config_dir *dir,
                                        const char *name) {
    for (struct cached_config *c = dir->cache; c != NULL; c = c->next) {
        if (strcmp(c->name, name) == 0)
            return c;
    }
    return NULL;
}

static bool cache_matches(const struct cached_config *c,
                          const struct stat *st) {
    return c->dev == st->st_dev && c->ino == st->st_ino &&
           c->size == st->st_size && same_time(c->mtime, st->st_mtim) &&
           same_time(c->ctime, st->st_ctim);
}

// Parses name's file (path, whose lstat() is st) into *entry, all but its
// name and link: its problems are logged unless quiet. On any thread.
static void parse_entry(bool quiet, const char *name, const char *path,
                        const struct stat *st, struct cached_config *entry) {
    struct network_config config;
    struct problem_sink sink = {.quiet = quiet, .why = &entry->why};
    const char *problem;
    char buf[64];
    bool builtin = config_defaults(name, &config);

    entry->dev = st->st_dev;
    entry->ino = st->st_ino;
    entry->size = st->st_size;
    entry->mtime = st->st_mtim;
    entry->ctime = st->st_ctim;
    entry->status = BROKER_OK;
    memset(&entry->why, 0, sizeof(entry->why));
    problem = file_problem(st, buf, sizeof(buf));
    if (problem != NULL) {
        entry->status = BROKER_ERR_CREATE_FAILURE;
        reason_set(&entry->why, "%s %s: not used (%s)", path, problem,
                   NOT_USED_HINT);
        if (!quiet)
            log_error("%s %s: not used (%s)", path, problem, NOT_USED_HINT);
    } else if (config_file_apply(path, builtin, &config, log_problem, &sink) !=
               0) {
        entry->status = BROKER_ERR_CREATE_FAILURE;
    }
    entry->config = config;
}

// Stores entry as its name's cache entry (under dir->lock once the parser
// thread runs). NULL when out of memory.
static struct cached_config *cache_store(struct config_dir *dir,
                                         const char *name,
                                         const struct cached_config *entry) {
    struct cached_config *cached = cache_find(dir, name);
    struct cached_config *next;

    if (cached == NULL) {
        cached = calloc(1, sizeof(*cached));
        if (cached == NULL)
            return NULL;
        cached->next = dir->cache;
        dir->cache = cached;
    }
    next = cached->next;
    *cached = *entry;
    cached->next = next;
    snprintf(cached->name, sizeof(cached->name), "%s", name);
    return cached;
}

// The parsed configuration of name's file (path, whose stat is st): parsed
// (and its problems logged) only when the file is new or has changed. On
// the loop, without a parser thread. NULL when out of memory.
static struct cached_config *cache_load(struct config_dir *dir,
                                        const char *name, const char *path,
                                        const struct stat *st) {
    struct cached_config *cached = cache_find(dir, name);
    struct cached_config entry = {0};

    if (cached != NULL && cache_matches(cached, st))
        return cached;
    parse_entry(dir->quiet, name, path, st, &entry);
    cached = cache_store(dir, name, &entry);
    // A file parsed anew may change what the configured list shows.
    invalidate(dir);
    return cached;
}

static int copy_out(const struct cached_config *cached,
                    struct network_config *config, struct reason *why) {
    if (cached->status == BROKER_OK)
        *config = cached->config;
    else if (why != NULL && reason_get(&cached->why) != NULL)
        reason_set(why, "%s", reason_get(&cached->why));
    return cached->status;
}

// Asks the parser thread for job (name, or "" for the directory); one
// already queued for the same is not queued twice. Under dir->lock.
static bool queue_job(struct config_dir *dir, const char *name, bool report) {
    struct parse_job **tail = &dir->jobs;
    struct parse_job *job;

    for (; *tail != NULL; tail = &(*tail)->next) {
        if (strcmp((*tail)->name, name) == 0) {
            (*tail)->report = (*tail)->report || report;
            return true;
        }
    }
    job = calloc(1, sizeof(*job));
    if (job == NULL)
        return false;
    snprintf(job->name, sizeof(job->name), "%s", name);
    job->report = report;
    *tail = job;
    pthread_cond_signal(&dir->wake);
    return true;
}

// name's configuration as its file (path, whose lstat() is st) says now:
// fills *config (on BROKER_OK) or why, and returns its status. With a
// parser thread, a file not parsed in this version yet is queued for it
// and BROKER_PENDING returned: never the old version's rules.
static int cache_get(struct config_dir *dir, const char *name, const char *path,
                     const struct stat *st, bool allow_stale,
                     struct network_config *config, struct reason *why) {
    struct cached_config *cached;
    int status;

    if (!dir->threaded) {
        cached = cache_load(dir, name, path, st);
        return cached != NULL ? copy_out(cached, config, why)
                              : BROKER_ERR_INTERNAL;
    }
    pthread_mutex_lock(&dir->lock);
    cached = cache_find(dir, name);
    if (cached != NULL && cache_matches(cached, st) &&
        (allow_stale || !cached->stale))
        status = copy_out(cached, config, why);
    else
        status =
            queue_job(dir, name, false) ? BROKER_PENDING : BROKER_ERR_INTERNAL;
    pthread_mutex_unlock(&dir->lock);
    if (status == BROKER_ERR_INTERNAL)
        log_error("cannot parse %s: out of memory", path);
    return status;
}

static int config_dir_lookup(void *ctx, const char *name,
                             struct network_config *out, struct reason *why) {
    struct config_dir *dir = ctx;
    struct network_config config;
    struct stat st;
    char *path = NULL;
    bool builtin;
    int status = BROKER_ERR_NOT_FOUND;

    // The name becomes part of a path: "../x" must never get there.
    if (!network_name_valid(name)) {
        reason_set(why, "no network named '%s' is configured", name);
        goto out;
    }
    if (!dir_usable(dir, why)) {
        status = BROKER_ERR_CREATE_FAILURE;
        goto out;
    }
    builtin = config_defaults(name, &config);
    path = file_path(dir->path, name);
    if (path == NULL) {
        log_error("cannot look up '%s': out of memory", name);
        status = BROKER_ERR_INTERNAL;
        goto out;
    }
    // No file (or no directory at all): only the built-ins exist. A link
    // is seen as itself (and refused), never followed.
    if (lstat(path, &st) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        if (!builtin) {
            reason_set(why, "no network named '%s' is configured", name);
            goto out;
        }
        *out = config;
        status = BROKER_OK;
        goto out;
    }
    // Only files that exist are cached, so the cache is as large as the
    // directory, whatever names clients ask for.
    status = cache_get(dir, name, path, &st, false, out, why);
out:
    free(path);
    return status;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *file) {
    size_t len = strlen(file);
    return len >= SUFFIX_LEN && strcmp(file + len - SUFFIX_LEN, SUFFIX) == 0;
}

static int list_names(const char *path, char ***names, size_t *n);
static int config_dir_list(void *ctx, struct network_config **configs,
                           size_t *n);
static uint64_t config_dir_generation(void *ctx);

const struct config_source_ops config_dir_ops = {
    .lookup = config_dir_lookup,
    .list = config_dir_list,
    .generation = config_dir_generation,
};

// Lists, sorted, the names of the *.json files in path with the suffix
// removed (valid network names or not). Returns 0 or a negative errno.
static int list_names(const char *path, char ***names, size_t *n) {
    DIR *dir = opendir(path);
    char **list = NULL;
    size_t n_list = 0;
    size_t capacity = 0;
    struct dirent *entry;
    int status = -ENOMEM;

    if (dir == NULL) {
        status = -errno;
        goto out;
    }
    for (;;) {
        char *name;
        errno = 0;
        entry = readdir(dir);
        if (entry == NULL)
            break;
        if (!has_suffix(entry->d_name))
            continue;
        if (n_list == capacity) {
            size_t bigger_capacity = capacity ? capacity * 2 : 16;
            char **bigger = realloc(list, bigger_capacity * sizeof(*bigger));
            if (bigger == NULL)
                goto out;
            list = bigger;
            capacity = bigger_capacity;
        }
        name = strndup(entry->d_name, strlen(entry->d_name) - SUFFIX_LEN);
        if (name == NULL)
            goto out;
        list[n_list++] = name;
    }
    if (errno != 0) {
        status = -errno;
        goto out;
    }
    if (n_list > 0)
        qsort(list, n_list, sizeof(*list), compare_names);
    *names = list;
    *n = n_list;
    list = NULL;
    n_list = 0;
    status = 0;
out:
    if (dir != NULL)
        closedir(dir);
    config_dir_free_names(list, n_list);
    return status;
}

// Prints text with control characters as \xNN, so that a file name made
// to hold escape sequences cannot drive the administrator's terminal.
static void print_escaped(FILE *out, const char *text) {
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
}

static void print_problem(void *ctx, const char *path, int line, int column,
                          const char *message) {
    print_escaped(ctx, path);
    fprintf(ctx, ":%d:%d: ", line, column);
    print_escaped(ctx, message);
    fputc('\n', ctx);
}

// Checks one network file (name from its file name): returns its problems.
static int check_one(const char *file, const char *name, FILE *out) {
    struct network_config config;
    bool builtin = config_defaults(name, &config);
    int problems = 0;
    struct stat st;
    const char *problem;
    char buf[64];

    // Not read at all when it would not be used: a link's target is never
    // opened, so nothing of it can show in a message.
    if (lstat(file, &st) == 0 &&
        (problem = file_problem(&st, buf, sizeof(buf))) != NULL) {
        print_escaped(out, file);
        fprintf(out, ": %s: not used (%s)\n", problem, NOT_USED_HINT);
        return 1;
    }
    if (!network_name_valid(name)) {
        print_escaped(out, file);
        fputs(":1:1: \"", out);
        print_escaped(out, name);
        fprintf(out,
                "\" is not a valid network name (1 to %d of A-Z a-z 0-9 _ . "
                "-, starting with a letter or digit)\n",
                NETWORK_NAME_MAX);
        problems++;
    }
    return problems +
           config_file_apply(file, builtin, &config, print_problem, out);
}

int config_dir_check_file(const char *file, FILE *out) {
    const char *base = strrchr(file, '/');
    char *name;
    int problems;

    base = base == NULL ? file : base + 1;
    if (!has_suffix(base)) {
        print_escaped(out, file);
        fputs(": not a network file: its name must end in .json\n", out);
        return 1;
    }
    name = strndup(base, strlen(base) - SUFFIX_LEN);
    if (name == NULL) {
        fputs("out of memory\n", out);
        return 1;
    }
    problems = check_one(file, name, out);
    free(name);
    return problems;
}

int config_dir_check(const char *path, FILE *out) {
    char **names = NULL;
    size_t n = 0;
    int problems = 0;
    const char *problem;
    char buf[64];
    int status = list_names(path, &names, &n);

    if (status == -ENOENT) {
        fprintf(out, "%s: no such directory: only the built-in networks\n",
                path);
        return 0;
    }
    if (status < 0) {
        fprintf(out, "%s: cannot read the directory: %s\n", path,
                strerror(-status));
        return 1;
    }
    if ((problem = dir_problem(path, buf, sizeof(buf))) != NULL) {
        print_escaped(out, path);
        fprintf(out,
                ": %s: none of its %zu network file%s is used (not even the "
                "built-ins) until only root can write it\n",
                problem, n, n == 1 ? "" : "s");
        config_dir_free_names(names, n);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char *file = file_path(path, names[i]);

        if (file == NULL) {
            fputs("out of memory\n", out);
            problems++;
            continue;
        }
        problems += check_one(file, names[i], out);
        free(file);
    }
    config_dir_free_names(names, n);
    return problems;
}

static int compare_configs(const void *a, const void *b) {
    return strcmp(((const struct network_config *)a)->name,
                  ((const struct network_config *)b)->name);
}

// Fills *config with name's valid configuration (from the cache; a
// built-in without a file is valid). Returns false when it has none.
static bool read_cached(struct config_dir *dir, const char *name,
                        struct network_config *config) {
    bool builtin = config_defaults(name, config);
    char *file = file_path(dir->path, name);
    struct stat st;
    bool valid = false;

    if (file == NULL)
        return false;
    // A file being parsed shows once it is (config_dir_parsed()).
    if (lstat(file, &st) < 0 && (errno == ENOENT || errno == ENOTDIR))
        valid = builtin;
    else
        valid =
            cache_get(dir, name, file, &st, true, config, NULL) == BROKER_OK;
    free(file);
    return valid;
}

// Scans the directory again; files that have not changed are not parsed.
static int rebuild_list(struct config_dir *dir) {
    static const char *const builtins[] = {"host", "shared"};
    char **names = NULL;
    size_t n_names = 0;
    struct network_config *list = NULL;
    size_t n_list = 0;
    int status = BROKER_ERR_INTERNAL;
    bool usable = dir_usable(dir, NULL);
    int r = usable ? list_names(dir->path, &names, &n_names) : -EPERM;

    // Missing or unreadable: only the built-ins, as lookup() sees it.
    if (r < 0)
        n_names = 0;
    list = calloc(n_names + 2, sizeof(*list));
    if (list == NULL)
        goto out;
    // Unusable (writable by others): nothing, as lookup() sees it.
    for (size_t i = 0; usable && i < 2; i++) {
        bool overridden = false;
        for (size_t j = 0; j < n_names; j++)
            overridden = overridden || strcmp(names[j], builtins[i]) == 0;
        if (!overridden && read_cached(dir, builtins[i], &list[n_list]))
            n_list++;
    }
    for (size_t i = 0; i < n_names; i++) {
        if (network_name_valid(names[i]) &&
            read_cached(dir, names[i], &list[n_list]))
            n_list++;
    }
    qsort(list, n_list, sizeof(*list), compare_configs);
    free(dir->list);
    dir->list = list;
    dir->n_list = n_list;
    // Set last: read_cached() invalidates while files are parsed.
    dir->list_valid = true;
    list = NULL;
    status = BROKER_OK;
out:
    free(list);
    config_dir_free_names(names, n_names);
    return status;
}

static int config_dir_list(void *ctx, struct network_config **configs,
                           size_t *n) {
    struct config_dir *dir = ctx;
    struct network_config *copy;

    if (!dir->list_valid && rebuild_list(dir) != BROKER_OK)
        return BROKER_ERR_INTERNAL;
    copy = calloc(dir->n_list > 0 ? dir->n_list : 1, sizeof(*copy));
    if (copy == NULL)
        return BROKER_ERR_INTERNAL;
    if (dir->n_list > 0)
        memcpy(copy, dir->list, dir->n_list * sizeof(*copy));
    *configs = copy;
    *n = dir->n_list;
    return BROKER_OK;
}

static bool same_dir(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
           same_time(a->st_mtim, b->st_mtim) &&
           same_time(a->st_ctim, b->st_ctim);
}

static uint64_t config_dir_generation(void *ctx) {
    struct config_dir *dir = ctx;
    struct stat st;
    bool exists;

    if (dir->watched)
        return dir->generation;
    // Without a watch: one stat() sees files added, removed or renamed
    // (editors save by renaming); an edit in place shows at the next
    // lookup of that network, which parses it again.
    exists = stat(dir->path, &st) == 0;
    if (exists != dir->dir_seen || (exists && !same_dir(&st, &dir->dir_st)))
        invalidate(dir);
    dir->dir_seen = exists;
    if (exists)
        dir->dir_st = st;
    return dir->generation;
}

void config_dir_changed(struct config_dir *dir) {
    invalidate(dir);
    // Parse what changed now, before a request asks for it.
    if (dir->threaded) {
        pthread_mutex_lock(&dir->lock);
        queue_job(dir, "", false);
        pthread_mutex_unlock(&dir->lock);
    }
}

bool config_dir_reload(struct config_dir *dir) {
    // Live networks keep their own copies of their configurations.
    pthread_mutex_lock(&dir->lock);
    if (dir->threaded) {
        // Kept for list() until parsed again; lookups wait for that.
        for (struct cached_config *c = dir->cache; c != NULL; c = c->next)
            c->stale = true;
        queue_job(dir, "", true);
    }
    while (!dir->threaded && dir->cache != NULL) {
        struct cached_config *c = dir->cache;
        dir->cache = c->next;
        free(c);
    }
    pthread_mutex_unlock(&dir->lock);
    dir->dir_problem_logged[0] = '\0';
    invalidate(dir);
    return dir->threaded;
}

void config_dir_log_problems(const char *path) {
    struct network_config *configs = NULL;
    char *text = NULL;
    size_t len = 0, n = 0;
    int problems;
    FILE *f = open_memstream(&text, &len);

    if (f == NULL) {
        log_error("cannot check %s: out of memory", path);
        return;
    }
    problems = config_dir_check(path, f);
    if (config_dir_list_configs(path, &configs, &n) == BROKER_OK)
        problems += config_check_across(configs, n, f);
    free(configs);
    fclose(f);
    // strtok_r: this runs on the parser thread too.
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
        log_warning("%s", line);
    free(text);
    if (problems > 0)
        log_warning("configuration %s reloaded with %d problem%s: the files "
                    "with problems are refused",
                    path, problems, problems == 1 ? "" : "s");
    else
        log_info("configuration %s reloaded: OK", path);
}

static bool stopping(struct config_dir *dir) {
    bool stop;

    pthread_mutex_lock(&dir->lock);
    stop = dir->stop;
    pthread_mutex_unlock(&dir->lock);
    return stop;
}

// Parses name's file into the cache unless the entry there is of the same
// version. On the parser thread.
static void parse_one(struct config_dir *dir, const char *name) {
    char *path = file_path(dir->path, name);
    struct cached_config entry = {0};
    struct cached_config *cached;
    struct stat st;
    bool fresh;

    if (path == NULL || lstat(path, &st) < 0) {
        // Gone: a lookup sees that itself.
        free(path);
        return;
    }
    pthread_mutex_lock(&dir->lock);
    cached = cache_find(dir, name);
    fresh = cached != NULL && cache_matches(cached, &st) && !cached->stale;
    pthread_mutex_unlock(&dir->lock);
    if (!fresh) {
        while (dir->gate != NULL && access(dir->gate, F_OK) < 0 &&
               !stopping(dir)) {
            struct timespec poll = {.tv_nsec = 10 * 1000000};
            nanosleep(&poll, NULL);
        }
        if (dir->delay_ms > 0) {
            struct timespec delay = {.tv_sec = dir->delay_ms / 1000,
                                     .tv_nsec = (long)(dir->delay_ms % 1000) *
                                                1000000};
            while (nanosleep(&delay, &delay) < 0 && errno == EINTR)
                ;
        }
        parse_entry(false, name, path, &st, &entry);
        pthread_mutex_lock(&dir->lock);
        if (cache_store(dir, name, &entry) == NULL)
            log_error("cannot keep %s: out of memory", path);
        pthread_mutex_unlock(&dir->lock);
    }
    free(path);
}

static void run_job(struct config_dir *dir, const struct parse_job *job) {
    char **names = NULL;
    size_t n = 0;

    if (job->name[0] != '\0') {
        parse_one(dir, job->name);
        return;
    }
    if (job->report)
        config_dir_log_problems(dir->path);
    if (list_names(dir->path, &names, &n) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (network_name_valid(names[i]))
            parse_one(dir, names[i]);
    }
    config_dir_free_names(names, n);
}

static void *parser_main(void *data) {
    struct config_dir *dir = data;

    pthread_mutex_lock(&dir->lock);
    for (;;) {
        struct parse_job *job;

        while (dir->jobs == NULL && !dir->stop)
            pthread_cond_wait(&dir->wake, &dir->lock);
        if (dir->stop)
            break;
        job = dir->jobs;
        dir->jobs = job->next;
        pthread_mutex_unlock(&dir->lock);
        run_job(dir, job);
        free(job);
        // The loop takes it from here (config_dir_parsed()).
        dir->parsed(dir->parsed_ctx);
        pthread_mutex_lock(&dir->lock);
    }
    pthread_mutex_unlock(&dir->lock);
    return NULL;
}

int config_dir_start_parser(struct config_dir *dir, config_dir_parsed_fn parsed,
                            void *ctx) {
    const char *delay = getenv("VMNET_BROKER_TEST_RESOLVE_DELAY_MS");
    sigset_t all, old;
    int r;

    // Every file once, here, before serving: the first status lists them
    // all and the first requests need not wait.
    if (!dir->list_valid)
        rebuild_list(dir);
    const char *gate = getenv("VMNET_BROKER_TEST_PARSE_GATE");

    if (delay != NULL)
        dir->delay_ms = (unsigned)strtoul(delay, NULL, 10);
    if (gate != NULL)
        dir->gate = strdup(gate);
    dir->parsed = parsed;
    dir->parsed_ctx = ctx;
    // The thread takes no signals: the loop handles them.
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(&dir->thread, NULL, parser_main, dir);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r < 0) {
        log_error("cannot start the config parser thread: %s; config files "
                  "are parsed on the event loop",
                  strerror(-r));
        return r;
    }
    dir->threaded = true;
    return 0;
}

void config_dir_parsed(struct config_dir *dir) { invalidate(dir); }

void config_dir_set_watched(struct config_dir *dir, bool watched) {
    dir->watched = watched;
    invalidate(dir);
}

static void format_prefix(uint32_t subnet, uint32_t mask, char *buffer,
                          size_t size) {
    char address[16];
    snprintf(buffer, size, "%s/%u", ipv4_format(subnet & mask, address),
             ipv4_mask_len(mask));
}

int config_check_across(const struct network_config *configs, size_t n,
                        FILE *out) {
    int problems = 0;

    for (size_t i = 0; i < n; i++) {
        const struct network_config *a = &configs[i];
        for (size_t j = i + 1; j < n; j++) {
            const struct network_config *b = &configs[j];
            if (a->has_subnet && b->has_subnet) {
                struct ipv4_prefix pa = {a->subnet & a->mask,
                                         ipv4_mask_len(a->mask)};
                struct ipv4_prefix pb = {b->subnet & b->mask,
                                         ipv4_mask_len(b->mask)};
                if (ipv4_prefix_overlaps(pa, pb)) {
                    char sa[32], sb[32];
                    format_prefix(a->subnet, a->mask, sa, sizeof(sa));
                    format_prefix(b->subnet, b->mask, sb, sizeof(sb));
                    fprintf(out,
                            "networks '%s' (%s) and '%s' (%s): static "
                            "subnets overlap: the second one created would "
                            "fail\n",
                            a->name, sa, b->name, sb);
                    problems++;
                }
            }
            // One (protocol, host port) can lead to one guest only.
            for (size_t x = 0; x < a->n_port_forwards; x++) {
                for (size_t y = 0; y < b->n_port_forwards; y++) {
                    const struct port_forward *fa = &a->port_forwards[x];
                    const struct port_forward *fb = &b->port_forwards[y];
                    if (fa->udp != fb->udp || fa->host_port != fb->host_port)
                        continue;
                    fprintf(out,
                            "networks '%s' and '%s' both forward host port "
                            "%s/%u\n",
                            a->name, b->name, fa->udp ? "udp" : "tcp",
                            (unsigned)fa->host_port);
                    problems++;
                }
            }
        }
    }
    return problems;
}

void config_print_networks(const struct network_config *configs, size_t n,
                           FILE *out) {
    for (size_t i = 0; i < n; i++) {
        char subnet[32] = "subnet chosen at start";
        if (configs[i].has_subnet)
            format_prefix(configs[i].subnet, configs[i].mask, subnet,
                          sizeof(subnet));
        // An allow-list given empty admits no one but root (policy.c).
        bool root_only = configs[i].restricted &&
                         configs[i].n_allowed_users == 0 &&
                         configs[i].n_allowed_groups == 0;
        fprintf(out, "  %-20s %-7s %s%s%s\n", configs[i].name,
                network_mode_name(configs[i].mode), subnet,
                configs[i].persistent ? " (persistent)" : "",
                root_only ? " (root only: its allow-list is empty)" : "");
    }
}

int config_dir_list_configs(const char *path, struct network_config **configs,
                            size_t *n) {
    struct config_dir *dir = config_dir_new(path);
    int status = BROKER_ERR_INTERNAL;

    if (dir == NULL)
        return status;
    // The caller prints the problems (config_dir_check).
    dir->quiet = true;
    status = config_dir_list(dir, configs, n);
    config_dir_free(dir);
    return status;
}

// True when name has a valid file that asks to be created at start.
static bool persistent(const char *dir, const char *name) {
    struct network_config config;
    bool builtin = config_defaults(name, &config);
    char *file = file_path(dir, name);
    struct stat st;
    char buf[64];
    bool result = file != NULL && lstat(file, &st) == 0 &&
                  file_problem(&st, buf, sizeof(buf)) == NULL &&
                  config_file_apply(file, builtin, &config, NULL, NULL) == 0 &&
                  config.persistent;
    free(file);
    return result;
}

int config_dir_persistent_names(const char *path, char ***names, size_t *n) {
    char **all = NULL;
    size_t n_all = 0;
    char **found = NULL;
    size_t n_found = 0;
    char buf[64];
    int status = dir_problem(path, buf, sizeof(buf)) != NULL
                     ? -ENOENT
                     : list_names(path, &all, &n_all);

    // A missing directory lists nothing, like an empty one; so does one
    // whose files are not used (the lookups say why).
    if (status == -ENOENT)
        status = 0;
    if (status < 0)
        goto out;
    status = -ENOMEM;
    found = calloc(n_all > 0 ? n_all : 1, sizeof(*found));
    if (found == NULL)
        goto out;
    for (size_t i = 0; i < n_all; i++) {
        if (!network_name_valid(all[i]) || !persistent(path, all[i]))
            continue;
        // Hand the string over instead of copying it.
        found[n_found++] = all[i];
        all[i] = NULL;
    }
    *names = found;
    *n = n_found;
    found = NULL;
    n_found = 0;
    status = 0;
out:
    config_dir_free_names(all, n_all);
    config_dir_free_names(found, n_found);
    return status;
}
