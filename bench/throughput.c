// SPDX-License-Identifier: Apache-2.0
// iperf3 through the broker's bridge (guest to guest, guest to the outside by
// NAT) vs the same namespaces joined by bare veth pairs, and by a bare bridge.
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "vmnet-broker.h"

#define IPERF_SECONDS "3"
// Far longer than a 3 s run with its connection set-up and summary.
#define IPERF_TIMEOUT_SECONDS 20.0
#define SERVER_READY_SECONDS 10.0
// The median of this many runs per path; the paths take turns.
#define ROUNDS 3
// The bridge path may lose less than 20% to the bare pair.
#define GOAL_RATIO 0.8

// The host (the bench's own namespace) and the outside, as the integration
// tests' topology: TEST-NET-2, which exists only inside these namespaces.
#define HOST_IPV4 "198.51.100.1"
#define OUTSIDE_IPV4 "198.51.100.2"
// The bare pairs: TEST-NET-1 between the guests, TEST-NET-3 from the first
// guest to the outside.
#define PAIR_GUEST1_IPV4 "192.0.2.1"
#define PAIR_GUEST2_IPV4 "192.0.2.2"
#define PAIR_FROM_IPV4 "203.0.113.1"
#define PAIR_OUTSIDE_IPV4 "203.0.113.2"
// A bare bridge between the guests too, for reference: what the kernel's
// bridge costs without the broker. bare_bridge_create()'s 10.200.INDEX.1.
#define BARE_BRIDGE "bbrtp"
#define BARE_BRIDGE_INDEX 210
#define BARE_GUEST1_IPV4 "10.200.210.11"
#define BARE_GUEST2_IPV4 "10.200.210.12"

// Holds `shared` for the whole measurement.
struct throughput {
    vmnet_broker_connection_t *connection;
    char bridge[32];
    struct dhcp_client client;
    struct netns guest1, guest2, outside;
    struct nl_sock *sock;
    bool bare_bridge_made;
    // The iperf3 servers, in the second guest and in the outside.
    pid_t servers[2];
    int server_fds[2];
};

// Makes the outside: a namespace joined to the host by a veth pair, the
// host's default route, and routes back to the host.
static bool make_outside(struct throughput *t) {
    return netns_new(&t->outside) &&
           netns_shell(NULL,
                       "ip link add bout0 type veth peer name eth0 netns %d "
                       "&& ip addr add " HOST_IPV4 "/24 dev bout0 "
                       "&& ip link set bout0 up",
                       (int)t->outside.holder) &&
           netns_shell(&t->outside, "ip addr add " OUTSIDE_IPV4 "/24 dev eth0 "
                                    "&& ip link set eth0 up") &&
           netns_wait_link_up(NULL, "bout0") &&
           netns_wait_link_up(&t->outside, "eth0") &&
           netns_shell(&t->outside, "ip route add default via " HOST_IPV4) &&
           netns_shell(NULL, "ip route add default via " OUTSIDE_IPV4);
}

// A guest on the broker's bridge whose DHCP client configured eth0.
static bool make_guest(struct throughput *t, struct netns *guest,
                       const char *host_link, char address[16]) {
    uint64_t leased;

    return netns_new(guest) &&
           netns_shell(NULL,
                       "ip link add %s type veth peer name eth0 netns %d "
                       "&& ip link set %s master %s && ip link set %s up",
                       host_link, (int)guest->holder, host_link, t->bridge,
                       host_link) &&
           netns_shell(guest, "ip link set eth0 up") &&
           netns_wait_link_up(NULL, host_link) &&
           netns_wait_link_up(guest, "eth0") &&
           dhcp_client_lease(&t->client, guest, "eth0", &leased, address);
}

// A veth pair from `from`'s link to `to`'s, addressed in a /24.
static bool make_pair(const struct netns *from, const char *from_link,
                      const char *from_address, const struct netns *to,
                      const char *to_link, const char *to_address) {
    return netns_shell(from,
                       "ip link add %s type veth peer name %s netns %d "
                       "&& ip addr add %s/24 dev %s && ip link set %s up",
                       from_link, to_link, (int)to->holder, from_address,
                       from_link, from_link) &&
           netns_shell(to, "ip addr add %s/24 dev %s && ip link set %s up",
                       to_address, to_link, to_link) &&
           netns_wait_link_up(from, from_link) &&
           netns_wait_link_up(to, to_link);
}

// Joins guest's link to the bare bridge through the host's host_link.
static bool join_bare_bridge(const struct netns *guest, const char *host_link,
                             const char *link, const char *address) {
    return netns_shell(
               NULL,
               "ip link add %s type veth peer name %s netns %d "
               "&& ip link set %s master " BARE_BRIDGE " && ip link set %s up",
               host_link, link, (int)guest->holder, host_link, host_link) &&
           netns_shell(guest, "ip addr add %s/24 dev %s && ip link set %s up",
                       address, link, link) &&
           netns_wait_link_up(NULL, host_link) &&
           netns_wait_link_up(guest, link);
}

static bool make_bare_bridge(struct throughput *t) {
    t->sock = bare_bridge_socket();
    if (t->sock == NULL)
        return false;
    t->bare_bridge_made =
        bare_bridge_create(t->sock, BARE_BRIDGE, BARE_BRIDGE_INDEX);
    return t->bare_bridge_made &&
           join_bare_bridge(&t->guest1, "bt1", "eth3", BARE_GUEST1_IPV4) &&
           join_bare_bridge(&t->guest2, "bt2", "eth3", BARE_GUEST2_IPV4);
}

static bool start_server(const struct netns *ns, pid_t *pid, int *fd) {
    const char *argv[] = {"iperf3", "-s", "--forceflush", NULL};
    uint64_t deadline = bench_now_ns() + (uint64_t)(SERVER_READY_SECONDS * 1e9);
    char line[128];

    *pid = netns_spawn(ns, argv, fd);
    if (*pid < 0)
        return false;
    if (netns_read_line(*fd, "Server listening", deadline, line, sizeof(line)))
        return true;
    fprintf(stderr, "bench: iperf3 server did not start\n");
    return false;
}

// One iperf3 run from the first guest to address; its received rate.
static bool measure(const struct throughput *t, const char *address,
                    double *bits_per_second) {
    const char *argv[] = {"iperf3",      "-c", address, "-t",
                          IPERF_SECONDS, "-J", NULL};
    char output[65536];
    json_t *root = NULL;
    const char *start;
    json_t *rate;
    bool status = false;
    int code = netns_run(&t->guest1, argv, IPERF_TIMEOUT_SECONDS, output,
                         sizeof(output));

    // Warnings on stderr, if any, come before the JSON.
    start = strchr(output, '{');
    if (code != 0 || start == NULL)
        goto out;
    root = json_loads(start, 0, NULL);
    rate = json_object_get(
        json_object_get(json_object_get(root, "end"), "sum_received"),
        "bits_per_second");
    if (!json_is_number(rate))
        goto out;
    *bits_per_second = json_number_value(rate);
    status = true;
out:
    if (!status)
        fprintf(stderr, "bench: iperf3 to %s failed (%d):\n%.2000s\n", address,
                code, output);
    json_decref(root);
    return status;
}

static int compare_double(const void *a, const void *b) {
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, size_t n) {
    qsort(values, n, sizeof(*values), compare_double);
    return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

// The rates of one path, and what it is compared with.
enum path {
    GUESTS_SHARED,
    GUESTS_PAIR,
    GUESTS_BARE_BRIDGE,
    OUTSIDE_SHARED,
    OUTSIDE_PAIR,
    PATHS
};

static void row(const char *metric, double value, double pair, bool goal) {
    char value_text[32];
    char baseline[64];
    char verdict[96];
    char ratio[32];

    snprintf(value_text, sizeof(value_text), "%.2f Gbit/s", value / 1e9);
    snprintf(baseline, sizeof(baseline), "%.2f Gbit/s bare veth pair",
             pair / 1e9);
    format_ratio(ratio, sizeof(ratio), value, pair);
    if (goal)
        snprintf(verdict, sizeof(verdict), "%s (goal >= %.2fx: %s)", ratio,
                 GOAL_RATIO, value >= GOAL_RATIO * pair ? "met" : "MISSED");
    else
        snprintf(verdict, sizeof(verdict), "%s", ratio);
    table_row(metric, value_text, baseline, verdict);
}

// With br_netfilter, frames switched between two ports of a bridge also
// cross the IP hooks (and so the broker's table and connection tracking):
// a setting of the host that weighs on guest-to-guest rates.
static const char *bridge_netfilter(void) {
    FILE *f = fopen("/proc/sys/net/bridge/bridge-nf-call-iptables", "r");
    int on = -1;

    if (f == NULL)
        return "br_netfilter not loaded";
    if (fscanf(f, "%d", &on) != 1)
        on = -1;
    fclose(f);
    return on == 1   ? "bridge-nf-call-iptables=1"
           : on == 0 ? "bridge-nf-call-iptables=0"
                     : "bridge-nf-call-iptables unreadable";
}

// Runs every path ROUNDS times, in turns, and adds the rows.
static bool measure_paths(const struct throughput *t, const char *guest2) {
    const char *const targets[PATHS] = {
        [GUESTS_SHARED] = guest2,
        [GUESTS_PAIR] = PAIR_GUEST2_IPV4,
        [GUESTS_BARE_BRIDGE] = BARE_GUEST2_IPV4,
        [OUTSIDE_SHARED] = OUTSIDE_IPV4,
        [OUTSIDE_PAIR] = PAIR_OUTSIDE_IPV4,
    };
    double rates[PATHS][ROUNDS];
    char title[160];

    for (int round = 0; round < ROUNDS; round++) {
        for (size_t p = 0; p < PATHS; p++) {
            // Each round starts with another path, so that none is always
            // first after a pause or always last.
            size_t path = (p + (size_t)round) % PATHS;
            if (!measure(t, targets[path], &rates[path][round]))
                return false;
        }
    }
    snprintf(title, sizeof(title),
             "Throughput, iperf3 -t " IPERF_SECONDS
             " (one TCP stream), median of %d runs, %s",
             ROUNDS, bridge_netfilter());
    table_section(title);
    row("guest to guest on `shared`", median(rates[GUESTS_SHARED], ROUNDS),
        median(rates[GUESTS_PAIR], ROUNDS), true);
    row("guest to guest on a bare bridge",
        median(rates[GUESTS_BARE_BRIDGE], ROUNDS),
        median(rates[GUESTS_PAIR], ROUNDS), false);
    row("guest to outside through NAT", median(rates[OUTSIDE_SHARED], ROUNDS),
        median(rates[OUTSIDE_PAIR], ROUNDS), true);
    return true;
}

// The Debian package (and program) the measurement needs and lacks, or NULL.
static const char *missing_package(void) {
    if (!netns_program_exists("iperf3"))
        return "iperf3";
    // The guests take their addresses with busybox's udhcpc.
    if (!netns_program_exists("busybox"))
        return "busybox";
    return NULL;
}

bool bench_throughput(struct bench *bench) {
    struct throughput t = {.servers = {0, 0}, .server_fds = {-1, -1}};
    vmnet_broker_network_t *network = NULL;
    char guest1_address[16];
    char guest2_address[16];
    const char *missing = missing_package();
    bool status = false;

    if (missing != NULL) {
        char why[96];
        snprintf(why, sizeof(why),
                 "skipped: %s not installed (apt-get install %s)", missing,
                 missing);
        table_section("Throughput");
        table_row("guest to guest, guest to outside", why, "", "");
        return true;
    }
    if (vmnet_broker_connect(bench->broker.socket_path, &t.connection) !=
            VMNET_BROKER_SUCCESS ||
        vmnet_broker_connection_acquire(t.connection, "shared", &network) !=
            VMNET_BROKER_SUCCESS)
        goto out;
    if (vmnet_broker_network_bridge(network) == NULL)
        goto out;
    snprintf(t.bridge, sizeof(t.bridge), "%s",
             vmnet_broker_network_bridge(network));
    if (!dhcp_client_init(&t.client) || !make_outside(&t) ||
        !make_guest(&t, &t.guest1, "bg1", guest1_address) ||
        !make_guest(&t, &t.guest2, "bg2", guest2_address) ||
        !make_pair(&t.guest1, "eth1", PAIR_GUEST1_IPV4, &t.guest2, "eth1",
                   PAIR_GUEST2_IPV4) ||
        !make_pair(&t.guest1, "eth2", PAIR_FROM_IPV4, &t.outside, "eth1",
                   PAIR_OUTSIDE_IPV4) ||
        !make_bare_bridge(&t) ||
        !start_server(&t.guest2, &t.servers[0], &t.server_fds[0]) ||
        !start_server(&t.outside, &t.servers[1], &t.server_fds[1]))
        goto out;
    status = measure_paths(&t, guest2_address);
out:
    for (size_t i = 0; i < 2; i++) {
        netns_kill(t.servers[i]);
        if (t.server_fds[i] >= 0)
            close(t.server_fds[i]);
    }
    netns_free(&t.outside);
    netns_free(&t.guest2);
    netns_free(&t.guest1);
    if (t.bare_bridge_made)
        bare_bridge_delete(t.sock, BARE_BRIDGE);
    bare_bridge_socket_free(t.sock);
    dhcp_client_free(&t.client);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(t.connection);
    return status;
}
