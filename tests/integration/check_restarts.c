// SPDX-License-Identifier: Apache-2.0
// Stops and restarts that leave a running broker's networks alone (issue 12).
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

// ---- Local helpers ---------------------------------------------------------

// stdout of command (sh -c) as a malloc'd string; fails the test when it
// cannot run or exits non-zero.
static char *capture(const char *command) {
    const char *argv[] = {"sh", "-c", command, NULL};
    char *output = NULL;

    ck_assert_msg(topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output) == 0,
                  "'%s' failed", command);
    return output;
}

// Everything of the broker's that another broker must not touch: its
// bridges (with their index, so a re-made one differs), its table, the
// dnsmasq processes and the socket.
static char *snapshot(void) {
    char command[512];

    snprintf(command, sizeof(command),
             "ip -o link show type bridge | cut -d@ -f1; "
             "nft list table inet vmnet-broker; "
             "pgrep -a dnsmasq | grep -F -- '%s/' | sort; "
             "ls -i %s",
             broker->dir, broker->socket_path);
    return capture(command);
}

static int connect_broker(void) {
    int fd = harness_raw_connect(broker->socket_path);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void acquire(int fd, const char *name) {
    json_t *reply = harness_raw_acquire(fd, name);
    const char *got = harness_reply_network_name(reply);

    ck_assert_msg(got != NULL && strcmp(got, name) == 0,
                  "cannot acquire %s (log: %s)", name, broker->log_path);
    json_decref(reply);
}

// Runs a second broker with the first one's config and extra arguments,
// its log in <dir>/second.log; returns its exit code.
static int run_second_broker(const char *socket_path, const char *extra) {
    char command[1024];

    snprintf(command, sizeof(command),
             "%s --socket %s --config-dir %s --idle-timeout " IDLE
             " %s >%s/second.log 2>&1",
             VMNET_BROKER_BIN, socket_path, broker->config_dir, extra,
             broker->dir);
    return harness_shell(command);
}

static bool second_log_says(const char *needle) {
    char path[PATH_MAX];
    char text[4096];
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "%s/second.log", broker->dir);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, needle) != NULL;
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_second_broker_changes_nothing) {
    char other_socket[PATH_MAX];
    char other_dir[PATH_MAX];
    char extra[PATH_MAX + 32];
    char *before;
    char *after;
    int fd;

    harness_start(broker, IDLE);
    fd = connect_broker();
    acquire(fd, "shared");
    acquire(fd, "host");
    before = snapshot();
    ck_assert_ptr_nonnull(strstr(before, "vmb-shared"));
    ck_assert_ptr_nonnull(strstr(before, "dnsmasq"));

    // The same socket and runtime directory: the lock.
    ck_assert_int_ne(run_second_broker(broker->socket_path, ""), 0);
    ck_assert(second_log_says("another broker (pid "));
    ck_assert(second_log_says("exiting without changing anything"));
    ck_assert(!second_log_says("stale"));
    // Another socket, the same runtime directory: the lock too.
    snprintf(other_socket, sizeof(other_socket), "%s/other.sock", broker->dir);
    snprintf(extra, sizeof(extra), "--runtime-dir %s", broker->dir);
    ck_assert_int_ne(run_second_broker(other_socket, extra), 0);
    ck_assert(second_log_says("already runs on the runtime directory"));
    ck_assert_int_ne(access(other_socket, F_OK), 0);
    // The same socket, another runtime directory: the live listener.
    snprintf(other_dir, sizeof(other_dir), "%s/other-run", broker->dir);
    snprintf(extra, sizeof(extra), "--runtime-dir %s", other_dir);
    ck_assert_int_ne(run_second_broker(broker->socket_path, extra), 0);
    ck_assert(second_log_says("already listens on"));
    ck_assert(!second_log_says("stale"));

    after = snapshot();
    ck_assert_str_eq(after, before);
    ck_assert(harness_broker_alive(broker));
    // The first broker's peer still holds its networks, and it serves.
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);
    ck_assert_int_eq(harness_network_peers(broker, "host"), 1);
    close(fd);
    fd = connect_broker();
    acquire(fd, "shared");
    close(fd);
    free(before);
    free(after);
}
END_TEST

static Suite *restarts_suite(void) {
    Suite *s = suite_create("restarts");
    TCase *tc = tcase_create("restarts");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_second_broker_changes_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(restarts_suite());
}
