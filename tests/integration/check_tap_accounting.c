// SPDX-License-Identifier: Apache-2.0
// Issue 11, holes 1, 2 and 3: TAP devices count against their user while
// they exist and stay as the broker made them, whatever their holder does.
#include <check.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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

// The device's own address (ip link's), as "xx:xx:xx:xx:xx:xx".
static bool link_address(const char *name, char out[18]) {
    char path[96];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "ip -br link show dev %s | awk '{print $3}'",
             name);
    f = popen(path, "r");
    if (f == NULL)
        return false;
    ok = fscanf(f, "%17s", out) == 1;
    pclose(f);
    return ok;
}

static const char *tampered_name;
static const char *tampered_mac;

static bool address_restored(void *arg) {
    char now[18];
    (void)arg;
    return link_address(tampered_name, now) &&
           strcasecmp(now, tampered_mac) != 0 && strncmp(now, "fe:", 3) == 0;
}

// Writes one Ethernet frame (behind its zeroed virtio_net_hdr) from src to
// dst with a payload of marker.
static void write_frame(int fd, const uint8_t dst[6], const uint8_t src[6],
                        uint32_t marker) {
    uint8_t frame[10 + 14 + 46] = {0};

    memcpy(frame + 10, dst, 6);
    memcpy(frame + 16, src, 6);
    // The IEEE's local experimental EtherType: nothing on the host answers.
    frame[22] = 0x88;
    frame[23] = 0xb5;
    memcpy(frame + 24, &marker, sizeof(marker));
    ck_assert_int_eq(write(fd, frame, sizeof(frame)), (ssize_t)sizeof(frame));
}

// Waits for a frame carrying marker on fd.
static bool read_frame(int fd, uint32_t marker) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    uint8_t frame[2048];

    while (harness_now() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, 200) <= 0)
            continue;
        n = read(fd, frame, sizeof(frame));
        if (n >= 10 + 14 + 4 && frame[22] == 0x88 && frame[23] == 0xb5 &&
            memcmp(frame + 24, &marker, sizeof(marker)) == 0)
            return true;
    }
    return false;
}

static void parse_mac(const char *text, uint8_t mac[6]) {
    unsigned b[6];
    ck_assert_int_eq(sscanf(text, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2],
                            &b[3], &b[4], &b[5]),
                     6);
    for (int i = 0; i < 6; i++)
        mac[i] = (uint8_t)b[i];
}

// Hole 3: a holder sets its TAP's own address to another guest's MAC. The
// broker restores it and logs it with the peer, and the victim still gets
// its frames.
START_TEST(test_changed_tap_mac_is_restored) {
    vmnet_broker_connection_t *attacker_c, *victim_c;
    vmnet_broker_interface_t *attacker, *victim, *sender;
    uint8_t victim_mac[6], sender_mac[6];
    struct ifreq ifr = {0};
    char label[64];

    // Frames of an experimental ethertype between two guests: a network
    // without the anti-spoofing rules, which pass only ARP, IPv4 and IPv6
    // (check_guest_filtering tests those rules).
    ck_assert(harness_broker_write_config(
        broker, "l2", "{\"mode\": \"host\", \"anti_spoofing\": false}"));
    harness_start(broker, "60");
    attacker_c = harness_connect(broker);
    victim_c = harness_connect(broker);
    ck_assert_ptr_nonnull(attacker_c);
    ck_assert_ptr_nonnull(victim_c);
    attacker = open_interface(attacker_c, "l2");
    victim = open_interface(victim_c, "l2");
    sender = open_interface(victim_c, "l2");
    parse_mac(vmnet_broker_interface_mac(victim), victim_mac);
    parse_mac(vmnet_broker_interface_mac(sender), sender_mac);

    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, victim_mac, 6);
    ck_assert_int_eq(
        ioctl(vmnet_broker_interface_fd(attacker), SIOCSIFHWADDR, &ifr), 0);
    tampered_name = vmnet_broker_interface_name(attacker);
    tampered_mac = vmnet_broker_interface_mac(victim);
    ck_assert(harness_wait_for(address_restored, NULL));
    snprintf(label, sizeof(label), "[peer %ld uid 0] interface %s",
             (long)getpid(), tampered_name);
    ck_assert(harness_broker_wait_log(broker, label, 1));
    ck_assert(harness_broker_wait_log(broker, "restored", 1));

    // The bridge keeps no local entry for the victim's MAC: a frame to it
    // reaches the victim, not the host.
    write_frame(vmnet_broker_interface_fd(sender), victim_mac, sender_mac,
                0x11223344);
    ck_assert(read_frame(vmnet_broker_interface_fd(victim), 0x11223344));

    vmnet_broker_interface_free(attacker);
    vmnet_broker_interface_free(victim);
    vmnet_broker_interface_free(sender);
    vmnet_broker_connection_close(attacker_c);
    vmnet_broker_connection_close(victim_c);
}
END_TEST

// The MAC of slot 0 on shared for this user, from the running broker.
static void slot0_mac(char mac[18]) {
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_interface_t *iface;
    char name[IFNAMSIZ];

    ck_assert_ptr_nonnull(c);
    iface = open_interface(c, "shared");
    snprintf(mac, 18, "%s", vmnet_broker_interface_mac(iface));
    snprintf(name, sizeof(name), "%s", vmnet_broker_interface_name(iface));
    vmnet_broker_interface_free(iface);
    vmnet_broker_connection_close(c);
    ck_assert(harness_wait_link_gone(name));
    ck_assert(harness_broker_wait_no_peers(broker));
}

static void restart(void) {
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    harness_start(broker, "60");
}

// Guest MACs are stable for one host's key (kept in the state directory)
// and change with the key: network, uid and slot alone do not give them.
START_TEST(test_mac_keyed_by_host_secret) {
    char first[18], again[18], rekeyed[18], key[128];

    harness_start(broker, "60");
    slot0_mac(first);
    restart();
    slot0_mac(again);
    ck_assert_str_eq(first, again);

    snprintf(key, sizeof(key), "%s/state/mac-key", broker->dir);
    ck_assert_int_eq(unlink(key), 0);
    restart();
    ck_assert_int_eq(access(key, F_OK), 0);
    slot0_mac(rekeyed);
    ck_assert_str_ne(first, rekeyed);
    ck_assert(harness_broker_wait_log(broker, "made a new guest MAC key", 2));
}
END_TEST

// A key file others can read is refused: the broker does not start.
START_TEST(test_readable_key_refused) {
    char key[128];

    harness_start(broker, "60");
    ck_assert(harness_broker_signal(broker, SIGTERM));
    ck_assert_int_ne(harness_broker_wait_exit(broker), -1);
    snprintf(key, sizeof(key), "%s/state/mac-key", broker->dir);
    ck_assert_int_eq(chmod(key, 0644), 0);
    ck_assert(!harness_broker_start(broker, "60", NULL));
    ck_assert(harness_broker_wait_log(broker, "mode 0600", 1));
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
    tcase_add_test(tc, test_changed_tap_mac_is_restored);
    tcase_add_test(tc, test_mac_keyed_by_host_secret);
    tcase_add_test(tc, test_readable_key_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(tap_accounting_suite());
}
