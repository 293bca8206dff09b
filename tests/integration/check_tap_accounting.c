// SPDX-License-Identifier: Apache-2.0
// Issue 11, holes 1 and 2: TAP devices count against their user while they
// exist, whatever their connection and their holder do.
#include <check.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "harness.h"

// The most interfaces one connection, and one user, may have alive at once
// (docs/protocol.md).
#define CONNECTION_MAX 16
#define USER_MAX 64

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
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

static bool no_taps(void *arg) {
    (void)arg;
    return harness_count_links("vmt-") == 0;
}

// Hole 1: open 16, keep the descriptors, close the connection, again. The
// fifth round must be refused: the user holds 64 live devices, and no MAC
// was handed out twice.
START_TEST(test_reconnect_and_hold_is_counted) {
    vmnet_broker_interface_t *held[USER_MAX];
    vmnet_broker_interface_t *out = NULL;
    vmnet_broker_connection_t *c;
    char name[IFNAMSIZ];
    size_t n = 0;

    harness_start(broker, "60");
    for (int round = 0; round < USER_MAX / CONNECTION_MAX; round++) {
        c = harness_connect(broker);
        ck_assert_ptr_nonnull(c);
        for (int i = 0; i < CONNECTION_MAX; i++)
            held[n++] = open_interface(c, "shared");
        vmnet_broker_connection_close(c);
    }
    ck_assert_uint_eq(harness_count_links("vmt-"), USER_MAX);
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++)
            ck_assert_msg(strcmp(vmnet_broker_interface_mac(held[i]),
                                 vmnet_broker_interface_mac(held[j])) != 0,
                          "MAC %s handed out twice",
                          vmnet_broker_interface_mac(held[i]));
    }

    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", &out),
                     VMNET_BROKER_INTERNAL_ERROR);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(harness_count_links("vmt-"), USER_MAX);
    ck_assert(harness_broker_wait_log(broker, "64 for this user", 1));

    // A device whose holder lets it go frees its place, and the new one gets
    // the freed MAC back (the lowest free slot).
    snprintf(name, sizeof(name), "%s", vmnet_broker_interface_name(held[0]));
    char mac[18];
    snprintf(mac, sizeof(mac), "%s", vmnet_broker_interface_mac(held[0]));
    vmnet_broker_interface_free(held[0]);
    ck_assert(harness_wait_link_gone(name));
    held[0] = open_interface(c, "shared");
    ck_assert_str_eq(vmnet_broker_interface_mac(held[0]), mac);

    vmnet_broker_connection_close(c);
    for (size_t i = 0; i < n; i++)
        vmnet_broker_interface_free(held[i]);
    ck_assert(harness_wait_for(no_taps, NULL));
}
END_TEST

// Opens an interface on a connection of its own, makes the device
// persistent through its descriptor (as any holder can), closes the
// descriptor and the connection, and returns the device's name in name.
static void leave_persistent_device(char name[IFNAMSIZ]) {
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_interface_t *iface;

    ck_assert_ptr_nonnull(c);
    iface = open_interface(c, "shared");
    snprintf(name, IFNAMSIZ, "%s", vmnet_broker_interface_name(iface));
    ck_assert_int_eq(
        ioctl(vmnet_broker_interface_fd(iface), TUNSETPERSIST, 1UL), 0);
    vmnet_broker_interface_free(iface);
    vmnet_broker_connection_close(c);
    // The device outlives its descriptor and its connection.
    ck_assert(harness_broker_wait_no_peers(broker));
    ck_assert(harness_link_exists(name));
}

// Hole 2: a persistent device is deleted with its network.
START_TEST(test_persistent_device_gone_with_network) {
    char name[IFNAMSIZ];

    harness_start(broker, "1");
    leave_persistent_device(name);
    ck_assert(
        harness_broker_wait_log(broker, "network 'shared' is removed", 1));
    ck_assert(harness_wait_link_gone(name));
    ck_assert(harness_broker_wait_log(broker, name, 2));
}
END_TEST

// Hole 2: a persistent device left by a broker that was killed is deleted
// when the next one starts.
START_TEST(test_persistent_device_gone_after_restart) {
    char name[IFNAMSIZ];

    harness_start(broker, "60");
    leave_persistent_device(name);
    ck_assert(harness_broker_signal(broker, SIGKILL));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    ck_assert(harness_link_exists(name));
    harness_start(broker, "60");
    ck_assert(harness_wait_link_gone(name));
    ck_assert(harness_broker_wait_log(broker, "left by a previous broker", 1));
}
END_TEST

// A persistent device counts against its user until it is deleted.
START_TEST(test_persistent_device_counts) {
    char name[IFNAMSIZ];
    vmnet_broker_interface_t *held[USER_MAX];
    vmnet_broker_interface_t *out = NULL;
    vmnet_broker_connection_t *c;
    size_t n = 0;

    harness_start(broker, "60");
    leave_persistent_device(name);
    for (int round = 0; n < USER_MAX - 1; round++) {
        c = harness_connect(broker);
        ck_assert_ptr_nonnull(c);
        for (int i = 0; i < CONNECTION_MAX && n < USER_MAX - 1; i++)
            held[n++] = open_interface(c, "shared");
        vmnet_broker_connection_close(c);
    }
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", &out),
                     VMNET_BROKER_INTERNAL_ERROR);
    vmnet_broker_connection_close(c);
    for (size_t i = 0; i < n; i++)
        vmnet_broker_interface_free(held[i]);
    ck_assert(harness_link_exists(name));
}
END_TEST

static Suite *tap_accounting_suite(void) {
    Suite *s = suite_create("tap_accounting");
    TCase *tc = tcase_create("holes");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 180);
    tcase_add_test(tc, test_reconnect_and_hold_is_counted);
    tcase_add_test(tc, test_persistent_device_gone_with_network);
    tcase_add_test(tc, test_persistent_device_gone_after_restart);
    tcase_add_test(tc, test_persistent_device_counts);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(tap_accounting_suite());
}
