// SPDX-License-Identifier: Apache-2.0
// Cold creation until DHCP answers: acquire of a new `shared` network, then a
// guest's lease on it, vs a bare bridge with dnsmasq started by hand.
#include <net/if.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "vmnet-broker.h"

// The guest's end of its veth pair, and the end left in the bench's own
// namespace (the host), which each trial makes a port of the new bridge.
#define GUEST_LINK "eth0"
#define HOST_LINK "bdhcp0"
// Bare bridges are bare_bridge_create()'s 10.200.INDEX.1/24, clear of the
// cold creation's 1..20; the warm-up's is the first.
#define BARE_INDEX 200

struct lease_times {
    struct samples acquire; // request to reply (bare: bridge and dnsmasq)
    struct samples lease;   // reply to lease
    struct samples total;   // request to lease
};

struct dhcp_creation {
    const struct broker_process *broker;
    struct nl_sock *sock;
    struct dhcp_client client;
    struct netns guest;
    int host_link; // ifindex of HOST_LINK
    struct lease_times made;
    struct lease_times bare;
    // The bare bridge alone, the existing creation baseline.
    struct samples bare_bridge;
};

static void add(struct samples *samples, uint64_t ns) {
    if (samples->n < samples->capacity)
        samples->ns[samples->n++] = ns;
}

static bool lease_times_init(struct lease_times *t) {
    return samples_init(&t->acquire, DHCP_CREATIONS) &&
           samples_init(&t->lease, DHCP_CREATIONS) &&
           samples_init(&t->total, DHCP_CREATIONS);
}

static void lease_times_free(struct lease_times *t) {
    samples_free(&t->acquire);
    samples_free(&t->lease);
    samples_free(&t->total);
}

// The guest exists before any trial, its link up on both ends: a trial
// only makes the host's end a port of the new bridge, as a VM's device
// would become one.
static bool make_guest(struct dhcp_creation *c) {
    if (!netns_new(&c->guest) ||
        !netns_shell(NULL,
                     "ip link add " HOST_LINK " type veth peer name " GUEST_LINK
                     " netns %d && ip link set " HOST_LINK " up",
                     (int)c->guest.holder) ||
        !netns_shell(&c->guest, "ip link set " GUEST_LINK " up") ||
        !netns_wait_link_up(NULL, HOST_LINK) ||
        !netns_wait_link_up(&c->guest, GUEST_LINK))
        return false;
    c->host_link = (int)if_nametoindex(HOST_LINK);
    return c->host_link != 0;
}

// Attaches the guest to bridge and runs its DHCP client: the timed part
// after the network exists. Stores when the lease came.
static bool attach_and_lease(struct dhcp_creation *c, const char *bridge,
                             uint64_t *leased_ns) {
    int bridge_ifindex = (int)if_nametoindex(bridge);
    char address[16];

    return bridge_ifindex != 0 &&
           bare_bridge_set_port(c->sock, c->host_link, bridge_ifindex) &&
           dhcp_client_lease(&c->client, &c->guest, GUEST_LINK, leased_ns,
                             address);
}

// Takes the guest off its bridge and forgets its lease, untimed.
static bool detach(struct dhcp_creation *c) {
    return bare_bridge_set_port(c->sock, c->host_link, 0) &&
           netns_shell(&c->guest, "ip -4 addr flush dev " GUEST_LINK);
}

static void add_times(struct lease_times *t, uint64_t start, uint64_t made,
                      uint64_t leased) {
    add(&t->acquire, made - start);
    add(&t->lease, leased - made);
    add(&t->total, leased - start);
}

// One network of the broker's, made by an acquire on a new connection
// (connected untimed) and left idle afterwards.
static bool broker_trial(struct dhcp_creation *c, const char *name) {
    vmnet_broker_connection_t *connection = NULL;
    vmnet_broker_network_t *network = NULL;
    const char *bridge;
    uint64_t start, made, leased;
    bool status = false;

    // Not in the broker's status yet: this acquire must make it.
    if (broker_process_network_peers(c->broker, name) != -1 ||
        vmnet_broker_connect(c->broker->socket_path, &connection) !=
            VMNET_BROKER_SUCCESS)
        goto out;
    start = bench_now_ns();
    if (vmnet_broker_connection_acquire(connection, name, &network) !=
        VMNET_BROKER_SUCCESS)
        goto out;
    made = bench_now_ns();
    bridge = vmnet_broker_network_bridge(network);
    if (bridge == NULL || !attach_and_lease(c, bridge, &leased))
        goto out;
    add_times(&c->made, start, made, leased);
    status = detach(c);
out:
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
    return status;
}

// The same with a bare bridge and a bare dnsmasq, removed afterwards so
// that the broker sees the same host every time. The warm-up records
// nothing.
static bool bare_trial(struct dhcp_creation *c, unsigned index, bool record) {
    struct bare_dnsmasq dnsmasq = {0};
    char bridge[IFNAMSIZ];
    uint64_t start, bridged, made, leased;
    bool made_bridge;
    bool status = false;

    snprintf(bridge, sizeof(bridge), "bbr%u", index);
    start = bench_now_ns();
    made_bridge = bare_bridge_create(c->sock, bridge, index);
    bridged = bench_now_ns();
    if (!made_bridge || !bare_dnsmasq_start(&dnsmasq, bridge, index))
        goto out;
    made = bench_now_ns();
    if (!attach_and_lease(c, bridge, &leased))
        goto out;
    if (record) {
        add_times(&c->bare, start, made, leased);
        add(&c->bare_bridge, bridged - start);
    }
    status = detach(c);
out:
    bare_dnsmasq_stop(&dnsmasq);
    if (made_bridge && !bare_bridge_delete(c->sock, bridge))
        status = false;
    return status;
}

static double median_ms(const struct samples *samples) {
    return samples_summarize(samples).median_us / 1e3;
}

static void row(const char *metric, const struct samples *value,
                const struct samples *baseline, const char *baseline_name) {
    char value_text[32];
    char baseline_text[64];
    char ratio[32];

    snprintf(value_text, sizeof(value_text), "%.2f ms", median_ms(value));
    snprintf(baseline_text, sizeof(baseline_text), "%.2f ms %s",
             median_ms(baseline), baseline_name);
    table_row(metric, value_text, baseline_text,
              format_ratio(ratio, sizeof(ratio), median_ms(value),
                           median_ms(baseline)));
}

static void rows(const struct dhcp_creation *c, unsigned first) {
    char title[160];

    snprintf(title, sizeof(title),
             "Cold creation until DHCP answers: median of %zu new `shared` "
             "networks (net%u..net%u), a guest's udhcpc",
             c->made.total.n, first, first + DHCP_CREATIONS - 1);
    table_section(title);
    row("acquire of a new network (DHCP ready)", &c->made.acquire,
        &c->bare.acquire, "bridge + dnsmasq");
    row("the same, against the bridge alone", &c->made.acquire, &c->bare_bridge,
        "bare bridge");
    row("acquire -> lease (attach guest, udhcpc)", &c->made.lease,
        &c->bare.lease, "bridge + dnsmasq");
    row("request -> lease", &c->made.total, &c->bare.total, "bridge + dnsmasq");
}

bool bench_network_creation(struct bench *bench) {
    struct dhcp_creation c = {.broker = &bench->broker};
    // The last DHCP_CREATIONS configured networks (bench.h).
    unsigned first = bench->broker.configured + 1 - DHCP_CREATIONS;
    char name[16];
    bool status = false;

    if (!netns_program_exists("busybox")) {
        table_section("Cold creation until DHCP answers");
        table_row("acquire -> lease",
                  "skipped: busybox not installed (apt-get install busybox)",
                  "", "");
        return true;
    }
    c.sock = bare_bridge_socket();
    if (c.sock == NULL || bench->broker.configured < DHCP_CREATIONS ||
        !lease_times_init(&c.made) || !lease_times_init(&c.bare) ||
        !samples_init(&c.bare_bridge, DHCP_CREATIONS) ||
        !dhcp_client_init(&c.client) || !make_guest(&c))
        goto out;
    // Loads busybox, sh and dnsmasq from disk once, for both sides.
    if (!bare_trial(&c, BARE_INDEX, false))
        goto out;
    for (unsigned i = 0; i < DHCP_CREATIONS; i++) {
        snprintf(name, sizeof(name), "net%u", first + i);
        if (!bare_trial(&c, BARE_INDEX + 1 + i, true) ||
            !broker_trial(&c, name))
            goto out;
    }
    rows(&c, first);
    status = true;
out:
    netns_free(&c.guest);
    dhcp_client_free(&c.client);
    samples_free(&c.bare_bridge);
    lease_times_free(&c.bare);
    lease_times_free(&c.made);
    bare_bridge_socket_free(c.sock);
    return status;
}
