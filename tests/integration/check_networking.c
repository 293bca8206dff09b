// SPDX-License-Identifier: Apache-2.0
// End to end: guests in namespaces get DHCP, DNS, IPv6, NAT and isolation.
#include <arpa/inet.h>
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"
// How long a probe that must NOT get through is given. Far longer than an
// answer takes across a bridge, so a broken rule cannot hide behind it; a
// probe that must get through gets HARNESS_WAIT_SECONDS.
#define BLOCKED_SECONDS 2.0
#define OUTSIDE_PORT 8080
#define GUEST_PORT 8081
#define FORWARDED_PORT 18080
#define TEXT(x) #x
#define NUMBER_TEXT(x) TEXT(x)

// A network with a static subnet, a reservation outside its DHCP range and
// a port forward to the reserved address.
#define STATIC_NETWORK "static"
#define STATIC_GATEWAY "192.168.90.1"
#define RESERVED_MAC "52:54:00:e2:e0:01"
#define RESERVED_ADDRESS "192.168.90.10"
#define STATIC_RANGE_START "192.168.90.100"
#define STATIC_RANGE_END "192.168.90.150"
static const char STATIC_CONFIG[] =
    "{\"mode\": \"shared\", \"subnet\": \"" STATIC_GATEWAY "\",\n"
    " \"dhcp_range\": {\"start\": \"" STATIC_RANGE_START
    "\", \"end\": \"" STATIC_RANGE_END "\"},\n"
    " \"dhcp_reservations\": [{\"mac_address\": \"" RESERVED_MAC
    "\", \"ip_address\": \"" RESERVED_ADDRESS "\"}],\n"
    " \"port_forwarding\": [{\"protocol\": \"tcp\", "
    "\"host_port\": " NUMBER_TEXT(
        FORWARDED_PORT) ",\n"
                        "   \"guest_address\": \"" RESERVED_ADDRESS
                        "\", \"guest_port\": " NUMBER_TEXT(GUEST_PORT) "}]}\n";

static struct harness_broker *broker;
static struct topology *topology;
// The test's connection to the broker, which holds what it acquires.
static int connection = -1;

static void setup(void) {
    broker = harness_test_setup();
    topology = topology_new(broker->dir);
    ck_assert_msg(topology != NULL, "cannot prepare for namespaces");
}

static void teardown(void) {
    if (connection >= 0) {
        close(connection);
        connection = -1;
        // Otherwise the broker would ignore the SIGTERM that stops it.
        harness_broker_wait_no_peers(broker);
    }
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

static uint32_t ipv4(const char *text) {
    struct in_addr address;
    ck_assert_msg(inet_pton(AF_INET, text, &address) == 1,
                  "not an IPv4 address: \"%s\"", text);
    return ntohl(address.s_addr);
}

// The network's IPv6 gateway: <prefix>::1.
static void ipv6_gateway(const json_t *network, char *out, size_t size) {
    struct in6_addr address;

    ck_assert_int_eq(inet_pton(AF_INET6,
                               harness_network_field(network, "ipv6_prefix"),
                               &address),
                     1);
    address.s6_addr[15] = 1;
    ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &address, out, (socklen_t)size));
}

static const char *add_outside(void) {
    const char *ns = topology_add_outside(topology);
    ck_assert_msg(ns != NULL, "cannot make the outside namespace");
    return ns;
}

static const char *add_guest(const json_t *network, const char *mac) {
    const char *ns = topology_add_guest(
        topology, harness_network_field(network, "bridge"), mac);
    ck_assert_msg(ns != NULL, "cannot attach a guest to %s",
                  harness_network_field(network, "bridge"));
    return ns;
}

static void dhcp(const char *ns, const char *hostname,
                 struct topology_lease *lease) {
    ck_assert_msg(topology_dhcp(topology, ns, hostname, lease),
                  "guest %s got no DHCP lease (broker log: %s)", ns,
                  broker->log_path);
}

// Asserts that the lease is what the network says it hands out.
static void assert_lease_in_range(const struct topology_lease *lease,
                                  const json_t *network) {
    uint32_t address = ipv4(lease->address);

    ck_assert_msg(
        address >= ipv4(harness_network_field(network, "dhcp_start")) &&
            address <= ipv4(harness_network_field(network, "dhcp_end")),
        "lease %s outside %s-%s", lease->address,
        harness_network_field(network, "dhcp_start"),
        harness_network_field(network, "dhcp_end"));
    ck_assert_uint_eq(lease->prefix_len, json_integer_value(json_object_get(
                                             network, "prefix_length")));
    ck_assert_str_eq(lease->router, harness_network_field(network, "gateway"));
    ck_assert_str_eq(lease->dns, harness_network_field(network, "dns"));
}

static void listen_in(const char *ns, unsigned port,
                      struct topology_listener *listener) {
    ck_assert_msg(topology_listen(ns, port, listener),
                  "cannot listen on port %u in %s", port, ns);
}

// Asserts that the listener's next client comes from expected.
static void assert_client(struct topology_listener *listener,
                          const char *expected) {
    char peer[INET6_ADDRSTRLEN];

    ck_assert_msg(topology_listener_peer(listener, HARNESS_WAIT_SECONDS, peer,
                                         sizeof(peer)),
                  "the listener reported no client");
    ck_assert_str_eq(peer, expected);
}

static void assert_no_client(struct topology_listener *listener) {
    char peer[INET6_ADDRSTRLEN];

    ck_assert_msg(!topology_listener_peer(listener, 0, peer, sizeof(peer)),
                  "the listener had a client from %s", peer);
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_shared_guest_gets_lease_and_reaches_outside_through_nat) {
    struct topology_listener listener;
    struct topology_lease lease;
    const char *outside;
    const char *guest;
    json_t *network;

    harness_start(broker, IDLE);
    outside = add_outside();
    network = acquire("shared");
    guest = add_guest(network, NULL);

    dhcp(guest, NULL, &lease);
    assert_lease_in_range(&lease, network);
    ck_assert(topology_ping(guest, harness_network_field(network, "gateway"),
                            HARNESS_WAIT_SECONDS));

    // The outside has a route back to the guest, so only masquerade makes
    // the host's address the source.
    listen_in(outside, OUTSIDE_PORT, &listener);
    ck_assert(topology_connect(guest, TOPOLOGY_OUTSIDE_IPV4, OUTSIDE_PORT,
                               HARNESS_WAIT_SECONDS));
    assert_client(&listener, TOPOLOGY_HOST_IPV4);
    topology_listener_stop(&listener);
    json_decref(network);
}
END_TEST

START_TEST(test_shared_guests_reach_each_other) {
    struct topology_listener listener;
    struct topology_lease first_lease, second_lease;
    const char *first;
    const char *second;
    json_t *network;

    harness_start(broker, IDLE);
    network = acquire("shared");
    first = add_guest(network, NULL);
    second = add_guest(network, NULL);
    dhcp(first, NULL, &first_lease);
    dhcp(second, NULL, &second_lease);
    assert_lease_in_range(&second_lease, network);
    ck_assert_str_ne(first_lease.address, second_lease.address);

    ck_assert(topology_ping(first, second_lease.address, HARNESS_WAIT_SECONDS));
    ck_assert(topology_ping(second, first_lease.address, HARNESS_WAIT_SECONDS));
    // Switched by the bridge, never NATed: the real source arrives.
    listen_in(second, GUEST_PORT, &listener);
    ck_assert(topology_connect(first, second_lease.address, GUEST_PORT,
                               HARNESS_WAIT_SECONDS));
    assert_client(&listener, first_lease.address);
    topology_listener_stop(&listener);
    json_decref(network);
}
END_TEST

START_TEST(test_shared_guest_gets_ipv6_and_reaches_outside_through_nat66) {
    struct topology_listener listener;
    char gateway6[INET6_ADDRSTRLEN];
    char address[INET6_ADDRSTRLEN];
    const char *outside;
    const char *guest;
    json_t *network;

    harness_start(broker, IDLE);
    outside = add_outside();
    network = acquire("shared");
    ck_assert_int_eq(
        json_integer_value(json_object_get(network, "ipv6_prefix_length")), 64);
    guest = add_guest(network, NULL);

    ck_assert_msg(
        topology_wait_ipv6(guest, harness_network_field(network, "ipv6_prefix"),
                           address, sizeof(address)),
        "no SLAAC address from %s/64 in %s",
        harness_network_field(network, "ipv6_prefix"), guest);
    ipv6_gateway(network, gateway6, sizeof(gateway6));
    ck_assert(topology_ping(guest, gateway6, HARNESS_WAIT_SECONDS));

    listen_in(outside, OUTSIDE_PORT, &listener);
    ck_assert(topology_connect(guest, TOPOLOGY_OUTSIDE_IPV6, OUTSIDE_PORT,
                               HARNESS_WAIT_SECONDS));
    assert_client(&listener, TOPOLOGY_HOST_IPV6);
    topology_listener_stop(&listener);
    json_decref(network);
}
END_TEST

START_TEST(test_guest_resolves_names_through_gateway) {
    struct topology_lease named_lease, asking_lease;
    char expected[64];
    char *output = NULL;
    const char *named;
    const char *asking;
    json_t *network;
    int code;

    harness_start(broker, IDLE);
    network = acquire("shared");
    named = add_guest(network, NULL);
    asking = add_guest(network, NULL);
    // dnsmasq answers for the names its DHCP clients announce.
    dhcp(named, "e2e-named", &named_lease);
    dhcp(asking, NULL, &asking_lease);

    const char *argv[] = {"busybox", "nslookup", "e2e-named", asking_lease.dns,
                          NULL};
    code = topology_run(asking, argv, HARNESS_WAIT_SECONDS, &output);
    snprintf(expected, sizeof(expected), "Address: %s\n", named_lease.address);
    ck_assert_msg(code == 0 && strstr(output, expected) != NULL,
                  "nslookup through %s (exit %d) did not answer %s: %s",
                  asking_lease.dns, code, named_lease.address, output);
    free(output);
    json_decref(network);
}
END_TEST

START_TEST(test_host_guest_reaches_gateway_but_not_outside) {
    struct topology_listener listener;
    struct topology_lease lease, shared_lease;
    char address[INET6_ADDRSTRLEN];
    const char *outside;
    const char *guest;
    const char *shared_guest;
    json_t *host;
    json_t *shared;

    harness_start(broker, IDLE);
    outside = add_outside();
    // With a shared network up the host forwards: only the rules of the
    // host network can keep its guest in.
    shared = acquire("shared");
    host = acquire("host");
    guest = add_guest(host, NULL);
    shared_guest = add_guest(shared, NULL);
    dhcp(guest, NULL, &lease);
    assert_lease_in_range(&lease, host);
    ck_assert(topology_ping(guest, harness_network_field(host, "gateway"),
                            HARNESS_WAIT_SECONDS));
    ck_assert_msg(topology_wait_ipv6(guest,
                                     harness_network_field(host, "ipv6_prefix"),
                                     address, sizeof(address)),
                  "no SLAAC address from %s/64 in %s",
                  harness_network_field(host, "ipv6_prefix"), guest);

    listen_in(outside, OUTSIDE_PORT, &listener);
    ck_assert(!topology_connect(guest, TOPOLOGY_OUTSIDE_IPV4, OUTSIDE_PORT,
                                BLOCKED_SECONDS));
    ck_assert(!topology_connect(guest, TOPOLOGY_OUTSIDE_IPV6, OUTSIDE_PORT,
                                BLOCKED_SECONDS));
    ck_assert(!topology_ping(guest, TOPOLOGY_OUTSIDE_IPV4, BLOCKED_SECONDS));
    assert_no_client(&listener);

    // The same outside is reachable from the shared network meanwhile.
    dhcp(shared_guest, NULL, &shared_lease);
    ck_assert(topology_connect(shared_guest, TOPOLOGY_OUTSIDE_IPV4,
                               OUTSIDE_PORT, HARNESS_WAIT_SECONDS));
    assert_client(&listener, TOPOLOGY_HOST_IPV4);
    topology_listener_stop(&listener);
    json_decref(shared);
    json_decref(host);
}
END_TEST

START_TEST(test_guests_of_different_networks_are_isolated) {
    // Two shared networks (each forwards to anywhere but the other) and a
    // host one.
    static const char *const names[] = {"shared", "other", "host"};
    enum { N = sizeof(names) / sizeof(names[0]) };
    struct topology_listener listeners[N];
    struct topology_lease leases[N];
    pid_t probes[N][N];
    const char *guests[N];
    json_t *networks[N];

    ck_assert(
        harness_broker_write_config(broker, "other", "{\"mode\": \"shared\"}"));
    harness_start(broker, IDLE);
    for (size_t i = 0; i < N; i++) {
        networks[i] = acquire(names[i]);
        guests[i] = add_guest(networks[i], NULL);
    }
    for (size_t i = 0; i < N; i++) {
        dhcp(guests[i], NULL, &leases[i]);
        ck_assert(topology_ping(guests[i],
                                harness_network_field(networks[i], "gateway"),
                                HARNESS_WAIT_SECONDS));
        listen_in(guests[i], GUEST_PORT, &listeners[i]);
    }

    // Every blocked probe waits out its time, so they run together.
    for (size_t from = 0; from < N; from++) {
        for (size_t to = 0; to < N; to++) {
            if (from != to)
                probes[from][to] =
                    topology_connect_start(guests[from], leases[to].address,
                                           GUEST_PORT, BLOCKED_SECONDS);
        }
    }
    for (size_t from = 0; from < N; from++) {
        for (size_t to = 0; to < N; to++) {
            if (from == to)
                continue;
            ck_assert_int_gt(probes[from][to], 0);
            ck_assert_msg(
                !topology_connect_wait(probes[from][to], BLOCKED_SECONDS),
                "a guest of %s connected to a guest of %s", names[from],
                names[to]);
        }
    }
    ck_assert_msg(
        !topology_ping(guests[0], leases[N - 1].address, BLOCKED_SECONDS),
        "a guest of %s pinged a guest of %s", names[0], names[N - 1]);
    // The listeners do answer: the host reaches every guest directly, from
    // its address on that guest's bridge.
    for (size_t i = 0; i < N; i++) {
        assert_no_client(&listeners[i]);
        ck_assert(topology_connect(NULL, leases[i].address, GUEST_PORT,
                                   HARNESS_WAIT_SECONDS));
        assert_client(&listeners[i],
                      harness_network_field(networks[i], "gateway"));
        topology_listener_stop(&listeners[i]);
        json_decref(networks[i]);
    }
}
END_TEST

START_TEST(test_dhcp_reservation_is_honoured) {
    struct topology_lease reserved_lease, other_lease;
    const char *reserved;
    const char *other;
    json_t *network;

    ck_assert(
        harness_broker_write_config(broker, STATIC_NETWORK, STATIC_CONFIG));
    harness_start(broker, IDLE);
    network = acquire(STATIC_NETWORK);
    ck_assert_str_eq(harness_network_field(network, "dhcp_start"),
                     STATIC_RANGE_START);
    ck_assert_str_eq(harness_network_field(network, "dhcp_end"),
                     STATIC_RANGE_END);
    reserved = add_guest(network, RESERVED_MAC);
    other = add_guest(network, NULL);

    // Outside the range: only the reservation can have handed it out.
    dhcp(reserved, NULL, &reserved_lease);
    ck_assert_str_eq(reserved_lease.address, RESERVED_ADDRESS);
    ck_assert_str_eq(reserved_lease.router, STATIC_GATEWAY);
    dhcp(other, NULL, &other_lease);
    assert_lease_in_range(&other_lease, network);
    json_decref(network);
}
END_TEST

START_TEST(test_port_forward_reaches_guest) {
    struct topology_listener listener;
    struct topology_lease lease;
    const char *outside;
    const char *guest;
    json_t *network;

    ck_assert(
        harness_broker_write_config(broker, STATIC_NETWORK, STATIC_CONFIG));
    harness_start(broker, IDLE);
    outside = add_outside();
    network = acquire(STATIC_NETWORK);
    guest = add_guest(network, RESERVED_MAC);
    dhcp(guest, NULL, &lease);
    ck_assert_str_eq(lease.address, RESERVED_ADDRESS);

    listen_in(guest, GUEST_PORT, &listener);
    // A port that is not forwarded stays closed.
    ck_assert(!topology_connect(outside, TOPOLOGY_HOST_IPV4, FORWARDED_PORT + 1,
                                BLOCKED_SECONDS));
    ck_assert(topology_connect(outside, TOPOLOGY_HOST_IPV4, FORWARDED_PORT,
                               HARNESS_WAIT_SECONDS));
    // Destination NAT only: the guest sees the real client.
    assert_client(&listener, TOPOLOGY_OUTSIDE_IPV4);
    topology_listener_stop(&listener);
    json_decref(network);
}
END_TEST

static Suite *networking_suite(void) {
    Suite *s = suite_create("networking");
    TCase *tc = tcase_create("networking");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(
        tc, test_shared_guest_gets_lease_and_reaches_outside_through_nat);
    tcase_add_test(tc, test_shared_guests_reach_each_other);
    tcase_add_test(
        tc, test_shared_guest_gets_ipv6_and_reaches_outside_through_nat66);
    tcase_add_test(tc, test_guest_resolves_names_through_gateway);
    tcase_add_test(tc, test_host_guest_reaches_gateway_but_not_outside);
    tcase_add_test(tc, test_guests_of_different_networks_are_isolated);
    tcase_add_test(tc, test_dhcp_reservation_is_honoured);
    tcase_add_test(tc, test_port_forward_reaches_guest);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(networking_suite());
}
