// SPDX-License-Identifier: Apache-2.0
// Two brokers on two runtime directories in one namespace touch only their own.
#include <check.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"
#define INSTANCE_ENV "VMNET_BROKER_INSTANCE"

// first: the default instance's plain names (as harness_run_suite() sets
// for every broker of the tests); second: the names its own runtime
// directory derives, as any broker off /run/vmnet-broker has them.
static struct harness_broker *first;
static struct harness_broker *second;
// What the second's names must be, from the documented scheme.
static char second_prefix[16];
static char second_table[32];
static char second_mark[32];

// ---- Local helpers ---------------------------------------------------------

// 32-bit FNV-1a, the hash docs/linux-networking.md names for instance ids.
static uint32_t fnv1a(const char *s) {
    uint32_t hash = 2166136261u;
    for (; *s != '\0'; s++) {
        hash ^= (uint8_t)*s;
        hash *= 16777619u;
    }
    return hash;
}

// Starts broker with its instance derived from its runtime directory (the
// socket's directory).
static bool start_derived(struct harness_broker *broker) {
    bool started;

    setenv(INSTANCE_ENV, "", 1);
    started = harness_broker_start(broker, IDLE, NULL);
    setenv(INSTANCE_ENV, "default", 1);
    return started;
}

static void setup(void) {
    char canonical[PATH_MAX];
    unsigned id;

    first = harness_test_setup();
    harness_start(first, IDLE);
    second = harness_broker_new();
    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_nonnull(realpath(second->dir, canonical));
    id = fnv1a(canonical) & 0xffffu;
    snprintf(second_prefix, sizeof(second_prefix), "vmb%04x-", id);
    snprintf(second_table, sizeof(second_table), "vmnet-broker-%04x", id);
    snprintf(second_mark, sizeof(second_mark), "vmnet-broker-tap-%04x", id);
    ck_assert_msg(start_derived(second), "second broker did not start: %s",
                  second->log_path);
}

static void teardown(void) {
    harness_broker_free(second);
    harness_broker_free(first);
    second = NULL;
    first = NULL;
}

// stdout of command (sh -c) as a malloc'd string; fails the test when it
// cannot run or exits non-zero.
static char *capture(const char *command) {
    const char *argv[] = {"sh", "-c", command, NULL};
    char *output = NULL;

    ck_assert_msg(topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output) == 0,
                  "'%s' failed", command);
    return output;
}

// Everything of one instance another must not touch: its bridges and TAPs
// (with their index, so a re-made one differs), both its tables, its
// dnsmasq processes and its socket.
static char *snapshot(const struct harness_broker *broker, const char *prefix,
                      const char *table, const char *mark) {
    char command[1024];

    snprintf(command, sizeof(command),
             "ip -o link show | grep -F ': %s' | cut -d' ' -f1,2; "
             "ip -o link show | grep -F 'alias %s ' | cut -d' ' -f1,2; "
             "nft list table inet %s; nft list table netdev %s; "
             "pgrep -a dnsmasq | grep -F -- '%s/' | sort; "
             "ls -i %s",
             prefix, mark, table, table, broker->dir, broker->socket_path);
    return capture(command);
}

static char *snapshot_first(void) {
    return snapshot(first, "vmb-", "vmnet-broker", "vmnet-broker-tap");
}

static char *snapshot_second(void) {
    return snapshot(second, second_prefix, second_table, second_mark);
}

// The table's text, or NULL when there is none.
static char *table_or_null(const char *table) {
    const char *argv[] = {"nft", "list", "table", "inet", table, NULL};
    char *output = NULL;

    if (topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output) != 0) {
        free(output);
        return NULL;
    }
    return output;
}

// Acquires name on a new connection (left open: it holds the network) and
// copies the bridge and subnet of the reply.
static int acquire(const struct harness_broker *broker, const char *name,
                   char bridge[16], char subnet[16]) {
    int fd = harness_raw_connect(broker->socket_path);
    json_t *reply;
    json_t *network;

    ck_assert_int_ge(fd, 0);
    reply = harness_raw_acquire(fd, name);
    network = json_object_get(reply, "network");
    ck_assert_msg(json_is_object(network), "cannot acquire %s (log: %s)", name,
                  broker->log_path);
    snprintf(bridge, 16, "%s",
             json_string_value(json_object_get(network, "bridge")));
    snprintf(subnet, 16, "%s",
             json_string_value(json_object_get(network, "subnet")));
    json_decref(reply);
    return fd;
}

static vmnet_broker_interface_t *
open_interface(vmnet_broker_connection_t *connection, const char *name) {
    vmnet_broker_interface_t *interface = NULL;
    vmnet_broker_return_t status =
        vmnet_broker_connection_open_interface(connection, name, &interface);

    ck_assert_msg(status == VMNET_BROKER_SUCCESS, "open_interface '%s': %s",
                  name, vmnet_broker_strerror(status));
    return interface;
}

static bool dnsmasq_runs(const struct harness_broker *broker) {
    char command[512];

    snprintf(command, sizeof(command),
             "pgrep -a dnsmasq | grep -qF -- '--conf-file=%s/'", broker->dir);
    return harness_shell(command) == 0;
}

// Acquires name on a new connection (its descriptor into *fd, left open: it
// holds the network) and returns the reply's network object (owned).
static json_t *acquire_network(const struct harness_broker *broker,
                               const char *name, int *fd) {
    json_t *reply;
    json_t *network;

    *fd = harness_raw_connect(broker->socket_path);
    ck_assert_int_ge(*fd, 0);
    reply = harness_raw_acquire(*fd, name);
    network = json_object_get(reply, "network");
    ck_assert_msg(json_is_object(network), "cannot acquire %s (log: %s)", name,
                  broker->log_path);
    json_incref(network);
    json_decref(reply);
    return network;
}

// A guest on network's bridge with a lease from that network's dnsmasq.
static const char *dhcp_guest(struct topology *topology, const json_t *network,
                              struct topology_lease *lease) {
    const char *guest = topology_add_guest(
        topology, harness_network_field(network, "bridge"), NULL);

    ck_assert_msg(guest != NULL, "cannot add a guest on %s",
                  harness_network_field(network, "bridge"));
    ck_assert_msg(topology_dhcp(topology, guest, NULL, lease),
                  "no lease for the guest on %s",
                  harness_network_field(network, "bridge"));
    ck_assert_str_eq(lease->router, harness_network_field(network, "gateway"));
    return guest;
}

static void kill_broker(struct harness_broker *broker) {
    int status;

    ck_assert(harness_broker_signal(broker, SIGKILL));
    status = harness_broker_wait_exit(broker);
    ck_assert(status != -1 && WIFSIGNALED(status));
}

static void assert_snapshot(const char *before, char *after, const char *what) {
    ck_assert_msg(strcmp(before, after) == 0, "%s changed:\n%s\n---\n%s", what,
                  before, after);
    free(after);
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_same_names_distinct_objects) {
    char bridge[4][16], subnet[4][16], expected[48];
    int fds[4];
    char *table;

    fds[0] = acquire(first, "shared", bridge[0], subnet[0]);
    fds[1] = acquire(first, "host", bridge[1], subnet[1]);
    fds[2] = acquire(second, "shared", bridge[2], subnet[2]);
    fds[3] = acquire(second, "host", bridge[3], subnet[3]);
    ck_assert_str_eq(bridge[0], "vmb-shared");
    ck_assert_str_eq(bridge[1], "vmb-host");
    snprintf(expected, sizeof(expected), "%sshared", second_prefix);
    ck_assert_str_eq(bridge[2], expected);
    snprintf(expected, sizeof(expected), "%shost", second_prefix);
    ck_assert_str_eq(bridge[3], expected);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(harness_link_exists(bridge[i]), "%s missing", bridge[i]);
        for (int j = 0; j < i; j++)
            ck_assert_str_ne(subnet[i], subnet[j]);
    }
    // Each table holds its own networks' rules, and its wildcard rules
    // match its own bridges only.
    table = table_or_null("vmnet-broker");
    ck_assert_ptr_nonnull(table);
    ck_assert_ptr_nonnull(strstr(table, "from-vmb-shared"));
    ck_assert_ptr_nonnull(strstr(table, "\"vmb-*\""));
    ck_assert_ptr_null(strstr(table, second_prefix));
    free(table);
    table = table_or_null(second_table);
    ck_assert_msg(table != NULL, "no table inet %s", second_table);
    snprintf(expected, sizeof(expected), "from-%sshared", second_prefix);
    ck_assert_ptr_nonnull(strstr(table, expected));
    ck_assert_ptr_null(strstr(table, "vmb-"));
    free(table);
    ck_assert(dnsmasq_runs(first));
    ck_assert(dnsmasq_runs(second));
    for (int i = 0; i < 4; i++)
        close(fds[i]);
}
END_TEST

static bool link_is_back(void *arg) { return harness_link_exists(arg); }

// Repairs are per instance too: a derived instance's bridge deleted by hand
// is made again by its own broker, and the other broker's bridge of the
// same network name is not touched.
START_TEST(test_each_instance_repairs_its_own) {
    char bridge[2][16], subnet[2][16], command[64];
    int fds[2];
    char *before;

    fds[0] = acquire(first, "shared", bridge[0], subnet[0]);
    fds[1] = acquire(second, "shared", bridge[1], subnet[1]);
    before = snapshot_first();
    snprintf(command, sizeof(command), "ip link del %s", bridge[1]);
    ck_assert_int_eq(harness_shell(command), 0);
    ck_assert_msg(harness_wait_for(link_is_back, bridge[1]),
                  "%s was not made again", bridge[1]);
    ck_assert(harness_broker_wait_log(second, "made bridge", 1));
    assert_snapshot(before, snapshot_first(), "the first instance");
    free(before);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

// Both instances' data paths work side by side: each guest gets its lease
// from its own network's dnsmasq and reaches the outside masqueraded by its
// own table's rules; neither guest reaches into the other's network.
START_TEST(test_guests_of_both_get_leases_and_nat) {
    struct topology *topology = topology_new(first->dir);
    struct topology_lease lease[2];
    struct topology_listener listener;
    const char *outside;
    const char *guest[2];
    json_t *network[2];
    int fds[2];

    ck_assert_ptr_nonnull(topology);
    outside = topology_add_outside(topology);
    ck_assert_ptr_nonnull(outside);
    network[0] = acquire_network(first, "shared", &fds[0]);
    network[1] = acquire_network(second, "shared", &fds[1]);
    for (int i = 0; i < 2; i++) {
        guest[i] = dhcp_guest(topology, network[i], &lease[i]);
        ck_assert_msg(topology_listen(outside, 8000 + (unsigned)i, &listener),
                      "cannot listen in %s", outside);
        ck_assert_msg(topology_connect(guest[i], TOPOLOGY_OUTSIDE_IPV4,
                                       8000 + (unsigned)i,
                                       HARNESS_WAIT_SECONDS),
                      "guest on %s does not reach the outside",
                      harness_network_field(network[i], "bridge"));
        {
            char peer[64];
            ck_assert(topology_listener_peer(&listener, HARNESS_WAIT_SECONDS,
                                             peer, sizeof(peer)));
            // Masqueraded: the outside routes back to the host only.
            ck_assert_str_eq(peer, TOPOLOGY_HOST_IPV4);
        }
        topology_listener_stop(&listener);
    }
    ck_assert_str_ne(lease[0].address, lease[1].address);
    ck_assert_msg(topology_listen(guest[1], 8100, &listener),
                  "cannot listen in %s", guest[1]);
    ck_assert(!topology_connect(guest[0], lease[1].address, 8100, 2));
    topology_listener_stop(&listener);
    for (int i = 0; i < 2; i++) {
        json_decref(network[i]);
        close(fds[i]);
    }
    topology_free(topology);
}
END_TEST

// The text of broker's router advertisement dnsmasq's file ("" if none).
static char *radv_file(const struct harness_broker *broker, const char *file) {
    char command[512];

    snprintf(command, sizeof(command), "cat %s/_radv/%s 2>/dev/null; true",
             broker->dir, file);
    return capture(command);
}

// Each instance has its own router advertisement dnsmasq, on its own
// bridges only: each guest takes an address in its own network's prefix
// alone, and neither instance makes a context for the other's bridge.
START_TEST(test_each_instance_advertises_on_its_own) {
    struct topology *topology = topology_new(first->dir);
    struct harness_broker *brokers[2] = {first, second};
    const char *prefixes[2] = {"vmb-", second_prefix};
    char address[64], pattern[64];
    json_t *network[2];
    int fds[2];

    ck_assert_ptr_nonnull(topology);
    for (int i = 0; i < 2; i++)
        network[i] = acquire_network(brokers[i], "shared", &fds[i]);
    for (int i = 0; i < 2; i++) {
        const char *bridge = harness_network_field(network[i], "bridge");
        const char *other = harness_network_field(network[1 - i], "bridge");
        const char *guest = topology_add_guest(topology, bridge, NULL);
        char command[256], *text;

        ck_assert_ptr_nonnull(guest);
        ck_assert_msg(
            topology_wait_ipv6(guest,
                               harness_network_field(network[i], "ipv6_prefix"),
                               address, sizeof(address)),
            "no SLAAC address on %s", bridge);
        snprintf(command, sizeof(command),
                 "ip -n %s -6 -o addr show scope global", guest);
        text = capture(command);
        // One global address: nothing from the other network's prefix.
        ck_assert_msg(strchr(text, '\n') == strrchr(text, '\n'), "%s", text);
        free(text);
        text = radv_file(brokers[i], "dnsmasq.conf");
        snprintf(pattern, sizeof(pattern), "\ninterface=%s*\n", prefixes[i]);
        ck_assert_msg(strstr(text, pattern) != NULL, "%s", text);
        free(text);
        text = radv_file(brokers[i], "dnsmasq.log");
        snprintf(pattern, sizeof(pattern), "constructed for %s", bridge);
        ck_assert_msg(strstr(text, pattern) != NULL, "%s", text);
        ck_assert_msg(strstr(text, other) == NULL, "%s", text);
        free(text);
    }
    for (int i = 0; i < 2; i++) {
        json_decref(network[i]);
        close(fds[i]);
    }
    topology_free(topology);
}
END_TEST

START_TEST(test_cleanup_and_restart_touch_only_their_own) {
    char bridge[48], subnet[16], command[1024];
    vmnet_broker_connection_t *first_client = harness_connect(first);
    vmnet_broker_connection_t *second_client = harness_connect(second);
    vmnet_broker_interface_t *first_tap, *second_tap;
    char *before;
    char *table;
    int fd;

    ck_assert_ptr_nonnull(first_client);
    ck_assert_ptr_nonnull(second_client);
    first_tap = open_interface(first_client, "shared");
    second_tap = open_interface(second_client, "shared");
    fd = acquire(second, "host", bridge, subnet);
    close(fd);
    before = snapshot_first();
    ck_assert_ptr_nonnull(strstr(before, "vmb-shared"));
    ck_assert_ptr_nonnull(strstr(before, "vmt-"));

    // The second stopped hard, then cleaned up by an administrator.
    kill_broker(second);
    snprintf(command, sizeof(command),
             INSTANCE_ENV "= %s --cleanup --socket %s >>%s/cleanup.log 2>&1",
             VMNET_BROKER_BIN, second->socket_path, second->dir);
    ck_assert_int_eq(harness_shell(command), 0);
    snprintf(bridge, sizeof(bridge), "%sshared", second_prefix);
    ck_assert(!harness_link_exists(bridge));
    table = table_or_null(second_table);
    ck_assert_ptr_null(table);
    ck_assert(!dnsmasq_runs(second));
    snprintf(command, sizeof(command), "ip -o link show | grep -qF 'alias %s '",
             second_mark);
    ck_assert_int_ne(harness_shell(command), 0);
    assert_snapshot(before, snapshot_first(),
                    "the first broker's objects after the second's cleanup");
    ck_assert_int_eq(harness_network_peers(first, "shared"), 1);

    // The second started again, killed, and started again: its recovery
    // leaves the first's alone.
    ck_assert(start_derived(second));
    fd = acquire(second, "shared", bridge, subnet);
    kill_broker(second);
    close(fd);
    ck_assert(start_derived(second));
    fd = acquire(second, "shared", bridge, subnet);
    assert_snapshot(before, snapshot_first(),
                    "the first broker's objects after the second's restart");
    ck_assert_int_eq(harness_network_peers(first, "shared"), 1);

    // And the other way round.
    free(before);
    before = snapshot_second();
    ck_assert_ptr_nonnull(strstr(before, second_prefix));
    kill_broker(first);
    harness_start(first, IDLE);
    close(acquire(first, "shared", bridge, subnet));
    ck_assert_str_eq(bridge, "vmb-shared");
    assert_snapshot(before, snapshot_second(),
                    "the second broker's objects after the first's restart");
    close(fd);
    free(before);
    vmnet_broker_interface_free(first_tap);
    vmnet_broker_interface_free(second_tap);
    vmnet_broker_connection_close(first_client);
    vmnet_broker_connection_close(second_client);
}
END_TEST

START_TEST(test_bad_instance_override) {
    struct harness_broker *third = harness_broker_new();
    char command[1024];

    // A malformed id is refused before anything is made or removed.
    ck_assert_ptr_nonnull(third);
    snprintf(command, sizeof(command),
             INSTANCE_ENV "=XYZ %s --socket %s --config-dir %s "
                          "--state-dir %s/state >>%s 2>&1",
             VMNET_BROKER_BIN, third->socket_path, third->config_dir,
             third->dir, third->log_path);
    ck_assert_int_ne(harness_shell(command), 0);
    snprintf(command, sizeof(command), "grep -q '" INSTANCE_ENV " must be' %s",
             third->log_path);
    ck_assert_msg(harness_shell(command) == 0, "no error in %s",
                  third->log_path);
    ck_assert(!harness_link_exists("vmb-shared"));
    harness_broker_free(third);
}
END_TEST

static Suite *instances_suite(void) {
    Suite *suite = suite_create("instances");
    TCase *tc = tcase_create("two runtime directories");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_same_names_distinct_objects);
    tcase_add_test(tc, test_each_instance_repairs_its_own);
    tcase_add_test(tc, test_guests_of_both_get_leases_and_nat);
    tcase_add_test(tc, test_each_instance_advertises_on_its_own);
    tcase_add_test(tc, test_cleanup_and_restart_touch_only_their_own);
    tcase_add_test(tc, test_bad_instance_override);
    suite_add_tcase(suite, tc);
    return suite;
}

int main(void) { return harness_run_suite(instances_suite()); }
