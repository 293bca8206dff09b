// SPDX-License-Identifier: Apache-2.0
// Persistent networks from the config directory, and the MTU a network gets.
#include <check.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static int link_mtu(const char *name) {
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int mtu = -1;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
    if (fd >= 0 && ioctl(fd, SIOCGIFMTU, &ifr) == 0)
        mtu = ifr.ifr_mtu;
    if (fd >= 0)
        close(fd);
    return mtu;
}

static bool link_exists(void *name) { return harness_link_exists(name); }

START_TEST(test_persistent_network_exists_before_any_client) {
    json_t *status, *network;

    ck_assert(harness_broker_write_config(
        broker, "always",
        "{\"mode\": \"host\", \"persistent\": true, \"mtu\": 1400}"));
    harness_start(broker, "0.3");
    // No client has asked for it. The broker answers while it is still
    // being made (its event loop waits for no creation), so wait for it.
    ck_assert(harness_wait_for(link_exists, "vmb-always"));
    ck_assert_int_eq(link_mtu("vmb-always"), 1400);
    status = harness_status(broker);
    network = harness_status_network(status, "always");
    ck_assert_ptr_nonnull(network);
    ck_assert(json_is_true(json_object_get(network, "persistent")));
    ck_assert(json_is_null(json_object_get(network, "idle_remaining")));
    json_decref(status);
}
END_TEST

START_TEST(test_persistent_network_outlives_its_peers) {
    vmnet_broker_connection_t *connection;
    char uuid[37], again[37];

    ck_assert(harness_broker_write_config(
        broker, "always", "{\"mode\": \"shared\", \"persistent\": true}"));
    harness_start(broker, "0.3");
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(harness_acquire(connection, "always", uuid),
                     VMNET_BROKER_SUCCESS);
    vmnet_broker_connection_close(connection);
    ck_assert(harness_broker_wait_no_peers(broker));
    // Far past the idle delay: still the same instance.
    usleep(1200 * 1000);
    ck_assert(harness_link_exists("vmb-always"));
    connection = harness_connect(broker);
    ck_assert_int_eq(harness_acquire(connection, "always", again),
                     VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(again, uuid);
    vmnet_broker_connection_close(connection);
    // Stopping with no peers still removes it.
    ck_assert(harness_broker_wait_no_peers(broker));
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_eq(harness_broker_wait_exit(broker), 0);
    ck_assert(!harness_link_exists("vmb-always"));
}
END_TEST

START_TEST(test_mtu_follows_the_default_route) {
    vmnet_broker_connection_t *connection;
    vmnet_broker_network_t *network = NULL;

    // The namespace's "uplink": a veth with MTU 1450 carrying the default
    // route. The peer end stays in this namespace; nothing leaves it.
    ck_assert_int_eq(
        harness_shell("ip link add up0 mtu 1450 type veth peer name up1 && "
                      "ip link set up0 up && ip link set up1 up && "
                      "ip addr add 198.51.100.2/24 dev up0 && "
                      "ip route add default via 198.51.100.1 dev up0"),
        0);
    harness_start(broker, "0.3");
    connection = harness_connect(broker);
    ck_assert_ptr_nonnull(connection);
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, "shared", &network),
        VMNET_BROKER_SUCCESS);
    ck_assert_uint_eq(vmnet_broker_network_mtu(network), 1450);
    ck_assert_int_eq(link_mtu("vmb-shared"), 1450);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(connection);
}
END_TEST

static Suite *persistent_mtu_suite(void) {
    Suite *s = suite_create("persistent_mtu");
    TCase *tc = tcase_create("persistent_mtu");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_persistent_network_exists_before_any_client);
    tcase_add_test(tc, test_persistent_network_outlives_its_peers);
    tcase_add_test(tc, test_mtu_follows_the_default_route);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(persistent_mtu_suite());
}
