// SPDX-License-Identifier: Apache-2.0
// Network lifetimes: idle removal, reuse, killed peers, SIGTERM and SIGINT.
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

// Removal is awaited for up to HARNESS_WAIT_SECONDS: forty times this.
#define SHORT_IDLE "0.5"

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static size_t network_count(void) {
    json_t *status = harness_status(broker);
    size_t n = json_array_size(json_object_get(status, "networks"));
    ck_assert_ptr_nonnull(status);
    json_decref(status);
    return n;
}

// Helper processes the broker runs for a network (none, or dnsmasq) go
// with it. The router advertisement dnsmasq (in <runtime dir>/_radv/) is
// the broker's, not a network's: it stays until the broker exits
// (check_router_advertisements.c).
static bool broker_has_no_helpers(void *arg) {
    char command[256];

    (void)arg;
    snprintf(command, sizeof(command),
             "exit $(ps -o stat=,args= --ppid %d | grep -v '^Z' | "
             "grep -vF -- '/_radv/' | wc -l)",
             (int)broker->pid);
    return harness_shell(command) == 0;
}

// After the broker has exited, anything it left running would have been
// reparented to this process (harness_enter_netns() makes it a subreaper).
static bool nothing_left_behind(void *arg) {
    (void)arg;
    return harness_living_children(0) == 0;
}

START_TEST(test_serial_peers_reuse_network) {
    // Long enough for the second peer to arrive in time on any machine, yet
    // well within HARNESS_WAIT_SECONDS for the removal afterwards.
    harness_start(broker, "5");
    vmnet_broker_connection_t *first = harness_connect(broker);
    vmnet_broker_connection_t *second = harness_connect(broker);
    vmnet_broker_connection_t *third;
    char uuid1[37], uuid2[37], uuid3[37];

    ck_assert_ptr_nonnull(first);
    ck_assert_ptr_nonnull(second);
    ck_assert_int_eq(harness_acquire(first, "shared", uuid1),
                     VMNET_BROKER_SUCCESS);
    vmnet_broker_connection_close(first);
    ck_assert_int_eq(harness_acquire(second, "shared", uuid2),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(uuid2, uuid1);
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert_uint_eq(harness_broker_log_count(broker, "created network"), 1);

    // Once nobody holds it, the delay passes and the bridge goes.
    vmnet_broker_connection_close(second);
    ck_assert_msg(harness_wait_link_gone("vmb-shared"),
                  "vmb-shared still there after the idle delay");
    ck_assert_uint_eq(network_count(), 0);
    ck_assert_msg(harness_wait_for(broker_has_no_helpers, NULL),
                  "the broker's helpers outlived the network");

    // Acquiring again makes a new instance.
    third = harness_connect(broker);
    ck_assert_ptr_nonnull(third);
    ck_assert_int_eq(harness_acquire(third, "shared", uuid3),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_ne(uuid3, uuid1);
    ck_assert(harness_link_exists("vmb-shared"));
    vmnet_broker_connection_close(third);
}
END_TEST

START_TEST(test_held_network_is_kept) {
    harness_start(broker, SHORT_IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);
    // Several idle delays pass while the network is held.
    usleep(2000 * 1000);
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);

    // Released (connection still open): removed after the delay.
    ck_assert_int_eq(vmnet_broker_connection_release(c, "shared"),
                     VMNET_BROKER_SUCCESS);
    ck_assert(harness_wait_link_gone("vmb-shared"));
    ck_assert_uint_eq(network_count(), 0);
    vmnet_broker_connection_close(c);
}
END_TEST

struct peer_gone {
    pid_t pid;
    long shared_peers;
};

// The killed peer is no longer listed and shared is down to the others.
static bool killed_peer_dropped(void *arg) {
    struct peer_gone *g = arg;
    json_t *status = harness_status(broker);
    json_t *shared = harness_status_network(status, "shared");
    bool dropped =
        status != NULL && harness_status_count_pid(status, g->pid) == 0 &&
        json_integer_value(json_object_get(shared, "peers")) == g->shared_peers;
    json_decref(status);
    return dropped;
}

START_TEST(test_killed_peer) {
    harness_start(broker, SHORT_IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    const char *names[] = {"shared", "host"};
    struct peer_gone gone = {.shared_peers = 1};
    json_t *status;
    int wait_status;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", NULL), VMNET_BROKER_SUCCESS);
    gone.pid = harness_spawn_holder(broker, names, 2);
    ck_assert_int_gt(gone.pid, 0);
    status = harness_status(broker);
    ck_assert(harness_status_pid_holds(status, gone.pid, "shared"));
    ck_assert(harness_status_pid_holds(status, gone.pid, "host"));
    ck_assert_int_eq(json_integer_value(json_object_get(
                         harness_status_network(status, "shared"), "peers")),
                     2);
    json_decref(status);

    wait_status = harness_kill_and_reap(gone.pid, SIGKILL);
    ck_assert(WIFSIGNALED(wait_status) && WTERMSIG(wait_status) == SIGKILL);
    ck_assert_msg(harness_wait_for(killed_peer_dropped, &gone),
                  "the killed peer's references were not dropped");
    // host was only the killed peer's: removed after the delay. shared is
    // still held by this process and stays.
    ck_assert(harness_wait_link_gone("vmb-host"));
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);
    ck_assert(harness_broker_alive(broker));

    vmnet_broker_connection_close(c);
    ck_assert(harness_wait_link_gone("vmb-shared"));
    ck_assert_uint_eq(network_count(), 0);
}
END_TEST

// The broker says it waits before stopping on sig, is still running and
// still serving c.
static void check_signal_ignored(vmnet_broker_connection_t *c, int sig,
                                 const char *logged) {
    size_t before = harness_broker_log_count(broker, logged);

    ck_assert(harness_broker_signal(broker, sig));
    ck_assert_msg(harness_broker_wait_log(broker, logged, before + 1),
                  "the log does not say '%s'", logged);
    ck_assert(harness_broker_alive(broker));
    ck_assert_int_eq(harness_acquire(c, "host", NULL), VMNET_BROKER_SUCCESS);
    ck_assert(harness_link_exists("vmb-shared"));
}

START_TEST(test_sigterm_deferred_while_peers_hold_networks) {
    harness_start(broker, "60");
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_connection_t *late;
    char uuid[37], again[37];
    int wait_status;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "shared", uuid), VMNET_BROKER_SUCCESS);
    check_signal_ignored(c, SIGTERM, "SIGTERM: waiting for 1 peer holding");
    check_signal_ignored(c, SIGINT, "SIGINT: waiting for 1 peer holding");

    // New peers are still welcome and get the same network.
    late = harness_connect(broker);
    ck_assert_ptr_nonnull(late);
    ck_assert_int_eq(harness_acquire(late, "shared", again),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(again, uuid);

    // The stop was remembered: once the last holder has left, the broker
    // exits by itself and removes the networks it made even though their
    // idle delay has not passed.
    vmnet_broker_connection_close(c);
    ck_assert(harness_broker_alive(broker));
    vmnet_broker_connection_close(late);
    wait_status = harness_broker_wait_exit(broker);
    ck_assert_msg(wait_status != -1,
                  "the broker did not exit after its last holder left");
    ck_assert(WIFEXITED(wait_status));
    ck_assert_int_eq(WEXITSTATUS(wait_status), 0);
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_msg(harness_wait_for(nothing_left_behind, NULL),
                  "the broker left processes behind");
    ck_assert_int_lt(harness_raw_connect(broker->socket_path), 0);
}
END_TEST

START_TEST(test_sigint_without_peers_exits) {
    harness_start(broker, "60");
    vmnet_broker_connection_t *c = harness_connect(broker);
    int wait_status;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(harness_acquire(c, "host", NULL), VMNET_BROKER_SUCCESS);
    vmnet_broker_connection_close(c);
    ck_assert(harness_broker_wait_no_peers(broker));
    ck_assert(harness_link_exists("vmb-host"));
    ck_assert(harness_broker_signal(broker, SIGINT));
    wait_status = harness_broker_wait_exit(broker);
    ck_assert_msg(wait_status != -1, "the broker did not exit on SIGINT");
    ck_assert(WIFEXITED(wait_status));
    ck_assert_int_eq(WEXITSTATUS(wait_status), 0);
    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_msg(harness_wait_for(nothing_left_behind, NULL),
                  "the broker left processes behind");
}
END_TEST

START_TEST(test_sigterm_idle_broker_exits) {
    harness_start(broker, "60");
    int wait_status;

    ck_assert(harness_broker_wait_no_peers(broker));
    ck_assert(harness_broker_signal(broker, SIGTERM));
    wait_status = harness_broker_wait_exit(broker);
    ck_assert(wait_status != -1 && WIFEXITED(wait_status));
    ck_assert_int_eq(WEXITSTATUS(wait_status), 0);
}
END_TEST

static Suite *lifecycle_suite(void) {
    Suite *s = suite_create("lifecycle");
    TCase *tc = tcase_create("lifecycle");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_serial_peers_reuse_network);
    tcase_add_test(tc, test_held_network_is_kept);
    tcase_add_test(tc, test_killed_peer);
    tcase_add_test(tc, test_sigterm_deferred_while_peers_hold_networks);
    tcase_add_test(tc, test_sigint_without_peers_exits);
    tcase_add_test(tc, test_sigterm_idle_broker_exits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(lifecycle_suite());
}
