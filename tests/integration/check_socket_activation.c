// SPDX-License-Identifier: Apache-2.0
// Socket activation: started with a listening socket, the broker exits when
// idle.
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define ACTIVATOR "/usr/bin/systemd-socket-activate"

static struct harness_broker *broker;
static pid_t activator;

// True once a socket listens on path in this namespace: /proc/net/unix
// shows it with __SO_ACCEPTCON (flags 00010000).
static bool listening(const char *path) {
    char line[512];
    bool found = false;
    FILE *f = fopen("/proc/net/unix", "re");

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *end = line + strcspn(line, "\n");
        size_t len = strlen(path);

        *end = '\0';
        found = (size_t)(end - line) > len && end[-(long)len - 1] == ' ' &&
                strcmp(end - len, path) == 0 && strstr(line, " 00010000 ");
    }
    fclose(f);
    return found;
}

// systemd-socket-activate listens on the socket and, on the first
// connection, execs the broker with the socket as fd 3 (LISTEN_FDS=1): the
// same hand-over systemd's vmnet-broker.socket makes.
static void start_activated(const char *idle) {
    char runtime[128], state[128];

    snprintf(runtime, sizeof(runtime), "%s/run", broker->dir);
    snprintf(state, sizeof(state), "%s/state", broker->dir);
    activator = fork();
    ck_assert_int_ge(activator, 0);
    if (activator == 0) {
        int log = open(broker->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (log < 0 || dup2(log, STDERR_FILENO) < 0)
            _exit(127);
        // systemd-socket-activate passes no environment of its own: the
        // plain names the test expects (harness_run_suite()) by -E.
        execl(ACTIVATOR, ACTIVATOR, "--seqpacket", "-E",
              "VMNET_BROKER_INSTANCE=default", "-l", broker->socket_path,
              VMNET_BROKER_BIN, "--config-dir", broker->config_dir,
              "--runtime-dir", runtime, "--idle-timeout", idle, "--state-dir",
              state, (char *)NULL);
        _exit(127);
    }
    // The file appears at bind(), before listen(): a connect between the
    // two is refused, so wait for the listening socket itself.
    for (int i = 0; i < 2000; i++) {
        if (listening(broker->socket_path))
            return;
        usleep(10 * 1000);
    }
    ck_abort_msg("systemd-socket-activate did not listen on %s",
                 broker->socket_path);
}

// True once the activator has exec'd the broker in its place.
static bool is_broker(void) {
    char path[64], comm[32] = "";
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/comm", (int)activator);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    if (fgets(comm, sizeof(comm), f) == NULL)
        comm[0] = '\0';
    fclose(f);
    return strncmp(comm, "vmnet-broker", 12) == 0;
}

static void setup(void) {
    broker = harness_broker_new();
    ck_assert_ptr_nonnull(broker);
    activator = 0;
}

static void teardown(void) {
    if (activator > 0)
        harness_kill_and_reap(activator, SIGKILL);
    harness_broker_free(broker);
}

START_TEST(test_exits_when_idle_after_networks_are_gone) {
    vmnet_broker_connection_t *connection;
    char uuid[37];
    int status;

    start_activated("0.5");
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(harness_acquire(connection, "shared", uuid),
                     VMNET_BROKER_SUCCESS);
    ck_assert_msg(is_broker(), "the broker was not started on connection");
    ck_assert(harness_link_exists("vmb-shared"));
    vmnet_broker_connection_close(connection);

    // Idle delay for the network, then again for the broker itself.
    status = harness_wait_pid(activator);
    activator = 0;
    ck_assert_msg(status != -1, "the activated broker did not exit when idle");
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the activated broker ended with wait status %#x", status);
    ck_assert(!harness_link_exists("vmb-shared"));
    ck_assert_uint_eq(harness_broker_log_count(broker, "idle with no peers"),
                      1);
}
END_TEST

START_TEST(test_stays_while_a_peer_is_connected) {
    vmnet_broker_connection_t *connection;
    char uuid[37];
    json_t *status;

    start_activated("0.3");
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(harness_acquire(connection, "host", uuid),
                     VMNET_BROKER_SUCCESS);
    // Well past both idle delays: a connected peer keeps the broker.
    usleep(1500 * 1000);
    ck_assert(is_broker());
    status = harness_status(broker);
    ck_assert_ptr_nonnull(status);
    ck_assert_int_eq(harness_network_peers(broker, "host"), 1);
    json_decref(status);
    // A peer with no networks keeps it too.
    ck_assert_int_eq(vmnet_broker_connection_release(connection, "host"),
                     VMNET_BROKER_SUCCESS);
    ck_assert(harness_wait_link_gone("vmb-host"));
    usleep(1000 * 1000);
    ck_assert(is_broker());
    vmnet_broker_connection_close(connection);
    ck_assert_int_eq(harness_wait_pid(activator), 0);
    activator = 0;
}
END_TEST

static Suite *socket_activation_suite(void) {
    Suite *s = suite_create("socket_activation");
    TCase *tc = tcase_create("activation");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exits_when_idle_after_networks_are_gone);
    tcase_add_test(tc, test_stays_while_a_peer_is_connected);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    if (access(ACTIVATOR, X_OK) != 0) {
        // ctest reports 77 as skipped, never as passed.
        printf("skipped: %s not found (Debian package: systemd)\n", ACTIVATOR);
        return 77;
    }
    harness_enter_netns();
    return harness_run_suite(socket_activation_suite());
}
