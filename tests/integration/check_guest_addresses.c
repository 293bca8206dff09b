// SPDX-License-Identifier: Apache-2.0
// Guest addresses known up front: the interface reply's ipv4 and ipv6 are
// what the guest then gets by DHCP and SLAAC.
#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "harness_topology.h"

static struct harness_broker *broker;
static struct topology *topology;

static void setup(void) {
    broker = harness_test_setup();
    topology = topology_new(broker->dir);
    ck_assert_msg(topology != NULL, "cannot prepare for namespaces");
}

static void teardown(void) {
    topology_free(topology);
    topology = NULL;
    harness_broker_free(broker);
    broker = NULL;
}

static vmnet_broker_interface_t *
open_interface(vmnet_broker_connection_t *connection, const char *name) {
    vmnet_broker_interface_t *iface = NULL;
    vmnet_broker_return_t status =
        vmnet_broker_connection_open_interface(connection, name, &iface);
    ck_assert_msg(status == VMNET_BROKER_SUCCESS,
                  "open_interface '%s': %s (%d)", name,
                  vmnet_broker_strerror(status), (int)status);
    ck_assert_ptr_nonnull(iface);
    return iface;
}

// dnsmasq's own log says when it has read the guests' reservations: once
// at start, once per SIGHUP after each new guest.
static size_t hosts_reads(const char *network) {
    char path[256], line[512];
    size_t n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s/dnsmasq.log", broker->dir, network);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        n += strstr(line, "guests.hosts") != NULL;
    fclose(f);
    return n;
}

#define GUEST_NAME "e2e-announced"

static vmnet_broker_connection_t *leases_connection;
static const char *leases_mac;
// The lease of leases_mac, once lease_listed() found it.
static json_t *found;

static bool lease_listed(void *arg) {
    char *text = NULL;
    json_t *leases;
    json_t *lease;
    size_t i;

    (void)arg;
    if (vmnet_broker_connection_leases(leases_connection, "shared", &text) !=
        VMNET_BROKER_SUCCESS)
        return false;
    leases = json_loads(text, 0, NULL);
    free(text);
    json_array_foreach(leases, i, lease) {
        const char *mac = json_string_value(json_object_get(lease, "mac"));
        if (mac != NULL && strcmp(mac, leases_mac) == 0) {
            found = json_incref(lease);
            break;
        }
    }
    json_decref(leases);
    return found != NULL;
}

static const char *reads_network;
static size_t reads_wanted;

static bool hosts_read(void *arg) {
    (void)arg;
    return hosts_reads(reads_network) >= reads_wanted;
}

// The guest uses the reply's MAC; its lease is the reply's ipv4 and its
// SLAAC address the reply's ipv6.
START_TEST(test_announced_addresses_are_the_guests) {
    vmnet_broker_connection_t *c;
    vmnet_broker_interface_t *iface, *second;
    vmnet_broker_network_t *network = NULL;
    struct topology_lease lease;
    char address[INET6_ADDRSTRLEN];
    struct in6_addr announced, got;
    const char *guest;

    harness_start(broker, "60");
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "shared", &network),
                     VMNET_BROKER_SUCCESS);
    reads_network = "shared";
    reads_wanted = 1;
    ck_assert(harness_wait_for(hosts_read, NULL));
    iface = open_interface(c, "shared");
    second = open_interface(c, "shared");
    ck_assert_ptr_nonnull(vmnet_broker_interface_ipv4(iface));
    ck_assert_ptr_nonnull(vmnet_broker_interface_ipv6(iface));
    // Two guests, two addresses.
    ck_assert_str_ne(vmnet_broker_interface_ipv4(iface),
                     vmnet_broker_interface_ipv4(second));
    ck_assert_str_ne(vmnet_broker_interface_ipv6(iface),
                     vmnet_broker_interface_ipv6(second));
    // The JSON carries them too.
    ck_assert_ptr_nonnull(strstr(vmnet_broker_interface_json(iface), "ipv4"));
    // Each reservation was read by dnsmasq before the guest asks.
    reads_wanted = 3;
    ck_assert(harness_wait_for(hosts_read, NULL));

    guest = topology_add_guest(topology, vmnet_broker_interface_bridge(iface),
                               vmnet_broker_interface_mac(iface));
    ck_assert_ptr_nonnull(guest);
    ck_assert(topology_dhcp(topology, guest, GUEST_NAME, &lease));
    ck_assert_str_eq(lease.address, vmnet_broker_interface_ipv4(iface));

    // The leases command reports it: MAC, the announced address, the name.
    leases_connection = c;
    leases_mac = vmnet_broker_interface_mac(iface);
    ck_assert(harness_wait_for(lease_listed, NULL));
    ck_assert_str_eq(json_string_value(json_object_get(found, "ipv4")),
                     vmnet_broker_interface_ipv4(iface));
    ck_assert_str_eq(json_string_value(json_object_get(found, "hostname")),
                     GUEST_NAME);
    ck_assert_int_gt(json_integer_value(json_object_get(found, "expiry")), 0);
    // Not at the default level.
    ck_assert_int_eq(harness_broker_log_count(broker, "lease new"), 0);
    json_decref(found);
    found = NULL;
    // And the CLI prints it, like virsh net-dhcp-leases.
    {
        const char *argv[] = {VMNET_BROKER_CLIENT_BIN, "leases", "shared",
                              NULL};
        char *output = NULL;
        int wait_status = harness_run(broker, argv, &output);
        ck_assert_msg(wait_status == 0, "leases: %d", wait_status);
        ck_assert_ptr_nonnull(
            strstr(output, vmnet_broker_interface_ipv4(iface)));
        ck_assert_ptr_nonnull(
            strstr(output, vmnet_broker_interface_mac(iface)));
        ck_assert_ptr_nonnull(strstr(output, GUEST_NAME));
        free(output);
    }

    ck_assert(topology_wait_ipv6(guest,
                                 vmnet_broker_network_ipv6_prefix(network),
                                 address, sizeof(address)));
    ck_assert_int_eq(
        inet_pton(AF_INET6, vmnet_broker_interface_ipv6(iface), &announced), 1);
    ck_assert_int_eq(inet_pton(AF_INET6, address, &got), 1);
    ck_assert_mem_eq(&announced, &got, sizeof(got));

    vmnet_broker_interface_free(iface);
    vmnet_broker_interface_free(second);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
    ck_assert(harness_broker_wait_no_peers(broker));
}
END_TEST

// Leases name other users' guests: only peers allowed on the network get
// them, and an unknown network is an error.
static int leases_as_nobody(void *arg) {
    vmnet_broker_connection_t *c = NULL;
    char *text = NULL;
    int result;

    if (vmnet_broker_connect(arg, &c) != VMNET_BROKER_SUCCESS)
        return 100;
    result = (int)vmnet_broker_connection_leases(c, "private", &text);
    free(text);
    vmnet_broker_connection_close(c);
    return result;
}

START_TEST(test_leases_policy) {
    vmnet_broker_connection_t *c;
    char *text = NULL;

    ck_assert(harness_broker_write_config(
        broker, "private", "{\"mode\": \"host\", \"allowed_users\": []}"));
    harness_start(broker, "60");
    ck_assert_int_eq(
        harness_run_unprivileged(leases_as_nobody, (void *)broker->socket_path),
        VMNET_BROKER_NOT_ALLOWED);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_leases(c, "no-such", &text),
                     VMNET_BROKER_NOT_FOUND);
    // Configured, allowed, not running: no lease.
    ck_assert_int_eq(vmnet_broker_connection_leases(c, "private", &text),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(text, "[]");
    free(text);
    vmnet_broker_connection_close(c);
}
END_TEST

// At --verbose the broker logs each lease as a guest takes it (issue 13:
// what virsh users read in libvirt's log); without it, none.
START_TEST(test_leases_logged_at_verbose) {
    const char *verbose[] = {"--verbose", NULL};
    vmnet_broker_connection_t *c;
    vmnet_broker_interface_t *iface;
    struct topology_lease lease;
    char needle[128];
    const char *guest;

    ck_assert_msg(harness_broker_start(broker, "60", verbose),
                  "the broker did not start; log: %s", broker->log_path);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    iface = open_interface(c, "shared");
    guest = topology_add_guest(topology, vmnet_broker_interface_bridge(iface),
                               vmnet_broker_interface_mac(iface));
    ck_assert_ptr_nonnull(guest);
    ck_assert(topology_dhcp(topology, guest, "logged-guest", &lease));
    snprintf(needle, sizeof(needle),
             "network shared: lease new: %s %s 'logged-guest'",
             vmnet_broker_interface_mac(iface), lease.address);
    ck_assert_msg(harness_broker_wait_log(broker, needle, 1), "no '%s' in %s",
                  needle, broker->log_path);
    vmnet_broker_interface_free(iface);
    vmnet_broker_connection_close(c);
}
END_TEST

static Suite *guest_addresses_suite(void) {
    Suite *s = suite_create("guest_addresses");
    TCase *tc = tcase_create("addresses");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_announced_addresses_are_the_guests);
    tcase_add_test(tc, test_leases_policy);
    tcase_add_test(tc, test_leases_logged_at_verbose);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(guest_addresses_suite());
}
