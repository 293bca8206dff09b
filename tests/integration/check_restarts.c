// SPDX-License-Identifier: Apache-2.0
// Stops and restarts that leave a running broker's networks alone (issue 12).
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    // Room for four paths: -Wformat-truncation (optimised builds) checks.
    char command[4 * PATH_MAX + 256];

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

// The subnet of an acquire's reply on fd, asserted to succeed.
static void assert_acquired_subnet(int fd, const char *name,
                                   const char *subnet) {
    json_t *reply = harness_raw_acquire(fd, name);
    json_t *network = json_object_get(reply, "network");
    const char *got = json_string_value(json_object_get(network, "subnet"));

    ck_assert_msg(got != NULL, "cannot acquire %s (log: %s)", name,
                  broker->log_path);
    ck_assert_str_eq(got, subnet);
    json_decref(reply);
}

static bool exited(void *arg) {
    (void)arg;
    return !harness_broker_alive(broker);
}

START_TEST(test_sighup_reloads_config) {
    char path[PATH_MAX];
    int held, fd;
    json_t *reply;

    ck_assert(harness_broker_write_config(
        broker, "lab",
        "{\"mode\": \"host\", \"subnet\": \"10.20.1.1\", "
        "\"mask\": \"255.255.255.0\"}"));
    ck_assert(
        harness_broker_write_config(broker, "gone", "{\"mode\": \"host\"}"));
    harness_start(broker, "0.2");
    held = connect_broker();
    assert_acquired_subnet(held, "lab", "10.20.1.0");

    // Changed, added, broken and removed files.
    ck_assert(harness_broker_write_config(
        broker, "lab",
        "{\"mode\": \"host\", \"subnet\": \"10.20.2.1\", "
        "\"mask\": \"255.255.255.0\"}"));
    ck_assert(
        harness_broker_write_config(broker, "added", "{\"mode\": \"host\"}"));
    ck_assert(harness_broker_write_config(broker, "broken", "{\"mode\": "));
    snprintf(path, sizeof(path), "%s/gone.json", broker->config_dir);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert(harness_broker_signal(broker, SIGHUP));
    ck_assert(harness_broker_wait_log(broker, "SIGHUP: reloading", 1));
    ck_assert(
        harness_broker_wait_log(broker, "reloaded with 1 problem: the", 1));
    // As --check-config prints it: FILE:LINE:COLUMN: message.
    snprintf(path, sizeof(path), "%s/broken.json:", broker->config_dir);
    ck_assert_uint_ge(harness_broker_log_count(broker, path), 1);
    ck_assert(harness_broker_alive(broker));

    // The live network keeps running as it was created.
    ck_assert(harness_link_has_ipv4("vmb-lab", "10.20.1.1", 24));
    ck_assert_int_eq(harness_network_peers(broker, "lab"), 1);
    fd = connect_broker();
    reply = harness_raw_acquire(fd, "added");
    ck_assert_str_eq(harness_reply_network_name(reply), "added");
    json_decref(reply);
    reply = harness_raw_acquire(fd, "gone");
    ck_assert_int_eq(harness_reply_error(reply), 5);
    json_decref(reply);
    reply = harness_raw_acquire(fd, "broken");
    ck_assert_int_eq(harness_reply_error(reply), 6);
    json_decref(reply);
    // Created again after its last holder has gone: the changed file.
    close(held);
    ck_assert(harness_wait_link_gone("vmb-lab"));
    assert_acquired_subnet(fd, "lab", "10.20.2.0");
    ck_assert(harness_link_has_ipv4("vmb-lab", "10.20.2.1", 24));
    close(fd);
}
END_TEST

START_TEST(test_sigterm_waits_for_holders) {
    static const char *const names[] = {"shared"};
    char needle[64];
    pid_t holder;
    int idle, status;

    harness_start(broker, IDLE);
    holder = harness_spawn_holder(broker, names, 1);
    ck_assert_int_gt(holder, 0);
    // Connected, holding nothing: must not delay the stop.
    idle = connect_broker();

    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert(harness_broker_wait_log(
        broker, "SIGTERM: waiting for 1 peer holding networks", 1));
    snprintf(needle, sizeof(needle), "[peer %d uid", (int)holder);
    ck_assert_uint_eq(harness_broker_log_count(broker, needle) > 0, 1);
    // Still serving, the network untouched.
    ck_assert(harness_broker_alive(broker));
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);
    ck_assert(harness_link_exists("vmb-shared"));

    // The last holder leaves: the broker exits by itself, with 0, and
    // removes the network nobody uses.
    harness_kill_and_reap(holder, SIGKILL);
    status = harness_broker_wait_exit(broker);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the broker did not exit 0 (log: %s)", broker->log_path);
    ck_assert(harness_broker_log_count(broker,
                                       "the last peer holding a network") == 1);
    ck_assert(!harness_link_exists("vmb-shared"));
    close(idle);
}
END_TEST

START_TEST(test_sigterm_with_idle_connection_exits) {
    int idle, status;

    harness_start(broker, IDLE);
    idle = connect_broker();
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert(harness_wait_for(exited, NULL));
    status = harness_broker_wait_exit(broker);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(idle);
}
END_TEST

// Runs vmnet-broker --cleanup on the test's broker's socket; its exit code.
static int run_cleanup(void) {
    char command[1024];

    snprintf(command, sizeof(command),
             "%s --cleanup --socket %s >>%s/cleanup.log 2>&1", VMNET_BROKER_BIN,
             broker->socket_path, broker->dir);
    return harness_shell(command);
}

// True while a dnsmasq of the test's broker runs (a killed one is a zombie
// with no command line until reaped).
static bool our_dnsmasq_runs(void) {
    char command[512];

    snprintf(command, sizeof(command),
             "pgrep -a dnsmasq | grep -qF -- '--conf-file=%s/'", broker->dir);
    return harness_shell(command) == 0;
}

static char *table_or_null(void) {
    const char *argv[] = {"nft", "list", "table", "inet", "vmnet-broker", NULL};
    char *output = NULL;

    if (topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output) != 0) {
        free(output);
        return NULL;
    }
    return output;
}

START_TEST(test_cleanup_removes_what_a_broker_left) {
    static const char *const names[] = {"shared"};
    char path[PATH_MAX];
    char *before, *after;
    pid_t holder;
    int status;

    harness_start(broker, IDLE);
    holder = harness_spawn_holder(broker, names, 1);
    ck_assert_int_gt(holder, 0);
    before = snapshot();
    // Refused while a broker runs, and nothing changes.
    ck_assert_int_ne(run_cleanup(), 0);
    after = snapshot();
    ck_assert_str_eq(after, before);
    free(before);
    free(after);

    ck_assert(harness_broker_signal(broker, SIGKILL));
    status = harness_broker_wait_exit(broker);
    ck_assert(status != -1 && WIFSIGNALED(status));
    harness_kill_and_reap(holder, SIGKILL);
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert(our_dnsmasq_runs());

    ck_assert_int_eq(run_cleanup(), 0);
    ck_assert(!harness_link_exists("vmb-shared"));
    after = table_or_null();
    ck_assert_msg(after == NULL, "the table is still there: %s", after);
    ck_assert(!our_dnsmasq_runs());
    snprintf(path, sizeof(path), "%s/shared", broker->dir);
    ck_assert_int_ne(access(path, F_OK), 0);
    ck_assert_int_ne(access(broker->socket_path, F_OK), 0);
    // The lock file stays: a broker starting meanwhile may hold it open.
    snprintf(path, sizeof(path), "%s/vmnet-broker.lock", broker->dir);
    ck_assert_int_eq(access(path, F_OK), 0);
}
END_TEST

// The status's subnet and IPv6 prefix of network name, copied out.
static void network_addresses(const char *name, char *subnet, char *prefix,
                              size_t size) {
    json_t *status = harness_status(broker);
    json_t *network = harness_status_network(status, name);
    const char *s = json_string_value(json_object_get(network, "subnet"));
    const char *p = json_string_value(json_object_get(network, "ipv6_prefix"));

    ck_assert_msg(s != NULL && p != NULL, "no addresses for %s in the status",
                  name);
    snprintf(subnet, size, "%s", s);
    snprintf(prefix, size, "%s", p);
    json_decref(status);
}

// Acquires name on a new connection, reads its addresses and closes the
// connection (the network is removed after the short idle delay).
static void create_and_release(const char *name, char *subnet, char *prefix,
                               size_t size) {
    char bridge[32];
    int fd = connect_broker();

    acquire(fd, name);
    network_addresses(name, subnet, prefix, size);
    close(fd);
    snprintf(bridge, sizeof(bridge), "vmb-%s", name);
    ck_assert(harness_wait_link_gone(bridge));
}

START_TEST(test_same_name_same_addresses) {
    char subnet[64], prefix[64], again[64], again6[64], other[64], other6[64];
    char config[256];
    int fd, blocker;

    harness_start(broker, "0.2");
    create_and_release("shared", subnet, prefix, sizeof(subnet));
    // Removed and created again: the same subnet and IPv6 prefix.
    create_and_release("shared", again, again6, sizeof(again));
    ck_assert_str_eq(again, subnet);
    ck_assert_str_eq(again6, prefix);
    // Another name meanwhile does not take shared's subnet while another
    // one is free, and gets a prefix of its own.
    fd = connect_broker();
    acquire(fd, "host");
    network_addresses("host", other, other6, sizeof(other));
    ck_assert_str_ne(other, subnet);
    ck_assert_str_ne(other6, prefix);
    create_and_release("shared", again, again6, sizeof(again));
    ck_assert_str_eq(again, subnet);
    ck_assert_str_eq(again6, prefix);
    close(fd);
    ck_assert(harness_wait_link_gone("vmb-host"));

    // Across a restart of the broker on the same state directory.
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert(harness_broker_wait_exit(broker) != -1);
    harness_start(broker, "0.2");
    fd = connect_broker();
    acquire(fd, "host");
    create_and_release("shared", again, again6, sizeof(again));
    ck_assert_str_eq(again, subnet);
    ck_assert_str_eq(again6, prefix);
    close(fd);
    ck_assert(harness_wait_link_gone("vmb-host"));

    // Taken meanwhile by a static subnet: another one, the same prefix.
    snprintf(config, sizeof(config),
             "{\"mode\": \"host\", \"subnet\": \"%.*s1\", "
             "\"mask\": \"255.255.255.0\"}",
             (int)(strlen(subnet) - 1), subnet);
    ck_assert(harness_broker_write_config(broker, "blocker", config));
    blocker = connect_broker();
    acquire(blocker, "blocker");
    create_and_release("shared", again, again6, sizeof(again));
    ck_assert_str_ne(again, subnet);
    ck_assert_str_eq(again6, prefix);
    close(blocker);
}
END_TEST

// The state file as text, or NULL; *regular tells whether it is a plain
// file (not a link).
static char *state_file(bool *regular) {
    char path[PATH_MAX];
    char command[PATH_MAX + 16];
    struct stat st;

    snprintf(path, sizeof(path), "%s/state/subnets.json", broker->dir);
    *regular = lstat(path, &st) == 0 && S_ISREG(st.st_mode);
    if (!*regular)
        return NULL;
    snprintf(command, sizeof(command), "cat %s", path);
    return capture(command);
}

START_TEST(test_bad_state_file_is_replaced) {
    char path[PATH_MAX], target[PATH_MAX], command[3 * PATH_MAX + 64];
    bool regular;
    char *text;
    json_t *json;
    int fd;

    // A link where the state file goes: never followed, replaced.
    snprintf(path, sizeof(path), "%s/state", broker->dir);
    ck_assert_int_eq(mkdir(path, 0755), 0);
    snprintf(target, sizeof(target), "%s/target", broker->dir);
    snprintf(command, sizeof(command),
             "echo keep > %s && ln -s %s %s/subnets.json", target, target,
             path);
    ck_assert_int_eq(harness_shell(command), 0);
    harness_start(broker, IDLE);
    fd = connect_broker();
    acquire(fd, "shared");
    close(fd);
    text = state_file(&regular);
    ck_assert_msg(regular, "subnets.json is not a regular file");
    json = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(json, "networks"), "shared"));
    json_decref(json);
    free(text);
    snprintf(command, sizeof(command), "cat %s", target);
    text = capture(command);
    ck_assert_str_eq(text, "keep\n");
    free(text);

    // Garbage: logged, ignored, rewritten whole at the next change.
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert(harness_broker_wait_exit(broker) != -1);
    snprintf(command, sizeof(command), "echo '{not json' > %s/subnets.json",
             path);
    ck_assert_int_eq(harness_shell(command), 0);
    harness_start(broker, IDLE);
    ck_assert(harness_broker_wait_log(broker, "ignored, rewritten", 1));
    fd = connect_broker();
    acquire(fd, "host");
    close(fd);
    text = state_file(&regular);
    json = json_loads(text, 0, NULL);
    ck_assert_ptr_nonnull(
        json_object_get(json_object_get(json, "networks"), "host"));
    json_decref(json);
    free(text);
}
END_TEST

// Stops the broker and removes the named files from its state directory.
static void stop_and_forget(const char *first, const char *second) {
    const char *names[] = {first, second};
    char path[PATH_MAX];

    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert(harness_broker_wait_exit(broker) != -1);
    for (size_t i = 0; i < 2; i++) {
        if (names[i] == NULL)
            continue;
        snprintf(path, sizeof(path), "%s/state/%s", broker->dir, names[i]);
        ck_assert_msg(unlink(path) == 0, "cannot remove %s", path);
    }
}

START_TEST(test_ipv6_prefix_derived_from_host_secret) {
    char subnet[64], prefix[64], again[64], again6[64];

    harness_start(broker, "0.2");
    create_and_release("shared", subnet, prefix, sizeof(subnet));
    ck_assert_msg(strncmp(prefix, "fd", 2) == 0, "%s is no ULA", prefix);
    // subnets.json lost: the prefix comes from the name and the secret.
    stop_and_forget("subnets.json", NULL);
    harness_start(broker, "0.2");
    create_and_release("shared", again, again6, sizeof(again));
    ck_assert_str_eq(again6, prefix);
    // Another secret: another prefix (equal once in 2^40).
    stop_and_forget("subnets.json", "mac-key");
    harness_start(broker, "0.2");
    create_and_release("shared", again, again6, sizeof(again));
    ck_assert_str_ne(again6, prefix);
}
END_TEST

static Suite *restarts_suite(void) {
    Suite *s = suite_create("restarts");
    TCase *tc = tcase_create("restarts");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_second_broker_changes_nothing);
    tcase_add_test(tc, test_sighup_reloads_config);
    tcase_add_test(tc, test_sigterm_waits_for_holders);
    tcase_add_test(tc, test_sigterm_with_idle_connection_exits);
    tcase_add_test(tc, test_cleanup_removes_what_a_broker_left);
    tcase_add_test(tc, test_same_name_same_addresses);
    tcase_add_test(tc, test_bad_state_file_is_replaced);
    tcase_add_test(tc, test_ipv6_prefix_derived_from_host_secret);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(restarts_suite());
}
