// SPDX-License-Identifier: Apache-2.0
// Finds network files in the config directory and turns them into configs.
#include "config_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../core/log.h"
#include "../core/status.h"
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
    struct network_config config;
    struct cached_config *next;
};

struct config_dir {
    char *path;
    struct cached_config *cache;
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
    return dir;
}

void config_dir_free(struct config_dir *dir) {
    if (dir == NULL)
        return;
    while (dir->cache != NULL) {
        struct cached_config *c = dir->cache;
        dir->cache = c->next;
        free(c);
    }
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

// Starts from what the network is without a file.
static bool config_defaults(const char *name, struct network_config *config) {
    if (network_config_builtin(name, config))
        return true;
    // "mode" is required in the file, so the mode given here never shows.
    network_config_init(config, name, NETWORK_MODE_SHARED);
    return false;
}

static void log_problem(void *ctx, const char *path, int line, int column,
                        const char *message) {
    (void)ctx;
    log_error("%s:%d:%d: %s", path, line, column, message);
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

static int config_dir_lookup(void *ctx, const char *name,
                             struct network_config *out) {
    struct config_dir *dir = ctx;
    struct network_config config;
    struct cached_config *cached;
    struct stat st;
    char *path = NULL;
    bool builtin;
    int status = BROKER_ERR_NOT_FOUND;

    // The name becomes part of a path: "../x" must never get there.
    if (!network_name_valid(name))
        goto out;
    builtin = config_defaults(name, &config);
    path = file_path(dir->path, name);
    if (path == NULL) {
        log_error("cannot look up '%s': out of memory", name);
        status = BROKER_ERR_INTERNAL;
        goto out;
    }
    // No file (or no directory at all): only the built-ins exist.
    if (stat(path, &st) < 0 && (errno == ENOENT || errno == ENOTDIR)) {
        if (!builtin)
            goto out;
        *out = config;
        status = BROKER_OK;
        goto out;
    }
    // Only files that exist are cached, so the cache is as large as the
    // directory, whatever names clients ask for.
    cached = cache_find(dir, name);
    if (cached == NULL || !cache_matches(cached, &st)) {
        if (cached == NULL) {
            cached = calloc(1, sizeof(*cached));
            if (cached == NULL) {
                status = BROKER_ERR_INTERNAL;
                goto out;
            }
            snprintf(cached->name, sizeof(cached->name), "%s", name);
            cached->next = dir->cache;
            dir->cache = cached;
        }
        cached->dev = st.st_dev;
        cached->ino = st.st_ino;
        cached->size = st.st_size;
        cached->mtime = st.st_mtim;
        cached->ctime = st.st_ctim;
        cached->status = BROKER_OK;
        if (config_file_apply(path, builtin, &config, log_problem, NULL) != 0)
            cached->status = BROKER_ERR_CREATE_FAILURE;
        cached->config = config;
    }
    status = cached->status;
    if (status == BROKER_OK)
        *out = cached->config;
out:
    free(path);
    return status;
}

const struct config_source_ops config_dir_ops = {
    .lookup = config_dir_lookup,
};

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *file) {
    size_t len = strlen(file);
    return len >= SUFFIX_LEN && strcmp(file + len - SUFFIX_LEN, SUFFIX) == 0;
}

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

static void print_problem(void *ctx, const char *path, int line, int column,
                          const char *message) {
    fprintf(ctx, "%s:%d:%d: %s\n", path, line, column, message);
}

int config_dir_check(const char *path, FILE *out) {
    char **names = NULL;
    size_t n = 0;
    int problems = 0;
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
    for (size_t i = 0; i < n; i++) {
        struct network_config config;
        char *file = file_path(path, names[i]);
        bool builtin = config_defaults(names[i], &config);

        if (file == NULL) {
            fprintf(out, "%s/%s%s: out of memory\n", path, names[i], SUFFIX);
            problems++;
            continue;
        }
        if (!network_name_valid(names[i])) {
            fprintf(out,
                    "%s:1:1: \"%s\" is not a valid network name (1 to %d of "
                    "A-Z a-z 0-9 _ . -, starting with a letter or digit)\n",
                    file, names[i], NETWORK_NAME_MAX);
            problems++;
        }
        problems +=
            config_file_apply(file, builtin, &config, print_problem, out);
        free(file);
    }
    config_dir_free_names(names, n);
    return problems;
}

// True when name has a valid file that asks to be created at start.
static bool persistent(const char *dir, const char *name) {
    struct network_config config;
    bool builtin = config_defaults(name, &config);
    char *file = file_path(dir, name);
    bool result = file != NULL &&
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
    int status = list_names(path, &all, &n_all);

    // A missing directory lists nothing, like an empty one.
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
