// SPDX-License-Identifier: Apache-2.0
// The configuration directory: one <name>.json per network, read on demand.
#ifndef VMNET_BROKER_CONFIG_CONFIG_DIR_H
#define VMNET_BROKER_CONFIG_CONFIG_DIR_H

#include <stddef.h>
#include <stdio.h>

#include "../core/backend.h"

struct config_dir;

// Copies path. Returns NULL when out of memory.
struct config_dir *config_dir_new(const char *path);
// Accepts NULL.
void config_dir_free(struct config_dir *dir);

// The broker core's config source; its ctx is a struct config_dir *.
// lookup(name) parses <path>/<name>.json (resolving user and group names)
// once and again only when the file changes (its inode, size, mtime or
// ctime), so an edit applies the next time that network is created and a
// repeated request costs one stat(). A file that changes within one
// timestamp tick without changing size is not seen until it changes again. A
// valid file gives BROKER_OK; an invalid one logs every problem
// ("FILE:LINE:COLUMN: message") and gives BROKER_ERR_CREATE_FAILURE; without a
// file, "shared" and "host" get their built-in defaults and other names
// BROKER_ERR_NOT_FOUND. A missing directory means built-ins only.
extern const struct config_source_ops config_dir_ops;

// Validates every *.json in path, for `vmnet-broker --check-config`. Prints
// each problem to out as "PATH:LINE:COLUMN: message", including file names
// that are not valid network names and files that cannot be read, and
// returns how many there were. A missing directory is not a problem: a
// note is printed and 0 returned.
int config_dir_check(const char *path, FILE *out);

// Lists, sorted, the networks in path whose valid file says
// "persistent": true. Invalid files are skipped (a lookup reports them).
// *names is a malloc'd array of malloc'd strings, freed with
// config_dir_free_names(). Returns 0 (a missing directory lists nothing) or
// a negative errno, leaving *names and *n untouched.
int config_dir_persistent_names(const char *path, char ***names, size_t *n);
// Accepts NULL.
void config_dir_free_names(char **names, size_t n);

#endif
