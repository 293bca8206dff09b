// SPDX-License-Identifier: Apache-2.0
// The config directory parses a file once and again only when it changes.
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_dir.h"
#include "core/broker.h"
#include "core/reason.h"
#include "core/status.h"

#define DIR_TEMPLATE "/tmp/vmnet-config-cache.XXXXXX"

static char dir[] = DIR_TEMPLATE;
static char path[sizeof(dir) + 32];

static void write_text(const char *text) {
    char tmp[sizeof(path) + 8];
    FILE *f;

    // A new file renamed over the old one: a new inode, as editors do.
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    f = fopen(tmp, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(rename(tmp, path), 0);
}

START_TEST(test_edit_applies_and_bad_file_stays_bad) {
    struct config_dir *configs;
    struct network_config config;

    // Each test makes its own (under CK_NOFORK too).
    strcpy(dir, DIR_TEMPLATE);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lab.json", dir);
    configs = config_dir_new(dir);
    ck_assert_ptr_nonnull(configs);

    write_text("{\"mode\": \"host\", \"mtu\": 1400}");
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_OK);
    ck_assert_uint_eq(config.mtu, 1400);
    // Asked again: the same answer (from the cache).
    memset(&config, 0, sizeof(config));
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_OK);
    ck_assert_uint_eq(config.mtu, 1400);
    ck_assert_str_eq(config.name, "lab");

    // An edit applies at the next lookup.
    write_text("{\"mode\": \"host\", \"mtu\": 1300}");
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_OK);
    ck_assert_uint_eq(config.mtu, 1300);

    // A broken file is refused every time, without touching *out.
    write_text("{\"mode\": ");
    config.mtu = 7;
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                         BROKER_ERR_CREATE_FAILURE);
    ck_assert_uint_eq(config.mtu, 7);

    // Removed: gone (not a built-in).
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_ERR_NOT_FOUND);
    // Names a client makes up are never cached: still not found.
    ck_assert_int_eq(config_dir_ops.lookup(configs, "nosuch", &config, NULL),
                     BROKER_ERR_NOT_FOUND);
    config_dir_free(configs);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

// A file naming an empty allow-list restricts the network to root, and the
// cache keeps that; a bad file's reason is given at every lookup.
START_TEST(test_restricted_and_reason_survive_the_cache) {
    struct config_dir *configs;
    struct network_config config;
    struct reason why = {0};

    // Each test makes its own (under CK_NOFORK too).
    strcpy(dir, DIR_TEMPLATE);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lab.json", dir);
    configs = config_dir_new(dir);
    ck_assert_ptr_nonnull(configs);
    write_text("{\"mode\": \"host\", \"allowed_users\": []}");
    for (int i = 0; i < 2; i++) {
        memset(&config, 0, sizeof(config));
        ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                         BROKER_OK);
        ck_assert(config.restricted);
        ck_assert_uint_eq(config.n_allowed_users, 0);
    }
    write_text("{\"mode\": \"bridged\"}");
    for (int i = 0; i < 2; i++) {
        memset(&why, 0, sizeof(why));
        ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, &why),
                         BROKER_ERR_CREATE_FAILURE);
        ck_assert_ptr_nonnull(reason_get(&why));
        ck_assert_ptr_nonnull(strstr(reason_get(&why), "lab.json:1:"));
    }
    memset(&why, 0, sizeof(why));
    ck_assert_int_eq(config_dir_ops.lookup(configs, "nosuch", &config, &why),
                     BROKER_ERR_NOT_FOUND);
    ck_assert_str_eq(reason_get(&why),
                     "no network named 'nosuch' is configured");
    ck_assert_int_eq(unlink(path), 0);
    config_dir_free(configs);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

// The configured list comes from the cache and changes (with its
// generation) only when the watch reports a change.
START_TEST(test_list_follows_the_watch) {
    struct config_dir *configs;
    struct network_config *list = NULL;
    size_t n = 0;
    uint64_t generation;

    // Each test makes its own (under CK_NOFORK too).
    strcpy(dir, DIR_TEMPLATE);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lab.json", dir);
    configs = config_dir_new(dir);
    ck_assert_ptr_nonnull(configs);
    config_dir_set_watched(configs, true);
    write_text("{\"mode\": \"host\", \"allowed_groups\": []}");
    ck_assert_int_eq(config_dir_ops.list(configs, &list, &n), BROKER_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(list[0].name, "host");
    ck_assert_str_eq(list[1].name, "lab");
    ck_assert(list[1].restricted);
    ck_assert_str_eq(list[2].name, "shared");
    free(list);
    generation = config_dir_ops.generation(configs);
    // Asked again: the same generation and the same list.
    ck_assert_int_eq(config_dir_ops.list(configs, &list, &n), BROKER_OK);
    ck_assert_uint_eq(n, 3);
    free(list);
    ck_assert_uint_eq(config_dir_ops.generation(configs), generation);

    // Removed, and the watch says so: gone from the list.
    ck_assert_int_eq(unlink(path), 0);
    config_dir_changed(configs);
    ck_assert_uint_ne(config_dir_ops.generation(configs), generation);
    ck_assert_int_eq(config_dir_ops.list(configs, &list, &n), BROKER_OK);
    ck_assert_uint_eq(n, 2);
    free(list);
    config_dir_free(configs);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

// The parser thread's wake-ups, as the daemon's eventfd would carry them.
static int parsed_pipe[2];

static void on_parsed(void *ctx) {
    char one = 1;

    (void)ctx;
    ck_assert_int_eq(write(parsed_pipe[1], &one, 1), 1);
}

// Looks name up as the loop does: while its parse is pending, waits for
// the parser's next wake-up (no timing: the thread always answers).
static int lookup_after_parse(struct config_dir *configs, const char *name,
                              struct network_config *config,
                              unsigned *pending) {
    int status;
    char byte;

    while ((status = config_dir_ops.lookup(configs, name, config, NULL)) ==
           BROKER_PENDING) {
        (*pending)++;
        while (read(parsed_pipe[0], &byte, 1) < 0 && errno == EINTR)
            ;
        config_dir_parsed(configs);
    }
    return status;
}

// With the parser thread, a changed file is never answered from its old
// version: the lookup is pending until the thread has parsed the new one.
START_TEST(test_parser_thread_never_answers_old_rules) {
    struct config_dir *configs;
    struct network_config config;
    struct network_config *list = NULL;
    size_t n = 0;
    unsigned pending = 0;

    strcpy(dir, DIR_TEMPLATE);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/lab.json", dir);
    ck_assert_int_eq(pipe(parsed_pipe), 0);
    configs = config_dir_new(dir);
    ck_assert_ptr_nonnull(configs);
    write_text("{\"mode\": \"host\", \"mtu\": 1400}");

    // Parsed before serving: the first lookup needs no wait.
    ck_assert_int_eq(config_dir_start_parser(configs, on_parsed, NULL), 0);
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_OK);
    ck_assert_uint_eq(config.mtu, 1400);

    // Changed: pending (never 1400 again), then the new rules.
    write_text("{\"mode\": \"host\", \"mtu\": 1300, \"allowed_users\": "
               "[\"root\"]}");
    ck_assert_int_eq(config_dir_ops.lookup(configs, "lab", &config, NULL),
                     BROKER_PENDING);
    ck_assert_int_eq(lookup_after_parse(configs, "lab", &config, &pending),
                     BROKER_OK);
    ck_assert_uint_eq(config.mtu, 1300);
    ck_assert(config.restricted);

    // SIGHUP: every file parsed (and every name resolved) again before a
    // lookup uses it; the list keeps showing it meanwhile.
    ck_assert(config_dir_reload(configs));
    ck_assert_int_eq(config_dir_ops.list(configs, &list, &n), BROKER_OK);
    ck_assert_uint_eq(n, 3); // host, lab, shared
    free(list);
    pending = 0;
    ck_assert_int_eq(lookup_after_parse(configs, "lab", &config, &pending),
                     BROKER_OK);
    ck_assert_uint_eq(config.mtu, 1300);

    // Built-ins without a file never wait.
    ck_assert_int_eq(config_dir_ops.lookup(configs, "shared", &config, NULL),
                     BROKER_OK);
    config_dir_free(configs);
    close(parsed_pipe[0]);
    close(parsed_pipe[1]);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("config_cache");
    TCase *tc = tcase_create("config_cache");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_edit_applies_and_bad_file_stays_bad);
    tcase_add_test(tc, test_restricted_and_reason_survive_the_cache);
    tcase_add_test(tc, test_list_follows_the_watch);
    tcase_add_test(tc, test_parser_thread_never_answers_old_rules);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
