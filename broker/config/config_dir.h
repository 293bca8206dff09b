// SPDX-License-Identifier: Apache-2.0
// The configuration directory: one <name>.json per network, read on demand.
#ifndef VMNET_BROKER_CONFIG_CONFIG_DIR_H
#define VMNET_BROKER_CONFIG_CONFIG_DIR_H

#include <stdbool.h>
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
// BROKER_ERR_NOT_FOUND. A missing directory means built-ins only. An
// invalid file's first problem is the lookup's reason, for the reply.
//
// list() answers from the same parse-once cache and scans the directory
// again only after a change: one the daemon reports with
// config_dir_changed() (an inotify watch, config_dir_set_watched()), a file
// lookup() found changed, or without a watch a change of the directory's
// own stat(). generation() grows at each such change, so that a status
// built from list() is shared until then.
extern const struct config_source_ops config_dir_ops;

// The daemon's watch saw something change in the directory (with the
// parser thread, the changed files are parsed there at once).
void config_dir_changed(struct config_dir *dir);
// SIGHUP: forgets every parsed file, so that each is read again at its
// next use, even one changed within a timestamp tick. With the parser
// thread, it parses every file again and logs the directory's problems
// (config_dir_log_problems()) there, and true is returned; false: the
// caller logs them.
bool config_dir_reload(struct config_dir *dir);

// Called on the parser thread after each parse it published; it must only
// wake the loop (write an eventfd, say), which then calls
// config_dir_parsed() and broker_configs_ready().
typedef void (*config_dir_parsed_fn)(void *ctx);
// From now on files are parsed, and user and group names resolved, on a
// thread of the config source's own, never in lookup() or list(): a file
// not parsed in its current version makes lookup() answer BROKER_PENDING
// (and queue the parse; list() leaves it out until then), so a request is
// never answered with an older version's rules. Call it once the daemon's
// start-up lookups (persistent networks) are done, before serving.
// Returns 0 or a negative errno (logged; parsing stays synchronous). The
// environment variable VMNET_BROKER_TEST_RESOLVE_DELAY_MS delays each
// parse by that many milliseconds, as a slow user database would, and
// VMNET_BROKER_TEST_PARSE_GATE=FILE holds each until FILE exists (tests).
int config_dir_start_parser(struct config_dir *dir, config_dir_parsed_fn parsed,
                            void *ctx);
// On the loop, woken by parsed(): what the parser published shows in
// list() and generation().
void config_dir_parsed(struct config_dir *dir);

// Logs every problem of the configuration directory at path, one line
// each, as --check-config prints them. On any thread.
void config_dir_log_problems(const char *path);
// Whether a watch reports the directory's changes (else generation()
// compares the directory's stat() itself).
void config_dir_set_watched(struct config_dir *dir, bool watched);

// Validates every *.json in path, for `vmnet-broker --check-config`. Prints
// each problem to out as "PATH:LINE:COLUMN: message", including file names
// that are not valid network names and files that cannot be read, and
// returns how many there were. A missing directory is not a problem: a
// note is printed and 0 returned.
int config_dir_check(const char *path, FILE *out);

// Checks one network file, for `vmnet-broker --check-config FILE`: as
// config_dir_check() does for each file of a directory. Returns how many
// problems it printed.
int config_dir_check_file(const char *file, FILE *out);

// The networks with a valid configuration in path, the built-ins included,
// sorted (config_dir_ops.list). *configs is malloc'd; the caller frees it.
// Returns BROKER_OK or BROKER_ERR_INTERNAL.
int config_dir_list_configs(const char *path, struct network_config **configs,
                            size_t *n);

// Problems no single file shows: static subnets that overlap, and a host
// port forwarded by two networks. Prints each and returns how many.
int config_check_across(const struct network_config *configs, size_t n,
                        FILE *out);

// Prints one line per network: name, mode, subnet, persistence.
void config_print_networks(const struct network_config *configs, size_t n,
                           FILE *out);

// Lists, sorted, the networks in path whose valid file says
// "persistent": true. Invalid files are skipped (a lookup reports them).
// *names is a malloc'd array of malloc'd strings, freed with
// config_dir_free_names(). Returns 0 (a missing directory lists nothing) or
// a negative errno, leaving *names and *n untouched.
int config_dir_persistent_names(const char *path, char ***names, size_t *n);
// Accepts NULL.
void config_dir_free_names(char **names, size_t n);

#endif
