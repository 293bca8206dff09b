// SPDX-License-Identifier: Apache-2.0
// End to end: the broker restores a flushed table and a deleted bridge, and
// shows a network whose dnsmasq it gave up on as degraded.
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"
#define OUTSIDE_PORT 8080
// How long a repair may take before the test fails: far beyond the second
// the issue asks for, so a slow machine never fails it; the time measured
// is printed.
#define REPAIR_SECONDS 10.0

static struct harness_broker *broker;
static struct topology *topology;
// The test's connections to the broker, which hold what it acquires.
static int connection = -1;
static vmnet_broker_connection_t *client;
static vmnet_broker_interface_t *tap;

static void setup(void) {
    broker = harness_test_setup();
    topology = topology_new(broker->dir);
    ck_assert_msg(topology != NULL, "cannot prepare for namespaces");
}

static void teardown(void) {
    vmnet_broker_interface_free(tap);
    tap = NULL;
    if (client != NULL) {
        vmnet_broker_connection_close(client);
        client = NULL;
    }
    if (connection >= 0) {
        close(connection);
        connection = -1;
    }
    // Otherwise the broker would ignore the SIGTERM that stops it.
    harness_broker_wait_no_peers(broker);
    unsetenv("VMNET_BROKER_DNSMASQ");
    topology_free(topology);
    topology = NULL;
    harness_broker_free(broker);
    broker = NULL;
}

// ---- Local helpers ---------------------------------------------------------

// Acquires name on the test's connection (the caller owns the network).
static json_t *acquire(const char *name) {
    return harness_acquire_network(broker, &connection, name);
}

// A TAP device on name, held by the test (its VM would hold it).
static const char *open_tap(const char *name) {
    vmnet_broker_return_t status;

    client = harness_connect(broker);
    ck_assert_ptr_nonnull(client);
    status = vmnet_broker_connection_open_interface(client, name, &tap);
    ck_assert_msg(status == VMNET_BROKER_SUCCESS, "open_interface: %s",
                  vmnet_broker_strerror(status));
    return vmnet_broker_interface_name(tap);
}

// The stdout of a command run in the test's namespace (caller frees).
static char *output_of(const char *const *argv) {
    char *output = NULL;
    int code = topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output);

    ck_assert_msg(code == 0, "%s %s failed (%d)", argv[0], argv[1], code);
    ck_assert_ptr_nonnull(output);
    return output;
}

// `nft list table FAMILY vmnet-broker`, or NULL when there is none.
static char *list_table(const char *family) {
    const char *argv[] = {"nft", "list", "table", family, "vmnet-broker", NULL};
    char *output = NULL;

    if (topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output) != 0) {
        free(output);
        return NULL;
    }
    return output;
}

// A line of /sys/class/net/<link>/<attribute> into buf; "" if unreadable.
static const char *link_attribute(const char *link, const char *attribute,
                                  char *buf, size_t size) {
    char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "/sys/class/net/%s/%s", link, attribute);
    buf[0] = '\0';
    f = fopen(path, "r");
    if (f != NULL) {
        if (fgets(buf, (int)size, f) == NULL)
            buf[0] = '\0';
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

// The bridge a link is a port of; "" when none.
static const char *master_of(const char *link, char *buf, size_t size) {
    char path[128];
    ssize_t n;
    const char *slash;

    snprintf(path, sizeof(path), "/sys/class/net/%s/master", link);
    n = readlink(path, buf, size - 1);
    buf[n > 0 ? n : 0] = '\0';
    slash = strrchr(buf, '/');
    if (slash != NULL)
        memmove(buf, slash + 1, strlen(slash + 1) + 1);
    return buf;
}

struct tables {
    char *inet;
    char *netdev;
};

static bool tables_restored(void *arg) {
    const struct tables *before = arg;
    char *inet = list_table("inet");
    char *netdev = list_table("netdev");
    bool same = inet != NULL && netdev != NULL &&
                strcmp(inet, before->inet) == 0 &&
                strcmp(netdev, before->netdev) == 0;

    free(inet);
    free(netdev);
    return same;
}

struct bridge_state {
    const char *name;
    const char *gateway;
};

static bool bridge_back(void *arg) {
    const struct bridge_state *b = arg;

    return harness_link_is_up(b->name) &&
           harness_link_has_ipv4(b->name, b->gateway, 24);
}

// Runs argv (which breaks something), waits until the broker logged
// logged (one more time than before) and cond holds, REPAIR_SECONDS at
// most, and prints how long that took from the start of argv.
static void break_and_wait(const char *const *argv, const char *what,
                           const char *logged, bool (*cond)(void *),
                           void *arg) {
    size_t count = harness_broker_log_count(broker, logged);
    double start = harness_now();
    double took;

    free(output_of(argv));
    while ((harness_broker_log_count(broker, logged) <= count || !cond(arg)) &&
           harness_now() - start < REPAIR_SECONDS)
        usleep(5000);
    took = harness_now() - start;
    ck_assert_msg(harness_broker_log_count(broker, logged) > count,
                  "%s: the broker did not log \"%s\" (log: %s)", what, logged,
                  broker->log_path);

    while (!cond(arg) && harness_now() - start < REPAIR_SECONDS)
        usleep(5000);
    took = harness_now() - start;
    ck_assert_msg(cond(arg), "%s: not repaired after %.0f s (log: %s)", what,
                  REPAIR_SECONDS, broker->log_path);
    printf("repair: %s took %.3f s\n", what, took);
    fflush(stdout);
}

static void assert_masqueraded(const char *outside, const char *guest) {
    struct topology_listener listener;
    char peer[64];

    ck_assert_msg(topology_listen(outside, OUTSIDE_PORT, &listener),
                  "cannot listen in %s", outside);
    ck_assert_msg(topology_connect(guest, TOPOLOGY_OUTSIDE_IPV4, OUTSIDE_PORT,
                                   HARNESS_WAIT_SECONDS),
                  "the guest cannot reach the outside (log: %s)",
                  broker->log_path);
    ck_assert(topology_listener_peer(&listener, HARNESS_WAIT_SECONDS, peer,
                                     sizeof(peer)));
    // The outside has a route back to the guest: only masquerade makes the
    // host's address the source.
    ck_assert_str_eq(peer, TOPOLOGY_HOST_IPV4);
    topology_listener_stop(&listener);
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_flushed_table_is_restored) {
    const char *flush[] = {"nft", "flush", "ruleset", NULL};
    struct topology_lease lease;
    struct tables before;
    const char *outside, *guest, *tap_name;
    json_t *network;

    harness_start(broker, IDLE);
    outside = topology_add_outside(topology);
    ck_assert_ptr_nonnull(outside);
    network = acquire("shared");
    tap_name = open_tap("shared");
    guest = topology_add_guest(topology,
                               harness_network_field(network, "bridge"), NULL);
    ck_assert_ptr_nonnull(guest);
    ck_assert(topology_dhcp(topology, guest, NULL, &lease));
    assert_masqueraded(outside, guest);
    before.inet = list_table("inet");
    before.netdev = list_table("netdev");
    ck_assert_ptr_nonnull(before.inet);
    ck_assert_ptr_nonnull(before.netdev);
    // The TAP's anti-spoofing chain is part of what must come back.
    ck_assert_ptr_nonnull(strstr(before.netdev, tap_name));

    break_and_wait(flush, "nft flush ruleset", "restored its nftables rules",
                   tables_restored, &before);
    assert_masqueraded(outside, guest);

    // A second flush is repaired as well (the watch goes on).
    break_and_wait(flush, "a second nft flush ruleset",
                   "restored its nftables rules", tables_restored, &before);
    free(before.inet);
    free(before.netdev);
    json_decref(network);
}
END_TEST

START_TEST(test_deleted_bridge_is_made_again) {
    const char *down[] = {"ip", "link", "set", "vmb-shared", "down", NULL};
    const char *del[] = {"ip", "link", "del", "vmb-shared", NULL};
    struct topology_lease lease;
    struct bridge_state state;
    char mac[32], mac_after[32], master[64], mtu[16], mtu_after[16];
    const char *tap_name, *guest;
    json_t *network, *other;

    harness_start(broker, IDLE);
    network = acquire("shared");
    ck_assert_str_eq(harness_network_field(network, "bridge"), "vmb-shared");
    state.name = "vmb-shared";
    state.gateway = harness_network_field(network, "gateway");
    tap_name = open_tap("shared");
    ck_assert_str_eq(master_of(tap_name, master, sizeof(master)), state.name);
    link_attribute(state.name, "address", mac, sizeof(mac));
    link_attribute(state.name, "mtu", mtu, sizeof(mtu));

    // Set down: set up again.
    break_and_wait(down, "ip link set down", "set its bridge up again",
                   bridge_back, &state);
    // Its address removed: added again.
    {
        char command[96];
        const char *argv[] = {"sh", "-c", command, NULL};

        snprintf(command, sizeof(command), "ip addr del %s/24 dev %s",
                 state.gateway, state.name);
        break_and_wait(argv, "ip addr del", "added its address", bridge_back,
                       &state);
    }
    break_and_wait(del, "ip link del", "made bridge vmb-shared again",
                   bridge_back, &state);
    ck_assert(harness_link_is_bridge(state.name));
    ck_assert_str_eq(
        link_attribute(state.name, "address", mac_after, sizeof(mac_after)),
        mac);
    ck_assert_str_eq(
        link_attribute(state.name, "mtu", mtu_after, sizeof(mtu_after)), mtu);
    // The TAP lost its port with the bridge: it is attached again.
    ck_assert(harness_broker_wait_log(broker, "attached 1 TAP device", 1));
    ck_assert_str_eq(master_of(tap_name, master, sizeof(master)), state.name);
    ck_assert(harness_broker_wait_log(broker, "restarting dnsmasq", 1));

    // dnsmasq answers on the new bridge.
    guest = topology_add_guest(topology, state.name, NULL);
    ck_assert_ptr_nonnull(guest);
    ck_assert_msg(topology_dhcp(topology, guest, NULL, &lease),
                  "no DHCP lease on the bridge made again (log: %s)",
                  broker->log_path);
    ck_assert_str_eq(lease.router, state.gateway);

    // Another network still comes up, on another subnet.
    other = acquire("host");
    ck_assert_str_ne(harness_network_field(other, "subnet"),
                     harness_network_field(network, "subnet"));
    json_decref(other);
    json_decref(network);
}
END_TEST

// The repairs hold for a network the broker adopted after a SIGKILL: its
// TAP chains and rules come back after a flush, and its bridge (the same
// MAC and address) after a deletion, with the TAP reattached and the
// adopted dnsmasq (no child of this broker) serving DHCP again.
START_TEST(test_adopted_network_is_repaired) {
    const char *flush[] = {"nft", "flush", "ruleset", NULL};
    const char *del[] = {"ip", "link", "del", "vmb-shared", NULL};
    struct topology_lease lease;
    struct bridge_state state;
    struct tables before;
    char mac[32], mac_after[32], master[64];
    const char *tap_name, *guest, *outside;
    json_t *network;

    harness_start(broker, IDLE);
    outside = topology_add_outside(topology);
    ck_assert_ptr_nonnull(outside);
    network = acquire("shared");
    state.name = harness_network_field(network, "bridge");
    state.gateway = harness_network_field(network, "gateway");
    tap_name = open_tap("shared");
    link_attribute(state.name, "address", mac, sizeof(mac));

    // The broker dies; the test's TAP descriptor keeps the port alive.
    ck_assert(harness_broker_signal(broker, SIGKILL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    close(connection);
    connection = -1;
    vmnet_broker_connection_close(client);
    client = NULL;
    ck_assert(harness_broker_start(broker, IDLE, NULL));
    ck_assert(harness_broker_wait_log(broker, "adopted network 'shared'", 1));
    ck_assert(harness_broker_wait_log(broker, "adopted dnsmasq", 1));

    before.inet = list_table("inet");
    before.netdev = list_table("netdev");
    ck_assert_ptr_nonnull(before.inet);
    ck_assert_ptr_nonnull(before.netdev);
    ck_assert_ptr_nonnull(strstr(before.netdev, tap_name));
    break_and_wait(flush, "nft flush ruleset (adopted)",
                   "restored its nftables rules", tables_restored, &before);
    free(before.inet);
    free(before.netdev);
    // A guest of the adopted network reaches the outside through NAT.
    guest = topology_add_guest(topology, state.name, NULL);
    ck_assert_ptr_nonnull(guest);
    ck_assert(topology_dhcp(topology, guest, NULL, &lease));
    assert_masqueraded(outside, guest);

    break_and_wait(del, "ip link del (adopted)", "made bridge vmb-shared again",
                   bridge_back, &state);
    ck_assert_str_eq(
        link_attribute(state.name, "address", mac_after, sizeof(mac_after)),
        mac);
    ck_assert(harness_broker_wait_log(broker, "attached 1 TAP device", 1));
    ck_assert_str_eq(master_of(tap_name, master, sizeof(master)), state.name);
    // The adopted dnsmasq is replaced by one of this broker's, which
    // answers on the new bridge.
    ck_assert(harness_broker_wait_log(broker, "dnsmasq restarted", 1));
    guest = topology_add_guest(topology, state.name, NULL);
    ck_assert_ptr_nonnull(guest);
    ck_assert_msg(topology_dhcp(topology, guest, NULL, &lease),
                  "no DHCP lease on the adopted network's new bridge (log: %s)",
                  broker->log_path);
    ck_assert_str_eq(lease.router, state.gateway);
    assert_masqueraded(outside, guest);
    ck_assert(harness_broker_alive(broker));
    // Its end for the restart counted as no failure.
    ck_assert_uint_eq(harness_broker_log_count(broker, "ended to be restarted"),
                      1);
    ck_assert_uint_eq(
        harness_broker_log_count(broker, "warning: network shared: adopted"),
        0);
    json_decref(network);
}
END_TEST

// The pid in the network's dnsmasq.pid.
static pid_t dnsmasq_pid_of(const char *name) {
    char path[160];
    FILE *f;
    int pid = 0;

    snprintf(path, sizeof(path), "%s/%s/dnsmasq.pid", broker->dir, name);
    f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    ck_assert_int_gt(pid, 1);
    return pid;
}

// A dnsmasq killed with SIGKILL is started again (its spawn on the
// broker's worker) and answers DHCP; the broker's other requests go on.
START_TEST(test_killed_dnsmasq_answers_again) {
    struct topology_lease lease;
    const char *guest;
    json_t *network, *status;
    pid_t first;

    harness_start(broker, IDLE);
    network = acquire("shared");
    first = dnsmasq_pid_of("shared");
    ck_assert_int_eq(kill(first, SIGKILL), 0);
    ck_assert_msg(harness_broker_wait_log(broker, "dnsmasq restarted", 1),
                  "dnsmasq not restarted (log: %s)", broker->log_path);
    status = harness_status(broker);
    ck_assert(json_is_false(
        json_object_get(harness_status_network(status, "shared"), "degraded")));
    json_decref(status);
    guest = topology_add_guest(topology,
                               harness_network_field(network, "bridge"), NULL);
    ck_assert_ptr_nonnull(guest);
    ck_assert_msg(topology_dhcp(topology, guest, NULL, &lease),
                  "no DHCP lease from the restarted dnsmasq (log: %s)",
                  broker->log_path);
    ck_assert_str_eq(lease.router, harness_network_field(network, "gateway"));
    ck_assert_int_ne(dnsmasq_pid_of("shared"), first);
    json_decref(network);
}
END_TEST

static bool degraded(void *arg) {
    json_t *status = harness_status(broker);
    json_t *network = harness_status_network(status, arg);
    bool yes = json_is_true(json_object_get(network, "degraded")) &&
               json_string_value(json_object_get(network, "degraded_reason"));

    json_decref(status);
    return yes;
}

START_TEST(test_given_up_dnsmasq_shows_degraded) {
    char wrapper[160], started[160], pid_path[160];
    json_t *network, *status;
    FILE *f;
    int pid = 0;

    // The first dnsmasq runs; every restart fails at once.
    snprintf(started, sizeof(started), "%s/started", broker->dir);
    snprintf(wrapper, sizeof(wrapper), "%s/failing-dnsmasq.sh", broker->dir);
    f = fopen(wrapper, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "#!/bin/sh\n"
            "[ -e %s ] && exit 1\n"
            ": > %s\n"
            "exec /usr/sbin/dnsmasq \"$@\"\n",
            started, started);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(wrapper, 0755), 0);
    ck_assert_int_eq(setenv("VMNET_BROKER_DNSMASQ", wrapper, 1), 0);
    harness_start(broker, IDLE);
    network = acquire("shared");

    status = harness_status(broker);
    ck_assert(json_is_false(
        json_object_get(harness_status_network(status, "shared"), "degraded")));
    json_decref(status);

    snprintf(pid_path, sizeof(pid_path), "%s/shared/dnsmasq.pid", broker->dir);
    f = fopen(pid_path, "r");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fscanf(f, "%d", &pid), 1);
    fclose(f);
    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill(pid, SIGKILL), 0);
    // Five failed restarts, a second apart.
    ck_assert_msg(harness_wait_for(degraded, "shared"),
                  "shared not degraded (log: %s)", broker->log_path);
    // The client library's typed accessors say the same.
    {
        vmnet_broker_status_t *typed = NULL;
        size_t i = 0;

        client = harness_connect(broker);
        ck_assert_ptr_nonnull(client);
        ck_assert_int_eq(vmnet_broker_connection_get_status(client, &typed),
                         VMNET_BROKER_SUCCESS);
        while (i < vmnet_broker_status_network_count(typed) &&
               strcmp(vmnet_broker_status_network_name(typed, i), "shared"))
            i++;
        ck_assert(vmnet_broker_status_network_degraded(typed, i));
        ck_assert_ptr_nonnull(strstr(
            vmnet_broker_status_network_degraded_reason(typed, i), "dnsmasq"));
        vmnet_broker_status_free(typed);
    }
    // And the CLI, for an administrator.
    {
        char command[4 * PATH_MAX];

        snprintf(command, sizeof(command),
                 "%s --socket %s info shared | grep -q '^State: *degraded' && "
                 "%s --socket %s info shared | grep -q '^Degraded: .*dnsmasq' "
                 "&& %s --socket %s status | grep -q '^shared *degraded'",
                 VMNET_BROKER_CLIENT_BIN, broker->socket_path,
                 VMNET_BROKER_CLIENT_BIN, broker->socket_path,
                 VMNET_BROKER_CLIENT_BIN, broker->socket_path);
        ck_assert_msg(harness_shell(command) == 0, "the CLI does not say "
                                                   "degraded");
    }
    json_decref(network);
}
END_TEST

static Suite *repair_suite(void) {
    Suite *s = suite_create("repair");
    TCase *tc = tcase_create("repair");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_flushed_table_is_restored);
    tcase_add_test(tc, test_deleted_bridge_is_made_again);
    tcase_add_test(tc, test_given_up_dnsmasq_shows_degraded);
    tcase_add_test(tc, test_adopted_network_is_repaired);
    tcase_add_test(tc, test_killed_dnsmasq_answers_again);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(repair_suite());
}
