// SPDX-License-Identifier: Apache-2.0
// A guest's network outlives its broker: SIGKILL, restart, adoption (issue 12).
#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

// Short, so the removal once the guest has gone is quick to see.
#define IDLE "1"
#define GUEST_NS "adopt-guest"
// The broker's TAP descriptors carry a virtio-net header (IFF_VNET_HDR) of
// the kernel's default size.
#define VNET_HDR_LEN 10
// 20 ms apart for 6 s: the broker is killed and started again meanwhile.
#define PING_COUNT "300"
#define PING_INTERVAL "0.02"

static struct harness_broker *broker;
static struct topology *topology;

static void setup(void) {
    broker = harness_test_setup();
    topology = topology_new(broker->dir);
    ck_assert_msg(topology != NULL, "cannot prepare for namespaces");
}

static void teardown(void) {
    harness_shell("ip netns del " GUEST_NS " 2>/dev/null");
    topology_free(topology);
    topology = NULL;
    harness_broker_free(broker);
    broker = NULL;
}

// ---- Local helpers ---------------------------------------------------------

// Copies frames between the broker's TAP (tap_fd) and a TAP named
// TOPOLOGY_LINK it makes in GUEST_NS, where the guest's kernel sees it: the
// guest is that namespace, as a VM would be on the other side of tap_fd.
// Runs in a child until killed; returns its pid once the guest's link
// exists.
static pid_t start_guest_relay(int tap_fd) {
    int ready[2];
    char byte;
    pid_t pid;

    ck_assert_int_eq(harness_shell("ip netns add " GUEST_NS), 0);
    ck_assert_int_eq(pipe(ready), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct ifreq ifr = {.ifr_flags = IFF_TAP | IFF_NO_PI};
        unsigned char buf[VNET_HDR_LEN + 65536];
        int ns = open("/run/netns/" GUEST_NS, O_RDONLY | O_CLOEXEC);
        int guest;

        close(ready[0]);
        if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
            _exit(1);
        guest = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", TOPOLOGY_LINK);
        if (guest < 0 || ioctl(guest, TUNSETIFF, &ifr) < 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        for (;;) {
            struct pollfd p[2] = {{.fd = tap_fd, .events = POLLIN},
                                  {.fd = guest, .events = POLLIN}};
            ssize_t n;

            if (poll(p, 2, -1) < 0)
                continue;
            // The header says nothing to the guest (no offloads were
            // asked for): dropped one way, zeros the other.
            if (p[0].revents & POLLIN) {
                n = read(tap_fd, buf, sizeof(buf));
                if (n > VNET_HDR_LEN && write(guest, buf + VNET_HDR_LEN,
                                              (size_t)n - VNET_HDR_LEN) < 0)
                    continue;
            }
            if (p[1].revents & POLLIN) {
                n = read(guest, buf + VNET_HDR_LEN, sizeof(buf) - VNET_HDR_LEN);
                memset(buf, 0, VNET_HDR_LEN);
                if (n > 0 && write(tap_fd, buf, (size_t)n + VNET_HDR_LEN) < 0)
                    continue;
            }
            if ((p[0].revents | p[1].revents) & (POLLHUP | POLLERR))
                _exit(0);
        }
    }
    close(ready[1]);
    ck_assert_int_eq(read(ready[0], &byte, 1), 1);
    close(ready[0]);
    return pid;
}

// Runs ping from GUEST_NS to the outside, its summary in path; returns its
// pid.
static pid_t start_ping(const char *path) {
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
            _exit(127);
        execlp("ip", "ip", "netns", "exec", GUEST_NS, "ping", "-n", "-q", "-i",
               PING_INTERVAL, "-c", PING_COUNT, "-W", "2",
               TOPOLOGY_OUTSIDE_IPV4, (char *)NULL);
        _exit(127);
    }
    return pid;
}

// Reads ping's "N packets transmitted, M received" from path.
static void ping_counts(const char *path, unsigned *sent, unsigned *received) {
    char text[2048];
    const char *line;
    size_t n;
    FILE *f = fopen(path, "r");

    ck_assert_ptr_nonnull(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    line = strstr(text, "packets transmitted");
    ck_assert_msg(line != NULL, "no ping summary: %s", text);
    while (line > text && line[-1] != '\n')
        line--;
    ck_assert_msg(sscanf(line, "%u packets transmitted, %u received", sent,
                         received) == 2,
                  "ping summary: %s", line);
}

// The uuid the broker's status gives network name, as a malloc'd string;
// NULL when it does not list it running.
// Acquires name on connection (held by it) and puts a guest on its bridge;
// returns the guest's namespace.
static const char *acquire_with_guest(vmnet_broker_connection_t *connection,
                                      const char *name) {
    vmnet_broker_network_t *network = NULL;
    const char *guest;

    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, name, &network),
        VMNET_BROKER_SUCCESS);
    guest = topology_add_guest(topology, vmnet_broker_network_bridge(network),
                               NULL);
    ck_assert_ptr_nonnull(guest);
    vmnet_broker_network_free(network);
    return guest;
}

static char *status_uuid(const char *name) {
    json_t *status = harness_status(broker);
    const char *uuid = json_string_value(
        json_object_get(harness_status_network(status, name), "uuid"));
    char *copy = uuid != NULL ? strdup(uuid) : NULL;

    json_decref(status);
    return copy;
}

static bool bridge_gone(void *arg) {
    (void)arg;
    return !harness_link_exists("vmb-shared");
}

static void state_file(char *path, size_t size) {
    snprintf(path, size, "%s/networks.json", broker->dir);
}

// The networks' own dnsmasq processes: not the router advertisement one
// (its directory starts with '_', which no network's can;
// check_router_advertisements.c tests it).
static unsigned dnsmasq_count(void) {
    char command[256];
    snprintf(command, sizeof(command),
             "exit $(pgrep -f -- '--conf-[f]ile=%s/[^_]' | wc -l)",
             broker->dir);
    return (unsigned)harness_shell(command);
}

static bool no_dnsmasq(void *arg) {
    (void)arg;
    // Orphaned onto the test (harness_enter_netns()): reaped here.
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    return dnsmasq_count() == 0;
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_guest_pings_through_sigkill_and_restart) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_interface_t *iface = NULL;
    struct topology_lease before, after;
    char command[256], ping_log[PATH_MAX];
    unsigned sent = 0, received = 0;
    char *uuid, *uuid_after;
    pid_t relay, ping;
    int status;

    harness_start(broker, IDLE);
    ck_assert_msg(topology_add_outside(topology) != NULL, "no outside");
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(
        vmnet_broker_connection_open_interface(connection, "shared", &iface),
        VMNET_BROKER_SUCCESS);
    relay = start_guest_relay(vmnet_broker_interface_fd(iface));
    snprintf(command, sizeof(command),
             "ip -n " GUEST_NS " link set " TOPOLOGY_LINK " address %s up",
             vmnet_broker_interface_mac(iface));
    ck_assert_int_eq(harness_shell(command), 0);
    ck_assert_msg(topology_dhcp(topology, GUEST_NS, NULL, &before),
                  "no lease (log %s)", broker->log_path);
    ck_assert(topology_ping(GUEST_NS, TOPOLOGY_OUTSIDE_IPV4, 10));
    uuid = status_uuid("shared");
    ck_assert_ptr_nonnull(uuid);

    snprintf(ping_log, sizeof(ping_log), "%s/ping.log", broker->dir);
    ping = start_ping(ping_log);
    // Into the run of pings, the broker dies; its connection with it.
    usleep(1000 * 1000);
    ck_assert(harness_broker_signal(broker, SIGKILL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert(harness_broker_start(broker, IDLE, NULL));
    ck_assert(harness_broker_wait_log(broker, "adopted network 'shared'", 1));
    ck_assert_int_eq(waitpid(ping, &status, 0), ping);
    ping_counts(ping_log, &sent, &received);
    fprintf(stderr,
            "adoption: %u pings sent every 20 ms through SIGKILL and "
            "restart, %u answered\n",
            sent, received);
    ck_assert_uint_gt(sent, 0);
    ck_assert_uint_eq(received, sent);

    // The guest's TAP is still a port, with its anti-spoofing chain.
    snprintf(command, sizeof(command),
             "ip -o link show %s | grep -q 'master vmb-shared' && "
             "nft list chain netdev vmnet-broker tap-%s >/dev/null",
             vmnet_broker_interface_name(iface),
             vmnet_broker_interface_name(iface));
    ck_assert_int_eq(harness_shell(command), 0);
    ck_assert_uint_eq(harness_broker_log_count(broker, "adopted dnsmasq"), 1);

    // The same instance, as status says, and the guest keeps its address.
    uuid_after = status_uuid("shared");
    ck_assert_ptr_nonnull(uuid_after);
    ck_assert_str_eq(uuid_after, uuid);
    ck_assert_msg(topology_dhcp(topology, GUEST_NS, NULL, &after),
                  "no lease after the restart (log %s)", broker->log_path);
    ck_assert_str_eq(after.address, before.address);
    ck_assert(topology_ping(GUEST_NS, TOPOLOGY_OUTSIDE_IPV4, 10));
    // A client acquiring now gets that instance.
    {
        vmnet_broker_connection_t *again = harness_connect(broker);
        vmnet_broker_network_t *network = NULL;
        ck_assert_int_eq(
            vmnet_broker_connection_acquire(again, "shared", &network),
            VMNET_BROKER_SUCCESS);
        ck_assert_str_eq(vmnet_broker_network_uuid(network), uuid);
        vmnet_broker_network_free(network);
        vmnet_broker_connection_close(again);
    }

    // The guest goes (its TAP with it): after the idle delay, the network.
    harness_kill_and_reap(relay, SIGKILL);
    vmnet_broker_interface_free(iface);
    vmnet_broker_connection_close(connection);
    ck_assert(harness_wait_for(bridge_gone, NULL));
    ck_assert(harness_broker_wait_log(broker, "idle delay passed", 1));
    ck_assert(harness_broker_alive(broker));
    free(uuid);
    free(uuid_after);
}
END_TEST

START_TEST(test_exit_leaves_networks_with_ports) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_network_t *network = NULL;
    char path[PATH_MAX];
    char *uuid, *uuid_after;

    harness_start(broker, "60");
    connection = harness_connect(broker);
    acquire_with_guest(connection, "shared");
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "host", &network),
        VMNET_BROKER_SUCCESS);
    vmnet_broker_network_free(network);
    uuid = status_uuid("shared");
    ck_assert_ptr_nonnull(uuid);
    vmnet_broker_connection_close(connection);
    ck_assert(harness_broker_wait_no_peers(broker));

    // Stopped: host (no port) goes, shared (a guest's port) stays whole.
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_eq(harness_broker_wait_exit(broker), 0);
    ck_assert(harness_broker_wait_log(broker, "leaving network 'shared'", 1));
    ck_assert(!harness_link_exists("vmb-host"));
    ck_assert(harness_link_exists("vmb-shared"));
    ck_assert_uint_eq(dnsmasq_count(), 1);
    ck_assert_int_eq(
        harness_shell("nft list chain inet vmnet-broker from-vmb-shared "
                      ">/dev/null"),
        0);
    state_file(path, sizeof(path));
    ck_assert_int_eq(access(path, F_OK), 0);

    // The next broker adopts it: the same uuid, the same dnsmasq.
    ck_assert(harness_broker_start(broker, "60", NULL));
    uuid_after = status_uuid("shared");
    ck_assert_ptr_nonnull(uuid_after);
    ck_assert_str_eq(uuid_after, uuid);
    ck_assert_uint_eq(dnsmasq_count(), 1);
    ck_assert_uint_eq(harness_broker_log_count(broker, "adopted dnsmasq"), 1);
    free(uuid);
    free(uuid_after);
}
END_TEST

START_TEST(test_corrupt_state_file_adopts_nothing) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_network_t *network = NULL;
    char path[PATH_MAX];
    FILE *f;

    harness_start(broker, "60");
    connection = harness_connect(broker);
    acquire_with_guest(connection, "shared");
    ck_assert(harness_broker_signal(broker, SIGKILL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    vmnet_broker_connection_close(connection);
    state_file(path, sizeof(path));
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("{\"version\": 1, \"networks\": [ {\"name\": ", f);
    fclose(f);

    // It starts, says why it adopts nothing, and cleans up as before.
    ck_assert(harness_broker_start(broker, "60", NULL));
    ck_assert(harness_broker_wait_log(broker, "is not valid JSON", 1));
    ck_assert(!harness_link_exists("vmb-shared"));
    ck_assert_uint_eq(dnsmasq_count(), 0);
    ck_assert_int_ne(
        harness_shell("nft list chain inet vmnet-broker from-vmb-shared "
                      ">/dev/null 2>&1"),
        0);
    // And serves: shared is made anew.
    connection = harness_connect(broker);
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "shared", &network),
        VMNET_BROKER_SUCCESS);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
    ck_assert(harness_broker_wait_no_peers(broker));
}
END_TEST

START_TEST(test_dnsmasq_gone_meanwhile_is_restarted) {
    vmnet_broker_connection_t *connection;
    struct topology_lease lease;
    const char *guest;
    char *uuid, *uuid_after;

    harness_start(broker, "60");
    connection = harness_connect(broker);
    guest = acquire_with_guest(connection, "shared");
    uuid = status_uuid("shared");
    ck_assert_ptr_nonnull(uuid);
    ck_assert(harness_broker_signal(broker, SIGKILL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    vmnet_broker_connection_close(connection);
    // While no broker runs, its dnsmasq dies too.
    {
        char command[256];
        snprintf(command, sizeof(command),
                 "pkill -KILL -f -- '--conf-[f]ile=%s/'", broker->dir);
        ck_assert_int_eq(harness_shell(command), 0);
    }
    ck_assert(harness_wait_for(no_dnsmasq, NULL));

    // The network is adopted all the same and gets a new dnsmasq.
    ck_assert(harness_broker_start(broker, "60", NULL));
    ck_assert(harness_broker_wait_log(broker, "its dnsmasq is gone", 1));
    ck_assert(harness_broker_wait_log(broker, "dnsmasq restarted", 1));
    uuid_after = status_uuid("shared");
    ck_assert_ptr_nonnull(uuid_after);
    ck_assert_str_eq(uuid_after, uuid);
    ck_assert_msg(topology_dhcp(topology, guest, NULL, &lease),
                  "no lease from the new dnsmasq (log %s)", broker->log_path);
    ck_assert_uint_eq(dnsmasq_count(), 1);
    free(uuid);
    free(uuid_after);
}
END_TEST

int main(void) {
    Suite *s = suite_create("adoption");
    TCase *tc = tcase_create("adoption");

    harness_enter_netns();
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_guest_pings_through_sigkill_and_restart);
    tcase_add_test(tc, test_exit_leaves_networks_with_ports);
    tcase_add_test(tc, test_corrupt_state_file_adopts_nothing);
    tcase_add_test(tc, test_dnsmasq_gone_meanwhile_is_restarted);
    suite_add_tcase(s, tc);
    return harness_run_suite(s);
}
