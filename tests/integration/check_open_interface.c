// SPDX-License-Identifier: Apache-2.0
// open_interface: TAP devices on a network's bridge, their descriptors
// passed to the client, through the library, the raw protocol and the CLI.
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define IDLE "60"
#define CLI VMNET_BROKER_CLIENT_BIN
// The most interfaces a connection may have alive at once (docs/protocol.md).
#define INTERFACES_MAX 16
// struct virtio_net_hdr: what IFF_VNET_HDR puts before every frame.
#define VNET_HDR_LEN 10
#define ETH_HDR_LEN 14
#define ARP_LEN 28
// Offsets into an Ethernet frame carrying an ARP packet for IPv4.
#define FRAME_ETHERTYPE 12
#define FRAME_ARP_OP (ETH_HDR_LEN + 6)
#define FRAME_ARP_SHA (ETH_HDR_LEN + 8)
#define FRAME_ARP_SPA (ETH_HDR_LEN + 14)
#define FRAME_ARP_THA (ETH_HDR_LEN + 18)
#define FRAME_ARP_TPA (ETH_HDR_LEN + 24)
// Where the test's pretend guest sits in the network's subnet.
#define GUEST_HOST_PART 200

static struct harness_broker *broker;

static void setup(void) { broker = harness_test_setup(); }

static void teardown(void) {
    harness_broker_free(broker);
    broker = NULL;
}

static bool exited_with(int wait_status, int code) {
    return wait_status != -1 && WIFEXITED(wait_status) &&
           WEXITSTATUS(wait_status) == code;
}

// ---- Local helpers
// -----------------------------------------------------------

// Open descriptors of this process (the directory's own included, the same
// every time), or SIZE_MAX if they cannot be listed.
static size_t count_open_fds(void) {
    DIR *dir = opendir("/proc/self/fd");
    size_t count = 0;
    struct dirent *entry;

    if (dir == NULL)
        return SIZE_MAX;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] != '.')
            count++;
    }
    closedir(dir);
    return count;
}

// Reads /sys/class/net/<link>/<attribute> (the harness mounted this
// namespace's sysfs) into buf without its newline; false if unreadable.
static bool read_link_attribute(const char *link, const char *attribute,
                                char *buf, size_t size) {
    char path[PATH_MAX];
    FILE *f;
    bool ok;

    snprintf(path, sizeof(path), "/sys/class/net/%s/%s", link, attribute);
    f = fopen(path, "r");
    if (f == NULL)
        return false;
    ok = fgets(buf, (int)size, f) != NULL;
    fclose(f);
    buf[ok ? strcspn(buf, "\n") : 0] = '\0';
    return ok;
}

// The numeric value of a link attribute (owner, group, mtu), or -2 when it
// cannot be read (a TAP without an owner reads -1).
static long link_number(const char *link, const char *attribute) {
    char text[32];
    if (!read_link_attribute(link, attribute, text, sizeof(text)))
        return -2;
    return strtol(text, NULL, 10);
}

// True if link is a port of bridge.
static bool link_master_is(const char *link, const char *bridge) {
    char path[PATH_MAX];
    char target[PATH_MAX];
    ssize_t n;

    snprintf(path, sizeof(path), "/sys/class/net/%s/master", link);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return strcmp(basename(target), bridge) == 0;
}

static bool parse_mac(const char *text, uint8_t mac[6]) {
    return text != NULL &&
           sscanf(text, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx", &mac[0], &mac[1],
                  &mac[2], &mac[3], &mac[4], &mac[5]) == 6;
}

// Where a guest of network could live: its subnet's GUEST_HOST_PART.
// The guest's address: the one the interface reply reserved for it (the
// broker's anti-spoofing rules drop ARP from any other), else a fixed host
// part of the subnet.
static bool guest_address(const vmnet_broker_network_t *network,
                          const vmnet_broker_interface_t *iface,
                          struct in_addr *guest, struct in_addr *gateway) {
    const char *subnet_text = vmnet_broker_network_subnet(network);
    const char *gateway_text = vmnet_broker_network_gateway(network);
    const char *reserved = vmnet_broker_interface_ipv4(iface);
    struct in_addr subnet;

    if (subnet_text == NULL || gateway_text == NULL ||
        inet_pton(AF_INET, subnet_text, &subnet) != 1 ||
        inet_pton(AF_INET, gateway_text, gateway) != 1)
        return false;
    if (reserved != NULL)
        return inet_pton(AF_INET, reserved, guest) == 1;
    guest->s_addr = htonl(ntohl(subnet.s_addr) + GUEST_HOST_PART);
    return true;
}

// A broadcast ARP request from mac/guest for gateway, behind the zeroed
// virtio_net_hdr that IFF_VNET_HDR expects before every frame.
static void build_arp_request(uint8_t *packet, const uint8_t mac[6],
                              struct in_addr guest, struct in_addr gateway) {
    static const uint8_t arp_ipv4_request[8] = {0, 1, 8, 0, 6, 4, 0, 1};
    uint8_t *frame = packet + VNET_HDR_LEN;

    memset(packet, 0, VNET_HDR_LEN + ETH_HDR_LEN + ARP_LEN);
    memset(frame, 0xff, 6);
    memcpy(frame + 6, mac, 6);
    frame[FRAME_ETHERTYPE] = 0x08;
    frame[FRAME_ETHERTYPE + 1] = 0x06;
    memcpy(frame + ETH_HDR_LEN, arp_ipv4_request, sizeof(arp_ipv4_request));
    memcpy(frame + FRAME_ARP_SHA, mac, 6);
    memcpy(frame + FRAME_ARP_SPA, &guest, 4);
    memcpy(frame + FRAME_ARP_TPA, &gateway, 4);
}

// True if packet (as read from the TAP) is gateway's ARP reply to mac/guest.
static bool is_arp_reply(const uint8_t *packet, ssize_t len,
                         const uint8_t mac[6], struct in_addr guest,
                         struct in_addr gateway) {
    const uint8_t *frame = packet + VNET_HDR_LEN;

    return len >= VNET_HDR_LEN + ETH_HDR_LEN + ARP_LEN &&
           memcmp(frame, mac, 6) == 0 && frame[FRAME_ETHERTYPE] == 0x08 &&
           frame[FRAME_ETHERTYPE + 1] == 0x06 && frame[FRAME_ARP_OP] == 0 &&
           frame[FRAME_ARP_OP + 1] == 2 &&
           memcmp(frame + FRAME_ARP_SPA, &gateway, 4) == 0 &&
           memcmp(frame + FRAME_ARP_THA, mac, 6) == 0 &&
           memcmp(frame + FRAME_ARP_TPA, &guest, 4) == 0;
}

// Asks for the gateway's address through iface's TAP descriptor as its
// guest would, and waits for the answer among whatever else arrives (IPv6
// chatter, DHCP), asking again each second (a request sent while the port
// was still learning may be lost). True once the reply is read. No Check
// assertions: an unprivileged child uses it too.
static bool arp_gateway(const vmnet_broker_interface_t *iface,
                        const vmnet_broker_network_t *network) {
    uint8_t request[VNET_HDR_LEN + ETH_HDR_LEN + ARP_LEN];
    uint8_t packet[65536];
    uint8_t mac[6];
    struct in_addr guest, gateway;
    int fd = vmnet_broker_interface_fd(iface);
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    double next_request = 0;

    if (!parse_mac(vmnet_broker_interface_mac(iface), mac) ||
        !guest_address(network, iface, &guest, &gateway))
        return false;
    build_arp_request(request, mac, guest, gateway);
    while (harness_now() < deadline) {
        if (harness_now() >= next_request) {
            if (write(fd, request, sizeof(request)) != (ssize_t)sizeof(request))
                return false;
            next_request = harness_now() + 1.0;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, 100);
        if (ready < 0 && errno != EINTR)
            return false;
        if (ready <= 0)
            continue;
        ssize_t n = read(fd, packet, sizeof(packet));
        if (n < 0)
            return false;
        if (is_arp_reply(packet, n, mac, guest, gateway))
            return true;
    }
    return false;
}

static vmnet_broker_interface_t *
open_interface(vmnet_broker_connection_t *connection, const char *name) {
    vmnet_broker_interface_t *interface = NULL;
    vmnet_broker_return_t status =
        vmnet_broker_connection_open_interface(connection, name, &interface);
    ck_assert_msg(status == VMNET_BROKER_SUCCESS,
                  "open_interface '%s': %s (%d)", name,
                  vmnet_broker_strerror(status), (int)status);
    ck_assert_ptr_nonnull(interface);
    return interface;
}

static vmnet_broker_network_t *acquire(vmnet_broker_connection_t *connection,
                                       const char *name) {
    vmnet_broker_network_t *network = NULL;
    ck_assert_int_eq(
        vmnet_broker_connection_acquire(connection, name, &network),
        VMNET_BROKER_SUCCESS);
    return network;
}

static bool no_taps(void *arg) {
    (void)arg;
    return harness_count_links("vmt-") == 0;
}

static bool shared_unused(void *arg) {
    (void)arg;
    return harness_network_peers(broker, "shared") == 0;
}

// Receives one datagram with room for several descriptors, stores the
// number that came in *n_fds (closing them) and returns the parsed reply.
static json_t *raw_receive_counting_fds(int socket_fd, size_t *n_fds) {
    char data[4096];
    union {
        struct cmsghdr header;
        char buffer[CMSG_SPACE(4 * sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buffer,
                         .msg_controllen = sizeof(control.buffer)};
    struct pollfd p = {.fd = socket_fd, .events = POLLIN};
    ssize_t n;

    *n_fds = 0;
    if (poll(&p, 1, (int)(HARNESS_WAIT_SECONDS * 1000)) != 1)
        return NULL;
    n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
    if (n <= 0)
        return NULL;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL;
         c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            close(fd);
            (*n_fds)++;
        }
    }
    return json_loadb(data, (size_t)n, 0, NULL);
}

// ---- The library
// -------------------------------------------------------------

START_TEST(test_descriptor_and_device) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_interface_t *interface;
    const char *name;
    struct ifreq ifr;
    json_t *object;
    json_t *status;
    int fd;

    ck_assert_ptr_nonnull(c);
    // No acquire first: open_interface acquires the network itself.
    interface = open_interface(c, "shared");
    name = vmnet_broker_interface_name(interface);
    fd = vmnet_broker_interface_fd(interface);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_msg(name != NULL && strncmp(name, "vmt-", 4) == 0, "name %s",
                  name);

    // The descriptor is the device, in the form QEMU's vhost=on probes for.
    memset(&ifr, 0, sizeof(ifr));
    ck_assert_int_eq(ioctl(fd, TUNGETIFF, &ifr), 0);
    ck_assert_str_eq(ifr.ifr_name, name);
    ck_assert_int_eq(ifr.ifr_flags &
                         (IFF_TAP | IFF_TUN | IFF_NO_PI | IFF_VNET_HDR),
                     IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);

    // A port of the network's bridge, up, owned by the peer (root here),
    // with the bridge's MTU.
    ck_assert(harness_link_exists(name));
    ck_assert(harness_link_is_up(name));
    ck_assert_msg(link_master_is(name, "vmb-shared"), "%s not on vmb-shared",
                  name);
    ck_assert_int_eq(link_number(name, "owner"), 0);
    ck_assert_int_eq(link_number(name, "group"), 0);
    ck_assert_uint_gt(vmnet_broker_interface_mtu(interface), 0);
    ck_assert_int_eq(link_number(name, "mtu"),
                     (long)vmnet_broker_interface_mtu(interface));
    ck_assert_int_eq(link_number("vmb-shared", "mtu"),
                     (long)vmnet_broker_interface_mtu(interface));

    // The guest's MAC: locally administered unicast, not the device's own.
    ck_assert_msg(strncmp(vmnet_broker_interface_mac(interface), "02:76:", 6) ==
                      0,
                  "mac %s", vmnet_broker_interface_mac(interface));
    object = json_loads(vmnet_broker_interface_json(interface), 0, NULL);
    ck_assert_ptr_nonnull(object);
    ck_assert_str_eq(json_string_value(json_object_get(object, "name")), name);
    ck_assert_str_eq(json_string_value(json_object_get(object, "mac")),
                     vmnet_broker_interface_mac(interface));
    ck_assert_str_eq(json_string_value(json_object_get(object, "network")),
                     "shared");
    ck_assert_str_eq(json_string_value(json_object_get(object, "bridge")),
                     "vmb-shared");
    json_decref(object);

    status = harness_status(broker);
    ck_assert(harness_status_pid_holds(status, getpid(), "shared"));
    json_decref(status);
    vmnet_broker_interface_free(interface);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_arp_through_descriptor) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *network;
    vmnet_broker_interface_t *interface;

    ck_assert_ptr_nonnull(c);
    network = acquire(c, "shared");
    interface = open_interface(c, "shared");
    ck_assert_msg(arp_gateway(interface, network),
                  "no ARP reply from %s through %s",
                  vmnet_broker_network_gateway(network),
                  vmnet_broker_interface_name(interface));
    vmnet_broker_interface_free(interface);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

// What QEMU does to a "-netdev tap,fd=N" descriptor before use, without
// privileges of its own: probe the vnet header, set offloads and the header
// size of virtio 1.0.
static bool qemu_setup_works(int fd) {
    struct ifreq ifr = {0};
    unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    int header_len = 12;

    return ioctl(fd, TUNGETIFF, &ifr) == 0 &&
           (ifr.ifr_flags & IFF_VNET_HDR) != 0 &&
           ioctl(fd, TUNSETOFFLOAD, offloads) == 0 &&
           ioctl(fd, TUNSETVNETHDRSZ, &header_len) == 0;
}

// As nobody: opens an interface, checks its owner and uses it. 0, or which
// step failed (1 to 7: the library's status).
static int open_as_nobody(void *arg) {
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_network_t *network = NULL;
    vmnet_broker_interface_t *interface = NULL;
    const char *name;
    int result;

    (void)arg;
    if (c == NULL)
        return 100;
    result = (int)vmnet_broker_connection_acquire(c, "shared", &network);
    if (result != VMNET_BROKER_SUCCESS)
        goto out;
    result =
        (int)vmnet_broker_connection_open_interface(c, "shared", &interface);
    if (result != VMNET_BROKER_SUCCESS)
        goto out;
    name = vmnet_broker_interface_name(interface);
    if (name == NULL || !link_master_is(name, "vmb-shared"))
        result = 101;
    else if (link_number(name, "owner") != HARNESS_NOBODY)
        result = 102;
    else if (link_number(name, "group") != HARNESS_NOBODY)
        result = 103;
    else if (!arp_gateway(interface, network))
        result = 104;
    else if (!qemu_setup_works(vmnet_broker_interface_fd(interface)))
        result = 105;
out:
    vmnet_broker_interface_free(interface);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
    return result;
}

START_TEST(test_unprivileged_peer_owns_its_device) {
    harness_start(broker, IDLE);
    int result = harness_run_unprivileged(open_as_nobody, NULL);

    ck_assert_msg(result == 0,
                  "unprivileged open_interface failed at step %d (101: not "
                  "on the bridge, 102/103: owner/group not %d, 104: no ARP "
                  "reply, 105: QEMU's ioctls refused)",
                  result, HARNESS_NOBODY);
    // Its descriptor died with it, and the device with the descriptor.
    ck_assert(harness_wait_for(no_taps, NULL));
}
END_TEST

START_TEST(test_closing_descriptor_removes_device) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_interface_t *first, *second;
    char first_name[IFNAMSIZ], first_mac[18];
    int taken;

    ck_assert_ptr_nonnull(c);
    first = open_interface(c, "shared");
    second = open_interface(c, "shared");
    snprintf(first_name, sizeof(first_name), "%s",
             vmnet_broker_interface_name(first));
    snprintf(first_mac, sizeof(first_mac), "%s",
             vmnet_broker_interface_mac(first));
    // Two live interfaces: two devices, two guest addresses.
    ck_assert_str_ne(first_name, vmnet_broker_interface_name(second));
    ck_assert_str_ne(first_mac, vmnet_broker_interface_mac(second));
    ck_assert_uint_eq(harness_count_links("vmt-"), 2);

    // free closes the descriptor: the device goes, the connection stays.
    vmnet_broker_interface_free(first);
    ck_assert(harness_wait_link_gone(first_name));
    ck_assert(harness_link_exists(vmnet_broker_interface_name(second)));
    ck_assert_int_eq(harness_network_peers(broker, "shared"), 1);

    // The freed slot comes back with the same guest address.
    first = open_interface(c, "shared");
    ck_assert_str_eq(vmnet_broker_interface_mac(first), first_mac);

    // A taken descriptor is the caller's: free leaves it (and the device).
    taken = vmnet_broker_interface_take_fd(first);
    ck_assert_int_ge(taken, 0);
    ck_assert_int_ne(fcntl(taken, F_GETFD) & FD_CLOEXEC, 0);
    ck_assert_int_eq(vmnet_broker_interface_fd(first), -1);
    ck_assert_int_eq(vmnet_broker_interface_take_fd(first), -1);
    snprintf(first_name, sizeof(first_name), "%s",
             vmnet_broker_interface_name(first));
    vmnet_broker_interface_free(first);
    ck_assert_int_ge(fcntl(taken, F_GETFD), 0);
    ck_assert(harness_link_exists(first_name));
    close(taken);
    ck_assert(harness_wait_link_gone(first_name));

    // Closing the connection does not take a device whose descriptor is
    // still held; the descriptor does.
    vmnet_broker_connection_close(c);
    ck_assert(harness_wait_for(shared_unused, NULL));
    ck_assert(harness_link_exists(vmnet_broker_interface_name(second)));
    snprintf(first_name, sizeof(first_name), "%s",
             vmnet_broker_interface_name(second));
    vmnet_broker_interface_free(second);
    ck_assert(harness_wait_link_gone(first_name));
}
END_TEST

START_TEST(test_limit_per_connection) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_connection_t *other = harness_connect(broker);
    vmnet_broker_interface_t *interfaces[INTERFACES_MAX];
    vmnet_broker_interface_t *extra = NULL;
    vmnet_broker_interface_t *sentinel = (vmnet_broker_interface_t *)&extra;
    vmnet_broker_interface_t *out = sentinel;
    char names[4][IFNAMSIZ];
    size_t fds;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(other);
    for (size_t i = 0; i < INTERFACES_MAX; i++)
        interfaces[i] = open_interface(c, i % 2 == 0 ? "shared" : "host");
    ck_assert_uint_eq(harness_count_links("vmt-"), INTERFACES_MAX);

    // One more is refused, leaves no device and no descriptor, and leaves
    // the out-parameter alone.
    fds = count_open_fds();
    ck_assert_uint_ne(fds, SIZE_MAX);
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", &out),
                     VMNET_BROKER_INTERNAL_ERROR);
    ck_assert_ptr_eq(out, sentinel);
    ck_assert_uint_eq(count_open_fds(), fds);
    ck_assert_uint_eq(harness_count_links("vmt-"), INTERFACES_MAX);

    // The limit is the connection's: another one still gets interfaces.
    extra = open_interface(other, "shared");
    snprintf(names[0], sizeof(names[0]), "%s",
             vmnet_broker_interface_name(extra));
    vmnet_broker_interface_free(extra);
    ck_assert(harness_wait_link_gone(names[0]));

    // Closing some frees their places once their devices are gone.
    for (size_t i = 0; i < 4; i++) {
        snprintf(names[i], sizeof(names[i]), "%s",
                 vmnet_broker_interface_name(interfaces[i]));
        vmnet_broker_interface_free(interfaces[i]);
    }
    for (size_t i = 0; i < 4; i++)
        ck_assert(harness_wait_link_gone(names[i]));
    for (size_t i = 0; i < 4; i++)
        interfaces[i] = open_interface(c, "shared");
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "host", &out),
                     VMNET_BROKER_INTERNAL_ERROR);
    ck_assert_ptr_eq(out, sentinel);
    ck_assert_uint_eq(harness_count_links("vmt-"), INTERFACES_MAX);

    for (size_t i = 0; i < INTERFACES_MAX; i++)
        vmnet_broker_interface_free(interfaces[i]);
    ck_assert(harness_wait_for(no_taps, NULL));
    vmnet_broker_connection_close(other);
    vmnet_broker_connection_close(c);
}
END_TEST

START_TEST(test_errors_leave_no_descriptor) {
    harness_start(broker, IDLE);
    vmnet_broker_connection_t *c = harness_connect(broker);
    vmnet_broker_interface_t *sentinel = (vmnet_broker_interface_t *)&c;
    vmnet_broker_interface_t *out = sentinel;
    size_t fds;

    ck_assert_ptr_nonnull(c);
    fds = count_open_fds();
    ck_assert_uint_ne(fds, SIZE_MAX);
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "nosuch", &out),
                     VMNET_BROKER_NOT_FOUND);
    ck_assert_int_eq(
        vmnet_broker_connection_open_interface(c, "bad name!", &out),
        VMNET_BROKER_INVALID_REQUEST);
    ck_assert_ptr_eq(out, sentinel);
    ck_assert_uint_eq(count_open_fds(), fds);
    ck_assert_uint_eq(harness_count_links("vmt-"), 0);

    // NULL arguments are refused before anything is sent.
    ck_assert_int_eq(
        vmnet_broker_connection_open_interface(NULL, "shared", &out),
        VMNET_BROKER_INVALID_REQUEST);
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, NULL, &out),
                     VMNET_BROKER_INVALID_REQUEST);
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", NULL),
                     VMNET_BROKER_INVALID_REQUEST);
    ck_assert_uint_eq(harness_count_links("vmt-"), 0);

    // Accessors and free accept NULL.
    ck_assert_ptr_null(vmnet_broker_interface_name(NULL));
    ck_assert_ptr_null(vmnet_broker_interface_mac(NULL));
    ck_assert_ptr_null(vmnet_broker_interface_json(NULL));
    ck_assert_uint_eq(vmnet_broker_interface_mtu(NULL), 0);
    ck_assert_int_eq(vmnet_broker_interface_fd(NULL), -1);
    ck_assert_int_eq(vmnet_broker_interface_take_fd(NULL), -1);
    vmnet_broker_interface_free(NULL);

    // The connection still serves requests after the errors.
    vmnet_broker_interface_free(open_interface(c, "shared"));
    ck_assert_uint_eq(count_open_fds(), fds);
    vmnet_broker_connection_close(c);
}
END_TEST

// The process-wide connection's life: 0, or the step that failed. Runs in a
// child of its own, since that connection lasts as long as its process (and
// the broker stops only once it has no peers).
static int use_process_wide_connection(void) {
    vmnet_broker_return_t status = VMNET_BROKER_SUCCESS;
    vmnet_broker_interface_t *interface;
    size_t fds;

    if (setenv(VMNET_BROKER_SOCKET_ENV, broker->socket_path, 1) != 0)
        return 10;
    interface = vmnet_broker_open_interface("shared", &status);
    if (status != VMNET_BROKER_SUCCESS || interface == NULL)
        return 11;
    if (!link_master_is(vmnet_broker_interface_name(interface), "vmb-shared"))
        return 12;
    // The same connection holds the network: release drops it.
    if (harness_network_peers(broker, "shared") != 1)
        return 13;
    if (vmnet_broker_release_network("shared") != VMNET_BROKER_SUCCESS ||
        harness_network_peers(broker, "shared") != 0)
        return 14;
    vmnet_broker_interface_free(interface);

    fds = count_open_fds();
    if (vmnet_broker_open_interface("nosuch", &status) != NULL ||
        status != VMNET_BROKER_NOT_FOUND)
        return 15;
    if (vmnet_broker_open_interface(NULL, &status) != NULL ||
        status != VMNET_BROKER_INVALID_REQUEST)
        return 16;
    if (fds == SIZE_MAX || count_open_fds() != fds)
        return 17;
    return 0;
}

START_TEST(test_process_wide_connection) {
    harness_start(broker, IDLE);
    pid_t pid = fork();

    ck_assert_int_ge(pid, 0);
    if (pid == 0)
        _exit(use_process_wide_connection());
    int status = harness_wait_pid(pid);
    ck_assert_msg(status != -1 && WIFEXITED(status),
                  "the child did not finish");
    ck_assert_msg(WEXITSTATUS(status) == 0,
                  "process-wide connection failed at step %d",
                  WEXITSTATUS(status));
}
END_TEST

// ---- The wire protocol
// ---------------------------------------------------------

START_TEST(test_raw_protocol_descriptor_only_on_success) {
    harness_start(broker, IDLE);
    int fd = harness_raw_connect(broker->socket_path);
    static const char request[] =
        "{\"command\": \"open_interface\", \"network_name\": \"shared\"}";
    static const char unknown[] =
        "{\"command\": \"open_interface\", \"network_name\": \"nosuch\"}";
    json_t *reply;
    json_t *interface;
    size_t n_fds;

    ck_assert_int_ge(fd, 0);
    // Success: one datagram, exactly one descriptor, one "interface" key.
    ck_assert(harness_raw_send(fd, request, strlen(request)));
    reply = raw_receive_counting_fds(fd, &n_fds);
    ck_assert_ptr_nonnull(reply);
    ck_assert_uint_eq(n_fds, 1);
    ck_assert_uint_eq(json_object_size(reply), 1);
    interface = json_object_get(reply, "interface");
    ck_assert(json_is_object(interface));
    ck_assert(json_is_string(json_object_get(interface, "name")));
    ck_assert(json_is_string(json_object_get(interface, "mac")));
    ck_assert_str_eq(json_string_value(json_object_get(interface, "network")),
                     "shared");
    ck_assert_str_eq(json_string_value(json_object_get(interface, "bridge")),
                     "vmb-shared");
    ck_assert(json_is_integer(json_object_get(interface, "mtu")));
    json_decref(reply);
    // The helper closed the only descriptor: the broker kept none.
    ck_assert(harness_wait_for(no_taps, NULL));

    // Errors carry none.
    ck_assert(harness_raw_send(fd, unknown, strlen(unknown)));
    reply = raw_receive_counting_fds(fd, &n_fds);
    ck_assert_int_eq(harness_reply_error(reply), VMNET_BROKER_NOT_FOUND);
    ck_assert_uint_eq(n_fds, 0);
    json_decref(reply);
    close(fd);
}
END_TEST

// A reply the real broker never sends, and how many descriptors come with it.
struct fake_reply {
    const char *text;
    int n_fds;
};

// Sends text with n_fds descriptors of /dev/null attached. No Check
// assertions: the fake broker's child process uses it.
static bool send_with_fds(int socket_fd, const char *text, int n_fds) {
    int fds[4];
    union {
        struct cmsghdr header;
        char buffer[CMSG_SPACE(sizeof(fds))];
    } control;
    struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    bool sent;

    memset(&control, 0, sizeof(control));
    for (int i = 0; i < n_fds; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (n_fds > 0) {
        msg.msg_control = control.buffer;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n_fds);
    }
    sent = sendmsg(socket_fd, &msg, MSG_NOSIGNAL) == (ssize_t)strlen(text);
    for (int i = 0; i < n_fds; i++)
        close(fds[i]);
    return sent;
}

// A broker at path that answers one connection's requests with replies, in
// order, then waits for the client to hang up. Returns its pid.
static pid_t start_fake_broker(const char *path,
                               const struct fake_reply *replies, size_t n) {
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    int listener = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    pid_t pid;

    ck_assert_int_ge(listener, 0);
    ck_assert_uint_lt(strlen(path), sizeof(address.sun_path));
    strcpy(address.sun_path, path);
    // Listening before the fork: the client's connect never races it.
    ck_assert_int_eq(
        bind(listener, (struct sockaddr *)&address, sizeof(address)), 0);
    ck_assert_int_eq(listen(listener, 1), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char buf[4096];
        int connection = accept(listener, NULL, NULL);
        for (size_t i = 0; i < n; i++) {
            if (recv(connection, buf, sizeof(buf), 0) <= 0 ||
                !send_with_fds(connection, replies[i].text, replies[i].n_fds))
                _exit(1);
        }
        while (recv(connection, buf, sizeof(buf), 0) > 0)
            ;
        _exit(0);
    }
    close(listener);
    return pid;
}

START_TEST(test_library_descriptor_rules) {
    static const struct fake_reply replies[] = {
        {"{\"error\": 7}", 1},
        {"{\"network\": {\"name\": \"shared\"}}", 1},
        {"{\"interface\": {\"name\": \"vmt-1\", \"mac\": \"02:76:0:0:0:1\"}}",
         0},
        {"{\"interface\": {\"name\": \"vmt-2\", \"mac\": \"02:76:0:0:0:2\", "
         "\"mtu\": 9000}}",
         1},
        {"{\"interface\": {\"name\": \"vmt-3\", \"mac\": \"02:76:0:0:0:3\"}}",
         2},
    };
    char path[128];
    vmnet_broker_connection_t *c = NULL;
    vmnet_broker_network_t *network = NULL;
    vmnet_broker_interface_t *interface = NULL;
    vmnet_broker_interface_t *sentinel = (vmnet_broker_interface_t *)&c;
    vmnet_broker_interface_t *out = sentinel;
    size_t fds = count_open_fds();
    char link[64];
    char proc[64];
    ssize_t n;
    pid_t pid;

    ck_assert_uint_ne(fds, SIZE_MAX);
    snprintf(path, sizeof(path), "%s/fake.sock", broker->dir);
    pid = start_fake_broker(path, replies, 5);
    ck_assert_int_eq(vmnet_broker_connect(path, &c), VMNET_BROKER_SUCCESS);

    // An error's descriptor is closed; the error is reported.
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", &out),
                     VMNET_BROKER_INTERNAL_ERROR);
    ck_assert_ptr_eq(out, sentinel);
    ck_assert_uint_eq(count_open_fds(), fds + 1);
    // So is one attached to another command's reply.
    ck_assert_int_eq(vmnet_broker_connection_acquire(c, "shared", &network),
                     VMNET_BROKER_SUCCESS);
    vmnet_broker_network_free(network);
    ck_assert_uint_eq(count_open_fds(), fds + 1);
    // An interface without its descriptor is no interface.
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", &out),
                     VMNET_BROKER_INVALID_REPLY);
    ck_assert_ptr_eq(out, sentinel);
    // The descriptor that came is the interface's.
    ck_assert_int_eq(
        vmnet_broker_connection_open_interface(c, "shared", &interface),
        VMNET_BROKER_SUCCESS);
    ck_assert_str_eq(vmnet_broker_interface_name(interface), "vmt-2");
    ck_assert_uint_eq(vmnet_broker_interface_mtu(interface), 9000);
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d",
             vmnet_broker_interface_fd(interface));
    n = readlink(proc, link, sizeof(link) - 1);
    ck_assert_int_gt(n, 0);
    link[n] = '\0';
    ck_assert_str_eq(link, "/dev/null");
    ck_assert_uint_eq(count_open_fds(), fds + 2);
    vmnet_broker_interface_free(interface);
    // More than one descriptor breaks the protocol: all are closed.
    ck_assert_int_eq(vmnet_broker_connection_open_interface(c, "shared", &out),
                     VMNET_BROKER_INVALID_REPLY);
    ck_assert_ptr_eq(out, sentinel);
    ck_assert_uint_eq(count_open_fds(), fds + 1);

    vmnet_broker_connection_close(c);
    ck_assert(exited_with(harness_wait_pid(pid), 0));
    ck_assert_uint_eq(count_open_fds(), fds);
}
END_TEST

// ---- The CLI
// ---------------------------------------------------------------------

// Reads <broker dir>/<name> into a malloc'd string ("" if missing).
static char *read_file(const char *name) {
    char path[256];
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    FILE *in;
    char buf[4096];
    size_t n;

    ck_assert_ptr_nonnull(out);
    snprintf(path, sizeof(path), "%s/%s", broker->dir, name);
    in = fopen(path, "r");
    while (in != NULL && (n = fread(buf, 1, sizeof(buf), in)) > 0)
        fwrite(buf, 1, n, out);
    if (in != NULL)
        fclose(in);
    fclose(out);
    return text;
}

START_TEST(test_cli_run_tap) {
    harness_start(broker, IDLE);
    char script[2048];
    // With 3 to 9 closed (the test's own descriptors are inherited), the
    // CLI's connection gets 3 and the interfaces 4 and 5: each asked-for FD
    // collides with something the CLI holds.
    const char *argv[] = {"/bin/sh",
                          "-c",
                          "exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; "
                          "exec \"$@\"",
                          "sh",
                          CLI,
                          "run",
                          "--tap",
                          "shared:3",
                          "--tap",
                          "shared:5",
                          "--",
                          "/bin/sh",
                          "-c",
                          script,
                          NULL};
    json_t *interfaces;
    char *text;
    char *iff[2];
    long connection_fd;

    snprintf(script, sizeof(script),
             "cd '%s' || exit 10\n"
             "readlink /proc/self/fd/3 > fd3\n"
             "readlink /proc/self/fd/5 > fd5\n"
             "grep '^iff:' /proc/self/fdinfo/3 > iff3\n"
             "grep '^iff:' /proc/self/fdinfo/5 > iff5\n"
             "printf '%%s' \"$VMNET_BROKER_FD\" > connection_fd\n"
             "readlink /proc/self/fd/$VMNET_BROKER_FD > connection\n"
             "printf '%%s' \"$VMNET_BROKER_INTERFACES\" > interfaces.json\n"
             "for d in /sys/class/net/vmt-*; do\n"
             "  echo \"${d##*/} $(basename \"$(readlink $d/master)\")\"\n"
             "done > ports\n"
             "exit 4\n",
             broker->dir);
    ck_assert(exited_with(harness_run(broker, argv, NULL), 4));

    text = read_file("fd3");
    ck_assert_str_eq(text, "/dev/net/tun\n");
    free(text);
    text = read_file("fd5");
    ck_assert_str_eq(text, "/dev/net/tun\n");
    free(text);
    iff[0] = read_file("iff3");
    iff[1] = read_file("iff5");
    text = read_file("connection_fd");
    connection_fd = strtol(text, NULL, 10);
    ck_assert_msg(connection_fd > 2 && connection_fd != 3 && connection_fd != 5,
                  "VMNET_BROKER_FD=%s", text);
    free(text);
    text = read_file("connection");
    ck_assert_msg(strncmp(text, "socket:[", 8) == 0, "connection: %s", text);
    free(text);

    text = read_file("interfaces.json");
    interfaces = json_loads(text, 0, NULL);
    free(text);
    ck_assert_msg(json_is_array(interfaces) && json_array_size(interfaces) == 2,
                  "VMNET_BROKER_INTERFACES is not an array of two");
    text = read_file("ports");
    for (size_t i = 0; i < 2; i++) {
        json_t *interface = json_array_get(interfaces, i);
        const char *name =
            json_string_value(json_object_get(interface, "name"));
        char port[64];
        ck_assert_int_eq(json_integer_value(json_object_get(interface, "fd")),
                         i == 0 ? 3 : 5);
        ck_assert_msg(name != NULL && strncmp(name, "vmt-", 4) == 0, "%s",
                      name);
        // The descriptor on that FD is that device.
        snprintf(port, sizeof(port), "iff:\t%s\n", name);
        ck_assert_str_eq(iff[i], port);
        free(iff[i]);
        ck_assert_str_eq(
            json_string_value(json_object_get(interface, "bridge")),
            "vmb-shared");
        ck_assert(strncmp(json_string_value(json_object_get(interface, "mac")),
                          "02:76:", 6) == 0);
        // Each device existed, on the bridge, while the command ran.
        snprintf(port, sizeof(port), "%s vmb-shared\n", name);
        ck_assert_msg(strstr(text, port) != NULL, "%s not in: %s", port, text);
    }
    free(text);
    json_decref(interfaces);

    // The command held the only descriptors: its exit took the devices and
    // its connection the network's reference.
    ck_assert(harness_wait_for(no_taps, NULL));
    ck_assert(harness_wait_for(shared_unused, NULL));
}
END_TEST

START_TEST(test_cli_run_tap_errors) {
    harness_start(broker, IDLE);
    char marker[256];
    const char *low[] = {
        CLI, "run", "--tap", "shared:2", "--", "/usr/bin/touch", marker, NULL};
    const char *twice[] = {CLI,     "run",    "--tap", "shared:5",
                           "--tap", "host:5", "--",    "/usr/bin/touch",
                           marker,  NULL};
    const char *no_fd[] = {
        CLI, "run", "--tap", "shared", "--", "/usr/bin/touch", marker, NULL};
    const char *unknown[] = {CLI,     "run",      "--tap", "shared:5",
                             "--tap", "nosuch:6", "--",    "/usr/bin/touch",
                             marker,  NULL};

    snprintf(marker, sizeof(marker), "%s/ran", broker->dir);
    ck_assert(exited_with(harness_run(broker, low, NULL), 2));
    ck_assert(exited_with(harness_run(broker, twice, NULL), 2));
    ck_assert(exited_with(harness_run(broker, no_fd, NULL), 2));
    int status = harness_run(broker, unknown, NULL);
    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_ne(WEXITSTATUS(status), 0);
    // The command never ran, and nothing it would have had is left.
    ck_assert_int_ne(access(marker, F_OK), 0);
    ck_assert(harness_wait_for(no_taps, NULL));
    ck_assert(harness_wait_for(shared_unused, NULL));
}
END_TEST

START_TEST(test_cli_acquire_tap_holds_interface) {
    harness_start(broker, IDLE);
    const char *argv[] = {CLI,     "acquire", "--json", "host",
                          "--tap", "shared",  NULL};
    struct harness_reader *reader = malloc(sizeof(*reader));
    json_t *network, *interface, *status;
    const char *name;
    int fd = -1;
    pid_t pid = harness_spawn(broker, argv, &fd);

    ck_assert_ptr_nonnull(reader);
    ck_assert_int_gt(pid, 0);
    harness_reader_init(reader, fd);
    // The networks named, then the interfaces.
    network = harness_reader_json(reader);
    interface = harness_reader_json(reader);
    ck_assert_msg(network != NULL && interface != NULL, "no JSON output");
    ck_assert_str_eq(json_string_value(json_object_get(network, "name")),
                     "host");
    name = json_string_value(json_object_get(interface, "name"));
    ck_assert_msg(name != NULL && strncmp(name, "vmt-", 4) == 0, "%s", name);
    ck_assert_str_eq(json_string_value(json_object_get(interface, "network")),
                     "shared");
    // The CLI holds the device and, on its connection, the network.
    ck_assert(link_master_is(name, "vmb-shared"));
    status = harness_status(broker);
    ck_assert(harness_status_pid_holds(status, pid, "shared"));
    ck_assert(harness_status_pid_holds(status, pid, "host"));
    json_decref(status);

    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    ck_assert(exited_with(harness_wait_pid(pid), 0));
    ck_assert(harness_wait_link_gone(name));
    ck_assert(harness_wait_for(shared_unused, NULL));
    json_decref(network);
    json_decref(interface);
    close(fd);
    free(reader);
}
END_TEST

static Suite *open_interface_suite(void) {
    Suite *s = suite_create("open_interface");
    TCase *library = tcase_create("library");
    TCase *protocol = tcase_create("protocol");
    TCase *cli = tcase_create("cli");

    tcase_add_checked_fixture(library, setup, teardown);
    tcase_set_timeout(library, 120);
    tcase_add_test(library, test_descriptor_and_device);
    tcase_add_test(library, test_arp_through_descriptor);
    tcase_add_test(library, test_unprivileged_peer_owns_its_device);
    tcase_add_test(library, test_closing_descriptor_removes_device);
    tcase_add_test(library, test_limit_per_connection);
    tcase_add_test(library, test_errors_leave_no_descriptor);
    tcase_add_test(library, test_process_wide_connection);
    suite_add_tcase(s, library);

    tcase_add_checked_fixture(protocol, setup, teardown);
    tcase_set_timeout(protocol, 120);
    tcase_add_test(protocol, test_raw_protocol_descriptor_only_on_success);
    tcase_add_test(protocol, test_library_descriptor_rules);
    suite_add_tcase(s, protocol);

    tcase_add_checked_fixture(cli, setup, teardown);
    tcase_set_timeout(cli, 120);
    tcase_add_test(cli, test_cli_run_tap);
    tcase_add_test(cli, test_cli_run_tap_errors);
    tcase_add_test(cli, test_cli_acquire_tap_holds_interface);
    suite_add_tcase(s, cli);
    return s;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(open_interface_suite());
}
