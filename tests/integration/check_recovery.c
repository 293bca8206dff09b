// SPDX-License-Identifier: Apache-2.0
// Crash recovery and cleanup: stale bridges, rules and dnsmasq processes.
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"
// Removal is awaited for up to HARNESS_WAIT_SECONDS: forty times this.
#define SHORT_IDLE "0.5"
#define DHCP_SERVER_PORT 67

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

// ---- Local helpers ---------------------------------------------------------

// The broker's table as nft prints it (text, or JSON when json is set), as
// a malloc'd string; NULL when there is no such table.
static char *list_table(bool json) {
    const char *text[] = {"nft", "list", "table", "inet", "vmnet-broker", NULL};
    const char *as_json[] = {"nft",  "-j",           "list", "table",
                             "inet", "vmnet-broker", NULL};
    char *output = NULL;

    if (topology_run(NULL, json ? as_json : text, HARNESS_WAIT_SECONDS,
                     &output) != 0) {
        free(output);
        return NULL;
    }
    return output;
}

static char *assert_list_table(void) {
    char *table = list_table(false);
    ck_assert_msg(table != NULL, "no table inet vmnet-broker");
    return table;
}

// True if the table (in JSON, where every rule, chain and map element
// spells interface names out) mentions text.
static bool table_mentions(const char *text) {
    char *table = list_table(true);
    bool found;

    ck_assert_msg(table != NULL, "no table inet vmnet-broker");
    found = strstr(table, text) != NULL;
    free(table);
    return found;
}

static void network_file(const char *network, const char *file, char *out,
                         size_t size) {
    snprintf(out, size, "%s/%s%s%s", broker->dir, network,
             file != NULL ? "/" : "", file != NULL ? file : "");
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

// The pid in the network's dnsmasq pid file, or 0.
static pid_t dnsmasq_pid(const char *network) {
    char path[PATH_MAX];
    long pid = 0;
    FILE *f;

    network_file(network, "dnsmasq.pid", path, sizeof(path));
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    return (pid_t)pid;
}

// True while pid names a process that has not ended (a zombie has).
static bool running(pid_t pid) {
    char path[64];
    char text[512];
    char *state;
    size_t n;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    // "pid (comm) S ...": comm may hold anything, the state follows the
    // last parenthesis.
    state = strrchr(text, ')');
    return state != NULL && state[1] == ' ' && state[2] != 'Z' &&
           state[2] != 'X';
}

// Number of live dnsmasq processes run with a config file in a network's
// directory under the broker's: every one a broker started for this test.
// Not the router advertisement one (its directory starts with '_', which no
// network's can; check_router_advertisements.c tests it).
static size_t count_dnsmasq(void) {
    char prefix[PATH_MAX];
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    size_t count = 0;

    ck_assert_ptr_nonnull(proc);
    snprintf(prefix, sizeof(prefix), "--conf-file=%s/", broker->dir);
    while ((entry = readdir(proc)) != NULL) {
        char path[PATH_MAX];
        char cmdline[2 * PATH_MAX];
        pid_t pid = (pid_t)atoi(entry->d_name);
        size_t n;
        FILE *f;

        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        fclose(f);
        cmdline[n] = '\0';
        // Arguments are NUL-separated.
        for (size_t i = 0; i < n; i += strlen(cmdline + i) + 1) {
            if (strncmp(cmdline + i, prefix, strlen(prefix)) == 0 &&
                cmdline[i + strlen(prefix)] != '_' && running(pid)) {
                count++;
                break;
            }
        }
    }
    closedir(proc);
    return count;
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

// The network's dnsmasq, asserted to run.
static pid_t running_dnsmasq(const char *network) {
    pid_t pid = dnsmasq_pid(network);
    ck_assert_msg(pid > 0 && running(pid), "network %s has no dnsmasq",
                  network);
    return pid;
}

// Closes fd, the only connection holding a network, and waits until the
// broker has seen it go.
static void disconnect(int fd) {
    close(fd);
    ck_assert(harness_broker_wait_no_peers(broker));
}

// Asserts that nothing of any network is left: no bridge, no rules beyond
// the empty table, no dnsmasq, no runtime files.
static void assert_no_network_left(const char *empty_table,
                                   const char *network) {
    char path[PATH_MAX];
    char *table = assert_list_table();

    ck_assert_uint_eq(harness_count_links("vmb-"), 0);
    ck_assert_str_eq(table, empty_table);
    ck_assert_uint_eq(count_dnsmasq(), 0);
    network_file(network, NULL, path, sizeof(path));
    ck_assert_msg(!exists(path), "%s is still there", path);
    free(table);
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_restart_after_sigkill_removes_what_was_left) {
    static const char *const names[] = {"shared", "host"};
    char needle[128];
    char *empty_table;
    char *held_table;
    char *table;
    pid_t pids[2];
    pid_t restarted;
    int wait_status;
    int fd;

    harness_start(broker, IDLE);
    empty_table = assert_list_table();
    ck_assert_ptr_null(strstr(empty_table, "vmb-shared"));
    fd = connect_broker();
    for (size_t i = 0; i < 2; i++) {
        acquire(fd, names[i]);
        pids[i] = running_dnsmasq(names[i]);
    }
    held_table = assert_list_table();
    ck_assert_ptr_nonnull(strstr(held_table, "from-vmb-shared"));
    ck_assert_ptr_nonnull(strstr(held_table, "from-vmb-host"));
    // A bridge with the broker's prefix that the broker did not make (it
    // has no alias naming a network): not the broker's to remove.
    ck_assert_int_eq(harness_shell("ip link add vmb-foreign type bridge"), 0);

    ck_assert(harness_broker_signal(broker, SIGKILL));
    wait_status = harness_broker_wait_exit(broker);
    ck_assert(wait_status != -1 && WIFSIGNALED(wait_status));
    close(fd);
    // What a killed broker leaves, for the next one to clean up.
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert(harness_link_exists("vmb-host"));
    ck_assert(running(pids[0]) && running(pids[1]));
    table = assert_list_table();
    ck_assert_str_eq(table, held_table);
    free(table);

    // Without its state file nothing vouches for what the killed broker
    // left (with it, the next broker adopts: check_adoption.c).
    {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/networks.json", broker->dir);
        ck_assert_int_eq(unlink(path), 0);
    }
    // harness_broker_start() returns once the broker answers a status
    // request: no network has been asked for yet.
    ck_assert_msg(harness_broker_start(broker, IDLE, NULL),
                  "the broker did not start again (log: %s)", broker->log_path);
    ck_assert(!harness_link_exists("vmb-shared"));
    ck_assert(!harness_link_exists("vmb-host"));
    ck_assert(harness_link_exists("vmb-foreign"));
    table = assert_list_table();
    ck_assert_str_eq(table, empty_table);
    free(table);
    for (size_t i = 0; i < 2; i++) {
        char path[PATH_MAX];

        ck_assert_msg(!running(pids[i]), "dnsmasq %d of %s still runs",
                      (int)pids[i], names[i]);
        // It was orphaned onto the test (harness_enter_netns()).
        waitpid(pids[i], NULL, WNOHANG);
        network_file(names[i], NULL, path, sizeof(path));
        ck_assert_msg(!exists(path), "%s is still there", path);
        snprintf(needle, sizeof(needle), "killed stale dnsmasq (pid %d)",
                 (int)pids[i]);
        ck_assert_uint_eq(harness_broker_log_count(broker, needle), 1);
    }
    ck_assert_uint_eq(count_dnsmasq(), 0);
    ck_assert_uint_eq(
        harness_broker_log_count(broker, "removed stale bridge vmb-shared"), 1);
    ck_assert_uint_eq(
        harness_broker_log_count(broker, "removed stale bridge vmb-host"), 1);

    fd = connect_broker();
    acquire(fd, "shared");
    ck_assert(harness_link_exists("vmb-shared"));
    restarted = running_dnsmasq("shared");
    ck_assert_int_ne(restarted, pids[0]);
    ck_assert(table_mentions("vmb-shared"));
    disconnect(fd);
    free(held_table);
    free(empty_table);
}
END_TEST

struct restart_wait {
    pid_t old;
    pid_t new;
};

static bool dnsmasq_replaced(void *arg) {
    struct restart_wait *w = arg;
    pid_t pid = dnsmasq_pid("shared");

    if (pid <= 0 || pid == w->old || !running(pid))
        return false;
    w->new = pid;
    return true;
}

START_TEST(test_killed_dnsmasq_is_restarted) {
    struct restart_wait w = {0};
    struct topology_lease lease;
    struct topology *topology;
    const char *guest;
    char needle[128];
    int fd;

    topology = topology_new(broker->dir);
    ck_assert_ptr_nonnull(topology);
    harness_start(broker, IDLE);
    fd = connect_broker();
    acquire(fd, "shared");
    w.old = running_dnsmasq("shared");

    ck_assert_int_eq(kill(w.old, SIGKILL), 0);
    // The pid file is dnsmasq's own, written once it serves.
    ck_assert_msg(harness_wait_for(dnsmasq_replaced, &w),
                  "dnsmasq was not restarted (log: %s)", broker->log_path);
    snprintf(needle, sizeof(needle),
             "network shared: dnsmasq (pid %d) was killed by SIGKILL",
             (int)w.old);
    // The loop's info lines reach the log up to 5 ms after they are logged
    // when no reply follows them: waited for, then counted.
    ck_assert(harness_broker_wait_log(broker, needle, 1));
    ck_assert_uint_eq(harness_broker_log_count(broker, needle), 1);
    snprintf(needle, sizeof(needle),
             "network shared: dnsmasq restarted (pid %d)", (int)w.new);
    ck_assert(harness_broker_wait_log(broker, needle, 1));
    ck_assert_uint_eq(harness_broker_log_count(broker, needle), 1);
    ck_assert_uint_eq(count_dnsmasq(), 1);

    // And the new one serves.
    guest = topology_add_guest(topology, "vmb-shared", NULL);
    ck_assert_ptr_nonnull(guest);
    ck_assert(topology_dhcp(topology, guest, NULL, &lease));
    topology_free(topology);
    disconnect(fd);
}
END_TEST

START_TEST(test_network_whose_dnsmasq_cannot_run_leaves_nothing) {
    struct sockaddr_in dhcp = {.sin_family = AF_INET,
                               .sin_port = htons(DHCP_SERVER_PORT),
                               .sin_addr = {htonl(INADDR_ANY)}};
    char *empty_table;
    json_t *reply;
    int blocker;
    int fd;

    harness_start(broker, IDLE);
    empty_table = assert_list_table();
    // The DHCP server port, taken without SO_REUSEADDR: dnsmasq starts,
    // cannot bind it and exits.
    blocker = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(blocker, 0);
    ck_assert_int_eq(bind(blocker, (struct sockaddr *)&dhcp, sizeof(dhcp)), 0);

    fd = connect_broker();
    reply = harness_raw_acquire(fd, "shared");
    ck_assert_int_eq(harness_reply_error(reply), VMNET_BROKER_CREATE_FAILURE);
    json_decref(reply);
    // Tried three times (a start can fail for a moment's reason), each
    // try's reason logged once.
    ck_assert_uint_eq(
        harness_broker_log_count(broker, "failed to bind DHCP server socket"),
        3);
    ck_assert_uint_eq(harness_broker_log_count(broker, "; trying again"), 2);
    assert_no_network_left(empty_table, "shared");

    // Nothing else was in the way: with the port free it works.
    close(blocker);
    acquire(fd, "shared");
    ck_assert(harness_link_exists("vmb-shared"));
    running_dnsmasq("shared");
    disconnect(fd);
    free(empty_table);
}
END_TEST

START_TEST(test_unusable_runtime_dir_fails_creation_cleanly) {
    char runtime_dir[PATH_MAX];
    const char *args[] = {"--runtime-dir", runtime_dir, NULL};
    char *empty_table;
    json_t *reply;
    FILE *f;
    int fd;

    // A file where the runtime directory should be: no network directory
    // can be made in it, so dnsmasq cannot even be configured.
    snprintf(runtime_dir, sizeof(runtime_dir), "%s/not-a-directory",
             broker->dir);
    f = fopen(runtime_dir, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_msg(harness_broker_start(broker, IDLE, args),
                  "the broker did not start (log: %s)", broker->log_path);
    empty_table = assert_list_table();

    fd = connect_broker();
    reply = harness_raw_acquire(fd, "shared");
    ck_assert_int_eq(harness_reply_error(reply), VMNET_BROKER_CREATE_FAILURE);
    json_decref(reply);
    assert_no_network_left(empty_table, "shared");
    // The broker still serves the networks it can make.
    ck_assert(harness_broker_alive(broker));
    disconnect(fd);
    free(empty_table);
}
END_TEST

START_TEST(test_removing_network_removes_only_its_own) {
    char path[PATH_MAX];
    char *empty_table;
    char *host_table;
    char *table;
    pid_t host_pid;
    pid_t shared_pid;
    int host_fd;
    int shared_fd;

    harness_start(broker, SHORT_IDLE);
    empty_table = assert_list_table();
    host_fd = connect_broker();
    acquire(host_fd, "host");
    host_pid = running_dnsmasq("host");
    host_table = assert_list_table();
    shared_fd = connect_broker();
    acquire(shared_fd, "shared");
    shared_pid = running_dnsmasq("shared");
    ck_assert(table_mentions("vmb-shared"));

    close(shared_fd);
    // The bridge goes first, its rules and dnsmasq meanwhile; the removal
    // ends once all are gone.
    ck_assert_msg(harness_wait_link_gone("vmb-shared"),
                  "vmb-shared still there after the idle delay");
    ck_assert(
        harness_broker_wait_log(broker, "network 'shared' is removed", 1));
    ck_assert(!table_mentions("vmb-shared"));
    ck_assert(!running(shared_pid));
    network_file("shared", NULL, path, sizeof(path));
    ck_assert_msg(!exists(path), "%s is still there", path);

    // Everything of the other network stays as it was.
    ck_assert(harness_link_exists("vmb-host"));
    table = assert_list_table();
    ck_assert_str_eq(table, host_table);
    free(table);
    ck_assert(running(host_pid));
    ck_assert_int_eq(dnsmasq_pid("host"), host_pid);
    ck_assert_uint_eq(count_dnsmasq(), 1);

    close(host_fd);
    ck_assert_msg(harness_wait_link_gone("vmb-host"),
                  "vmb-host still there after the idle delay");
    ck_assert(harness_broker_wait_log(broker, "network 'host' is removed", 1));
    ck_assert(!running(host_pid));
    assert_no_network_left(empty_table, "host");
    free(host_table);
    free(empty_table);
}
END_TEST

static Suite *recovery_suite(void) {
    Suite *s = suite_create("recovery");
    TCase *tc = tcase_create("recovery");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_restart_after_sigkill_removes_what_was_left);
    tcase_add_test(tc, test_killed_dnsmasq_is_restarted);
    tcase_add_test(tc, test_network_whose_dnsmasq_cannot_run_leaves_nothing);
    tcase_add_test(tc, test_unusable_runtime_dir_fails_creation_cleanly);
    tcase_add_test(tc, test_removing_network_removes_only_its_own);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(recovery_suite());
}
