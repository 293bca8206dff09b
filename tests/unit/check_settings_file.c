// SPDX-License-Identifier: Apache-2.0
// Unit tests: the broker-wide settings file (keys, errors, ownership rules).
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/settings_file.h"

#define MAX_PROBLEMS 8

struct problems {
    int n;
    int line[MAX_PROBLEMS];
    int column[MAX_PROBLEMS];
    char message[MAX_PROBLEMS][512];
};

static char dir[PATH_MAX];
static char path[PATH_MAX + 32];

static void setup(void) {
    snprintf(dir, sizeof(dir), "%s/check_settings.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/vmnet-broker.json", dir);
}

static void teardown(void) {
    unlink(path);
    rmdir(dir);
}

static void collect(void *ctx, const char *file, int line, int column,
                    const char *message) {
    struct problems *got = ctx;

    ck_assert_str_eq(file, path);
    ck_assert_int_lt(got->n, MAX_PROBLEMS);
    got->line[got->n] = line;
    got->column[got->n] = column;
    snprintf(got->message[got->n], sizeof(got->message[0]), "%s", message);
    got->n++;
}

static void write_settings(const char *text, mode_t mode) {
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, mode), 0);
}

static int load(const char *text, struct broker_settings *out,
                struct problems *got) {
    write_settings(text, 0644);
    return settings_file_load(path, out, collect, got);
}

START_TEST(test_missing_file_sets_nothing) {
    struct broker_settings s;
    struct problems got = {0};

    memset(&s, 0xff, sizeof(s));
    ck_assert_int_eq(settings_file_load(path, &s, collect, &got), 0);
    ck_assert(!s.has_subnet_pool);
    ck_assert(!s.has_idle_timeout);
    ck_assert(!s.has_max_connections_per_user);
}
END_TEST

START_TEST(test_every_key) {
    struct broker_settings s = {0};
    struct problems got = {0};

    ck_assert_int_eq(load("{\"subnet_pool\": \"10.77.0.0/16\",\n"
                          " \"idle_timeout\": 2.5,\n"
                          " \"max_connections_per_user\": 10}\n",
                          &s, &got),
                     0);
    ck_assert(s.has_subnet_pool);
    ck_assert_uint_eq(s.subnet_pool.address, 0x0a4d0000u);
    ck_assert_uint_eq(s.subnet_pool.len, 16);
    ck_assert(s.has_idle_timeout);
    ck_assert_uint_eq(s.idle_usec, 2500000);
    ck_assert(s.has_max_connections_per_user);
    ck_assert_uint_eq(s.max_connections_per_user, 10);
}
END_TEST

START_TEST(test_empty_object_sets_nothing) {
    struct broker_settings s = {0};
    struct problems got = {0};

    ck_assert_int_eq(load("{}\n", &s, &got), 0);
    ck_assert(!s.has_subnet_pool);
    ck_assert(!s.has_idle_timeout);
}
END_TEST

START_TEST(test_problems_with_line_and_column) {
    struct broker_settings s = {0};
    struct problems got = {0};

    ck_assert_int_eq(load("{\n"
                          "  \"subnet_pool\": \"10.0.0.0/25\",\n"
                          "  \"idle_timeout\": -1,\n"
                          "  \"max_connections_per_user\": \"many\",\n"
                          "  \"pool\": 1\n"
                          "}\n",
                          &s, &got),
                     4);
    ck_assert_int_eq(got.n, 4);
    ck_assert_int_eq(got.line[0], 2);
    ck_assert_int_eq(got.column[0], 18);
    ck_assert_ptr_nonnull(strstr(got.message[0], "'subnet_pool'"));
    ck_assert_int_eq(got.line[1], 3);
    ck_assert_int_eq(got.column[1], 19);
    ck_assert_ptr_nonnull(strstr(got.message[1], "'idle_timeout'"));
    ck_assert_int_eq(got.line[2], 4);
    ck_assert_ptr_nonnull(strstr(got.message[2], "max_connections_per_user"));
    ck_assert_int_eq(got.line[3], 5);
    ck_assert_int_eq(got.column[3], 3);
    ck_assert_ptr_nonnull(strstr(got.message[3], "unknown key"));
    // Nothing is taken from a file with problems.
    ck_assert(!s.has_subnet_pool);
}
END_TEST

START_TEST(test_syntax_error_located) {
    struct broker_settings s = {0};
    struct problems got = {0};

    ck_assert_int_eq(load("{\n  \"idle_timeout\": 5,\n  oops\n}\n", &s, &got),
                     1);
    ck_assert_int_eq(got.line[0], 3);
    ck_assert_int_eq(load("[1]\n", &s, &got), 1);
    ck_assert_ptr_nonnull(strstr(got.message[1], "JSON object"));
    ck_assert_int_eq(
        load("{\"idle_timeout\": 1, \"idle_timeout\": 2}", &s, &got), 1);
}
END_TEST

START_TEST(test_writable_by_others_refused) {
    struct broker_settings s = {0};
    struct problems got = {0};

    write_settings("{\"idle_timeout\": 1}", 0666);
    ck_assert_int_eq(settings_file_load(path, &s, collect, &got), 1);
    ck_assert_ptr_nonnull(strstr(got.message[0], "writable"));
    ck_assert(!s.has_idle_timeout);
}
END_TEST

START_TEST(test_link_refused) {
    struct broker_settings s = {0};
    struct problems got = {0};
    char target[PATH_MAX + 32];

    snprintf(target, sizeof(target), "%s/target.json", dir);
    write_settings("{\"idle_timeout\": 1}", 0644);
    ck_assert_int_eq(rename(path, target), 0);
    ck_assert_int_eq(symlink(target, path), 0);
    ck_assert_int_eq(settings_file_load(path, &s, collect, &got), 1);
    ck_assert_ptr_nonnull(strstr(got.message[0], "symbolic link"));
    unlink(target);
}
END_TEST

START_TEST(test_not_owned_refused) {
    struct broker_settings s = {0};
    struct problems got = {0};

    if (geteuid() != 0) {
        // Only root can give a file away.
        fprintf(stderr, "test_not_owned_refused: skipped: needs root\n");
        return;
    }
    write_settings("{\"idle_timeout\": 1}", 0644);
    ck_assert_int_eq(chown(path, 12345, 12345), 0);
    ck_assert_int_eq(settings_file_load(path, &s, collect, &got), 1);
    ck_assert_ptr_nonnull(strstr(got.message[0], "uid 12345"));
}
END_TEST

START_TEST(test_directory_writable_by_others_refused) {
    struct broker_settings s = {0};
    struct problems got = {0};

    write_settings("{\"idle_timeout\": 1}", 0644);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    ck_assert_int_eq(settings_file_load(path, &s, collect, &got), 1);
    ck_assert_ptr_nonnull(strstr(got.message[0], "directory others can write"));
    // Sticky, as /tmp: others cannot replace root's file.
    ck_assert_int_eq(chmod(dir, 01777), 0);
    ck_assert_int_eq(settings_file_load(path, &s, collect, &got), 0);
    ck_assert(s.has_idle_timeout);
    ck_assert_int_eq(chmod(dir, 0700), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("settings_file");
    TCase *tc = tcase_create("settings_file");
    SRunner *runner;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_missing_file_sets_nothing);
    tcase_add_test(tc, test_every_key);
    tcase_add_test(tc, test_empty_object_sets_nothing);
    tcase_add_test(tc, test_problems_with_line_and_column);
    tcase_add_test(tc, test_syntax_error_located);
    tcase_add_test(tc, test_writable_by_others_refused);
    tcase_add_test(tc, test_link_refused);
    tcase_add_test(tc, test_directory_writable_by_others_refused);
    tcase_add_test(tc, test_not_owned_refused);
    suite_add_tcase(s, tc);
    runner = srunner_create(s);
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
