// SPDX-License-Identifier: Apache-2.0
// The log's lines: held ones written together, in order, before warnings.
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/log.h"

static char log_path[] = "/tmp/vmnet-broker-check-log-XXXXXX";

// stderr becomes a fresh regular file, as the broker's is under the bench
// and the integration tests (the sink is chosen at the first line).
static void setup(void) {
    int fd = mkstemp(log_path);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
    unsetenv("JOURNAL_STREAM");
    log_set_level(LOG_LEVEL_INFO);
}

static void teardown(void) {
    unlink(log_path);
    strcpy(log_path, "/tmp/vmnet-broker-check-log-XXXXXX");
}

// What stderr's file holds now.
static char *written(void) {
    static char text[256 * 1024];
    FILE *f = fopen(log_path, "r");
    size_t n;

    ck_assert_ptr_nonnull(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

static size_t count(const char *text, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

START_TEST(test_not_holding_writes_at_once) {
    int year, month, day, hour, minute, second, ms, end = 0;

    log_info("first line");
    ck_assert_uint_eq(count(written(), "info: first line\n"), 1);
    ck_assert_uint_eq(log_held_since(), 0);
    // A UTC timestamp to the millisecond opens the line.
    ck_assert_int_eq(sscanf(written(), "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %n", &year,
                            &month, &day, &hour, &minute, &second, &ms, &end),
                     7);
    ck_assert_int_eq(end, 25);
    ck_assert_int_ge(year, 2024);
    ck_assert(month >= 1 && month <= 12 && day >= 1 && day <= 31);
    ck_assert(hour < 24 && minute < 60 && second < 61 && ms < 1000);
    ck_assert(
        strncmp(written() + end, "vmnet-broker: info: first line\n", 31) == 0);
}
END_TEST

START_TEST(test_held_until_release) {
    const char *text, *one, *two;

    log_hold_lines(true);
    log_info("held one");
    log_info("held two");
    ck_assert_uint_eq(count(written(), "held"), 0);
    ck_assert_uint_ne(log_held_since(), 0);
    log_release();
    text = written();
    one = strstr(text, "info: held one\n");
    two = strstr(text, "info: held two\n");
    ck_assert_ptr_nonnull(one);
    ck_assert_ptr_nonnull(two);
    ck_assert(one < two);
    ck_assert_uint_eq(log_held_since(), 0);
    log_hold_lines(false);
}
END_TEST

START_TEST(test_warning_writes_held_lines_first) {
    const char *text, *info, *warning;

    log_hold_lines(true);
    log_info("before the warning");
    log_warning("the warning");
    text = written();
    info = strstr(text, "info: before the warning\n");
    warning = strstr(text, "warning: the warning\n");
    ck_assert_ptr_nonnull(info);
    ck_assert_ptr_nonnull(warning);
    ck_assert(info < warning);
    ck_assert_uint_eq(log_held_since(), 0);
    log_hold_lines(false);
}
END_TEST

static void *log_from_thread(void *arg) {
    (void)arg;
    log_info("from another thread");
    return NULL;
}

// Another thread's line is written at once, after what the loop held (the
// log keeps its order).
START_TEST(test_other_threads_are_not_held) {
    pthread_t thread;
    const char *text, *held, *other;

    log_hold_lines(true);
    log_info("held by the loop");
    ck_assert_int_eq(pthread_create(&thread, NULL, log_from_thread, NULL), 0);
    pthread_join(thread, NULL);
    text = written();
    held = strstr(text, "info: held by the loop\n");
    other = strstr(text, "info: from another thread\n");
    ck_assert_ptr_nonnull(held);
    ck_assert_ptr_nonnull(other);
    ck_assert(held < other);
    log_hold_lines(false);
}
END_TEST

START_TEST(test_stop_holding_writes_held_lines) {
    log_hold_lines(true);
    log_info("last words");
    log_hold_lines(false);
    ck_assert_uint_eq(count(written(), "info: last words\n"), 1);
    log_info("after");
    ck_assert_uint_eq(count(written(), "info: after\n"), 1);
}
END_TEST

START_TEST(test_debug_lines_below_the_level_are_not_held) {
    log_hold_lines(true);
    log_debug("not shown");
    ck_assert_uint_eq(log_held_since(), 0);
    log_hold_lines(false);
    ck_assert_uint_eq(count(written(), "not shown"), 0);
}
END_TEST

// More than the hold buffer: the oldest go out on their own, in order,
// nothing is lost or split.
START_TEST(test_many_lines_are_all_written_in_order) {
    enum { LINES = 2000 };
    const char *text, *p;
    char needle[64];

    log_hold_lines(true);
    for (int i = 0; i < LINES; i++)
        log_info("line %04d of a burst, padded to about eighty bytes", i);
    ck_assert_uint_gt(count(written(), "of a burst"), 0);
    log_release();
    text = written();
    ck_assert_uint_eq(count(text, "of a burst, padded to about eighty bytes\n"),
                      LINES);
    p = text;
    for (int i = 0; i < LINES; i++) {
        snprintf(needle, sizeof(needle), "info: line %04d of", i);
        p = strstr(p, needle);
        ck_assert_msg(p != NULL, "line %d missing or out of order", i);
    }
    ck_assert_uint_eq(log_dropped(), 0);
    log_hold_lines(false);
}
END_TEST

// A line longer than the limit is cut, still one line with its newline.
START_TEST(test_long_line_is_cut_not_lost) {
    static char word[4096];
    const char *text;

    memset(word, 'x', sizeof(word) - 1);
    log_info("long %s", word);
    log_info("next");
    text = written();
    ck_assert_ptr_nonnull(strstr(text, "info: long xxx"));
    ck_assert_uint_lt(strchr(text, '\n') - text, 1024);
    ck_assert_uint_eq(count(text, "info: next\n"), 1);
    ck_assert_uint_eq(count(text, "\n"), 2);
}
END_TEST

// Under journald (JOURNAL_STREAM names stderr) a line opens with its
// syslog priority instead of a timestamp.
START_TEST(test_journal_lines_carry_their_priority) {
    struct stat st;
    char stream[64];
    pid_t pid;
    int status;

    ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
    snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino);
    // In a child of its own: the log picks its sink at its first line.
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("JOURNAL_STREAM", stream, 1);
        log_hold_lines(true);
        log_info("an info line");
        log_error("an error line");
        log_hold_lines(false);
        _exit(0);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert(strncmp(written(), "<6>vmnet-broker: info: an info line\n", 36) ==
              0);
    ck_assert_uint_eq(
        count(written(), "<3>vmnet-broker: error: an error line\n"), 1);
}
END_TEST

static Suite *log_suite(void) {
    Suite *s = suite_create("log");
    TCase *held = tcase_create("held lines");

    tcase_add_checked_fixture(held, setup, teardown);
    tcase_add_test(held, test_not_holding_writes_at_once);
    tcase_add_test(held, test_held_until_release);
    tcase_add_test(held, test_warning_writes_held_lines_first);
    tcase_add_test(held, test_other_threads_are_not_held);
    tcase_add_test(held, test_stop_holding_writes_held_lines);
    tcase_add_test(held, test_debug_lines_below_the_level_are_not_held);
    tcase_add_test(held, test_many_lines_are_all_written_in_order);
    tcase_add_test(held, test_long_line_is_cut_not_lost);
    tcase_add_test(held, test_journal_lines_carry_their_priority);
    suite_add_tcase(s, held);
    return s;
}

int main(void) {
    SRunner *runner = srunner_create(log_suite());
    int failed;

    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
