// SPDX-License-Identifier: Apache-2.0
// The config directory parses a file once and again only when it changes.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config_dir.h"
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

int main(void) {
    Suite *s = suite_create("config_cache");
    TCase *tc = tcase_create("config_cache");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, test_edit_applies_and_bad_file_stays_bad);
    tcase_add_test(tc, test_restricted_and_reason_survive_the_cache);
    tcase_add_test(tc, test_list_follows_the_watch);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
