// SPDX-License-Identifier: Apache-2.0
// TAP devices on a real bridge inside a private network namespace.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <netinet/if_ether.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/guest_addr.h"
#include "linux/linux_tap.h"

// Any key: the MAC's keying is core/guest_addr.c's, tested by unit tests.
static const uint8_t test_key[GUEST_MAC_KEY_LEN] = {1, 2, 3};

#define BRIDGE "br0"
#define BRIDGE_MTU 1400
#define GATEWAY "192.168.90.1"
#define GUEST_ADDRESS "192.168.90.50"
#define NOBODY 65534
// The kernel's default vnet header length: sizeof(struct virtio_net_hdr),
// which stays in force until someone calls TUNSETVNETHDRSZ.
#define VNET_HDR_LEN 10
#define FRAME_MIN 60
// Generous: an ARP reply on a local bridge takes microseconds, so only a
// reply that never comes reaches this.
#define REPLY_WAIT_MS 10000

// Runs a shell command (fixtures only: the module itself never runs ip).
static void run(const char *fmt, ...) {
    char command[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(command, sizeof(command), fmt, ap);
    va_end(ap);
    ck_assert_msg(system(command) == 0, "command failed: %s", command);
}

// Check skips the teardown of a failed test, so a setup may find the
// previous test's links; every TAP device goes with that test's process.
static void setup(void) {
    run("ip link del " BRIDGE " 2>/dev/null; ip link del plain0 2>/dev/null; "
        "ip link add name " BRIDGE " type bridge");
    // Not the default 1500, so a TAP that kept its own MTU would show.
    run("ip link set " BRIDGE " mtu %d", BRIDGE_MTU);
    run("ip addr add " GATEWAY "/24 dev " BRIDGE);
    run("ip link set " BRIDGE " up");
}

static void teardown(void) { run("ip link del " BRIDGE); }

// Reads /sys/class/net/<ifname>/<attribute> without its newline.
static bool read_sysfs(const char *ifname, const char *attribute, char *out,
                       size_t size) {
    char path[128];
    FILE *file;
    bool ok;

    snprintf(path, sizeof(path), "/sys/class/net/%s/%s", ifname, attribute);
    file = fopen(path, "r");
    if (file == NULL)
        return false;
    ok = fgets(out, (int)size, file) != NULL;
    fclose(file);
    if (ok)
        out[strcspn(out, "\n")] = '\0';
    return ok;
}

static unsigned long sysfs_number(const char *ifname, const char *attribute) {
    char text[64];

    ck_assert_msg(read_sysfs(ifname, attribute, text, sizeof(text)),
                  "no %s for %s", attribute, ifname);
    return strtoul(text, NULL, 0);
}

static void sysfs_mac(const char *ifname, uint8_t mac[6]) {
    char text[64];

    ck_assert(read_sysfs(ifname, "address", text, sizeof(text)));
    ck_assert_int_eq(sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0],
                            &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]),
                     6);
}

static int count_tap_devices(void) {
    struct if_nameindex *all = if_nameindex();
    int n = 0;

    ck_assert_ptr_nonnull(all);
    for (struct if_nameindex *i = all; i->if_index != 0; i++)
        if (strncmp(i->if_name, LINUX_TAP_PREFIX, strlen(LINUX_TAP_PREFIX)) ==
            0)
            n++;
    if_freenameindex(all);
    return n;
}

static long elapsed_ms(const struct timespec *since) {
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 +
           (now.tv_nsec - since->tv_nsec) / 1000000;
}

static bool gone_within(const char *ifname, long timeout_ms) {
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    while (if_nametoindex(ifname) != 0) {
        if (elapsed_ms(&start) > timeout_ms)
            return false;
        usleep(10000);
    }
    return true;
}

// The helpers below return false instead of asserting so that the
// unprivileged child, which is not a Check test process, can use them.

// Writes, behind a zeroed vnet header, "who has GATEWAY? tell
// GUEST_ADDRESS" from guest_mac, as a guest would.
static bool write_arp_request(int fd, const uint8_t guest_mac[6]) {
    uint8_t packet[VNET_HDR_LEN + FRAME_MIN] = {0};
    struct ether_header *eth = (struct ether_header *)(packet + VNET_HDR_LEN);
    struct ether_arp *arp = (struct ether_arp *)(eth + 1);
    struct in_addr sender, target;

    inet_pton(AF_INET, GUEST_ADDRESS, &sender);
    inet_pton(AF_INET, GATEWAY, &target);
    memset(eth->ether_dhost, 0xff, ETH_ALEN);
    memcpy(eth->ether_shost, guest_mac, ETH_ALEN);
    eth->ether_type = htons(ETHERTYPE_ARP);
    arp->arp_hrd = htons(ARPHRD_ETHER);
    arp->arp_pro = htons(ETHERTYPE_IP);
    arp->arp_hln = ETH_ALEN;
    arp->arp_pln = 4;
    arp->arp_op = htons(ARPOP_REQUEST);
    memcpy(arp->arp_sha, guest_mac, ETH_ALEN);
    memcpy(arp->arp_spa, &sender, 4);
    memcpy(arp->arp_tpa, &target, 4);
    return write(fd, packet, sizeof(packet)) == (ssize_t)sizeof(packet);
}

static bool is_arp_reply(const uint8_t *packet, ssize_t len,
                         const uint8_t guest_mac[6],
                         const uint8_t bridge_mac[6]) {
    const struct ether_header *eth =
        (const struct ether_header *)(packet + VNET_HDR_LEN);
    const struct ether_arp *arp = (const struct ether_arp *)(eth + 1);
    struct in_addr gateway;

    if (len < (ssize_t)(VNET_HDR_LEN + sizeof(*eth) + sizeof(*arp)))
        return false;
    if (ntohs(eth->ether_type) != ETHERTYPE_ARP ||
        ntohs(arp->arp_op) != ARPOP_REPLY)
        return false;
    inet_pton(AF_INET, GATEWAY, &gateway);
    return memcmp(eth->ether_dhost, guest_mac, ETH_ALEN) == 0 &&
           memcmp(arp->arp_sha, bridge_mac, ETH_ALEN) == 0 &&
           memcmp(arp->arp_spa, &gateway, 4) == 0 &&
           memcmp(arp->arp_tha, guest_mac, ETH_ALEN) == 0;
}

// Reads frames until the bridge's ARP reply to guest_mac arrives, skipping
// whatever else the host sends (IPv6 router solicitations and the like).
static bool await_arp_reply(int fd, const uint8_t guest_mac[6],
                            const uint8_t bridge_mac[6]) {
    struct timespec start;

    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        long left = REPLY_WAIT_MS - elapsed_ms(&start);
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        uint8_t packet[VNET_HDR_LEN + 65536];
        ssize_t len;

        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            return false;
        len = read(fd, packet, sizeof(packet));
        if (len < 0)
            return false;
        if (is_arp_reply(packet, len, guest_mac, bridge_mac))
            return true;
    }
}

START_TEST(test_device_attached) {
    struct tap_info info;
    struct ifreq ifr = {0};
    uint8_t own_mac[6];
    char master[64];
    char path[128];
    ssize_t n;
    int fd = tap_open(BRIDGE, "shared", 4242, 4243, 0, test_key, &info);

    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(strlen(info.name), 12);
    ck_assert_int_eq(strncmp(info.name, "vmt-", 4), 0);
    ck_assert_uint_eq(strspn(info.name + 4, "0123456789abcdef"), 8);
    ck_assert_uint_ne(if_nametoindex(info.name), 0);

    snprintf(path, sizeof(path), "/sys/class/net/%s/master", info.name);
    n = readlink(path, master, sizeof(master) - 1);
    ck_assert_int_gt(n, 0);
    master[n] = '\0';
    ck_assert_str_eq(strrchr(master, '/') + 1, BRIDGE);

    ck_assert(sysfs_number(info.name, "flags") & IFF_UP);
    ck_assert_uint_eq(sysfs_number(info.name, "mtu"), BRIDGE_MTU);
    ck_assert_uint_eq(sysfs_number(info.name, "owner"), 4242);
    ck_assert_uint_eq(sysfs_number(info.name, "group"), 4243);
    unsigned long flags = sysfs_number(info.name, "tun_flags");
    ck_assert_uint_eq(flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR),
                      IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    ck_assert_uint_eq(flags & IFF_PERSIST, 0);

    // What QEMU asks of a descriptor it is given.
    ck_assert_int_eq(ioctl(fd, TUNGETIFF, &ifr), 0);
    ck_assert(ifr.ifr_flags & IFF_VNET_HDR);
    ck_assert_str_eq(ifr.ifr_name, info.name);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);

    // Locally administered unicast, for the guest and for the TAP itself,
    // and never the same: the bridge would keep the guest's frames. The
    // TAP's is the one tap_open set, above any other port's.
    sysfs_mac(info.name, own_mac);
    ck_assert_uint_eq(info.mac[0] & 0x03, 0x02);
    ck_assert_uint_eq(own_mac[0], 0xfe);
    ck_assert_mem_ne(own_mac, info.mac, 6);
    close(fd);
}
END_TEST

START_TEST(test_arp_through_descriptor) {
    struct tap_info info;
    uint8_t bridge_mac[6];
    int fd = tap_open(BRIDGE, "shared", 1000, 1000, 0, test_key, &info);

    ck_assert_int_ge(fd, 0);
    sysfs_mac(BRIDGE, bridge_mac);
    ck_assert(write_arp_request(fd, info.mac));
    ck_assert_msg(await_arp_reply(fd, info.mac, bridge_mac),
                  "no ARP reply from the bridge");
    close(fd);
}
END_TEST

START_TEST(test_close_removes_device) {
    struct tap_info info;
    int fd = tap_open(BRIDGE, "shared", 1000, 1000, 0, test_key, &info);

    ck_assert_int_ge(fd, 0);
    ck_assert_uint_ne(if_nametoindex(info.name), 0);
    close(fd);
    ck_assert_msg(gone_within(info.name, 10000), "%s outlived its descriptor",
                  info.name);
    ck_assert_int_eq(count_tap_devices(), 0);
}
END_TEST

enum child_failure {
    CHILD_OK = 0,
    CHILD_PRIVILEGE_KEPT,
    CHILD_NO_DESCRIPTOR,
    CHILD_WRONG_PAYLOAD,
    CHILD_WRITE_FAILED,
    CHILD_NO_REPLY,
};

static int receive_fd(int socket_fd, char *data, size_t size) {
    union {
        struct cmsghdr header;
        char buffer[CMSG_SPACE(sizeof(int))];
    } control;
    struct iovec iov = {.iov_base = data, .iov_len = size - 1};
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buffer,
        .msg_controllen = sizeof(control.buffer),
    };
    struct cmsghdr *cmsg;
    ssize_t n = recvmsg(socket_fd, &msg, MSG_CMSG_CLOEXEC);
    int fd;

    if (n < 0)
        return -1;
    data[n] = '\0';
    cmsg = CMSG_FIRSTHDR(&msg);
    if (cmsg == NULL || cmsg->cmsg_level != SOL_SOCKET ||
        cmsg->cmsg_type != SCM_RIGHTS ||
        cmsg->cmsg_len != CMSG_LEN(sizeof(int)))
        return -1;
    memcpy(&fd, CMSG_DATA(cmsg), sizeof(fd));
    return fd;
}

// Plays an unprivileged QEMU: drops to nobody, takes the descriptor from the
// broker's reply and talks to the gateway through it.
static enum child_failure unprivileged_client(int socket_fd,
                                              const char *expected,
                                              const uint8_t guest_mac[6],
                                              const uint8_t bridge_mac[6]) {
    char payload[256];
    int fd;

    if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) != 0 || geteuid() != NOBODY)
        return CHILD_PRIVILEGE_KEPT;
    fd = receive_fd(socket_fd, payload, sizeof(payload));
    if (fd < 0)
        return CHILD_NO_DESCRIPTOR;
    if (strcmp(payload, expected) != 0)
        return CHILD_WRONG_PAYLOAD;
    if (!write_arp_request(fd, guest_mac))
        return CHILD_WRITE_FAILED;
    if (!await_arp_reply(fd, guest_mac, bridge_mac))
        return CHILD_NO_REPLY;
    return CHILD_OK;
}

START_TEST(test_unprivileged_receiver) {
    static const char reply[] = "{\"interface\": {}}";
    struct tap_info info;
    uint8_t bridge_mac[6];
    int sv[2];
    int status;
    pid_t child;
    int fd = tap_open(BRIDGE, "shared", NOBODY, NOBODY, 0, test_key, &info);

    ck_assert_int_ge(fd, 0);
    sysfs_mac(BRIDGE, bridge_mac);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    ck_assert_int_eq(tap_send_with_fd(sv[0], reply, strlen(reply), fd), 0);
    // As the broker does: its copy is closed before the client has read the
    // message, and the descriptor in flight keeps the device alive.
    close(fd);
    ck_assert_uint_ne(if_nametoindex(info.name), 0);

    child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(sv[0]);
        _exit(unprivileged_client(sv[1], reply, info.mac, bridge_mac));
    }
    close(sv[1]);
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    ck_assert_msg(WIFEXITED(status), "the client died");
    ck_assert_msg(WEXITSTATUS(status) == CHILD_OK,
                  "the unprivileged client failed at step %d",
                  WEXITSTATUS(status));
    close(sv[0]);
    // The client has exited: nothing holds the device any more.
    ck_assert_msg(gone_within(info.name, 10000), "%s outlived its client",
                  info.name);
}
END_TEST

START_TEST(test_guest_mac_stable) {
    struct tap_info first, again, next_index, other_network, other_uid;
    int fd;

    fd = tap_open(BRIDGE, "shared", 1000, 1000, 0, test_key, &first);
    ck_assert_int_ge(fd, 0);
    close(fd);
    fd = tap_open(BRIDGE, "shared", 1000, 1000, 0, test_key, &again);
    ck_assert_int_ge(fd, 0);
    close(fd);
    fd = tap_open(BRIDGE, "shared", 1000, 1000, 1, test_key, &next_index);
    ck_assert_int_ge(fd, 0);
    close(fd);
    fd = tap_open(BRIDGE, "host", 1000, 1000, 0, test_key, &other_network);
    ck_assert_int_ge(fd, 0);
    close(fd);
    fd = tap_open(BRIDGE, "shared", 1001, 1000, 0, test_key, &other_uid);
    ck_assert_int_ge(fd, 0);
    close(fd);

    ck_assert_mem_eq(first.mac, again.mac, 6);
    ck_assert_mem_ne(first.mac, next_index.mac, 6);
    ck_assert_mem_ne(first.mac, other_network.mac, 6);
    ck_assert_mem_ne(first.mac, other_uid.mac, 6);
    // Same inputs, same address, but each device is new.
    ck_assert_str_ne(first.name, again.name);
}
END_TEST

static void assert_fails_cleanly(const char *bridge, uint32_t uid,
                                 int expected) {
    struct tap_info info, untouched;

    memset(&info, 0xa5, sizeof(info));
    untouched = info;
    ck_assert_int_eq(tap_open(bridge, "shared", uid, 1000, 0, test_key, &info),
                     expected);
    ck_assert_mem_eq(&info, &untouched, sizeof(info));
    ck_assert_int_eq(count_tap_devices(), 0);
}

START_TEST(test_unknown_bridge) {
    assert_fails_cleanly("nosuch", 1000, -ENODEV);
}
END_TEST

START_TEST(test_not_a_bridge) {
    // Some kernels lack the dummy driver; a veth serves the same purpose.
    run("ip link add plain0 type dummy 2>/dev/null || "
        "ip link add plain0 type veth peer name plain0-p");
    assert_fails_cleanly("plain0", 1000, -EINVAL);
    run("ip link del plain0");
}
END_TEST

// An owner the kernel refuses fails after the device exists: the device must
// go with the descriptor tap_open closes.
START_TEST(test_failure_after_creation) {
    assert_fails_cleanly(BRIDGE, (uint32_t)-1, -EINVAL);
}
END_TEST

START_TEST(test_send_reports_full_socket) {
    static const char reply[] = "{}";
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int sv[2];
    int status = 0;

    ck_assert_int_ge(devnull, 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv), 0);
    // Nobody reads sv[1]; the queue fills after a bounded number of sends.
    for (int i = 0; i < 100000 && status == 0; i++)
        status = tap_send_with_fd(sv[0], reply, sizeof(reply), devnull);
    ck_assert_int_eq(status, -EAGAIN);
    close(sv[0]);
    close(sv[1]);
    close(devnull);
}
END_TEST

START_TEST(test_send_bad_socket) {
    ck_assert_int_eq(tap_send_with_fd(-1, "{}", 2, 0), -EBADF);
}
END_TEST

static Suite *linux_tap_suite(void) {
    Suite *suite = suite_create("linux_tap");
    TCase *device = tcase_create("device");
    TCase *sending = tcase_create("sending");

    tcase_add_checked_fixture(device, setup, teardown);
    // Above REPLY_WAIT_MS, so a missing reply fails with its own message.
    tcase_set_timeout(device, 60);
    tcase_add_test(device, test_device_attached);
    tcase_add_test(device, test_arp_through_descriptor);
    tcase_add_test(device, test_close_removes_device);
    tcase_add_test(device, test_unprivileged_receiver);
    tcase_add_test(device, test_guest_mac_stable);
    tcase_add_test(device, test_unknown_bridge);
    tcase_add_test(device, test_not_a_bridge);
    tcase_add_test(device, test_failure_after_creation);
    suite_add_tcase(suite, device);

    tcase_add_test(sending, test_send_reports_full_socket);
    tcase_add_test(sending, test_send_bad_socket);
    suite_add_tcase(suite, sending);
    return suite;
}

int main(void) {
    SRunner *runner;
    int failed;

    if (geteuid() != 0) {
        fprintf(stderr, "check_linux_tap: needs root for a network "
                        "namespace; skipped\n");
        return 77;
    }
    // Everything below, Check's forked children included, lives in a private
    // network namespace, so no test can touch the host's own interfaces. A
    // private mount namespace with a fresh sysfs shows that namespace's
    // devices under /sys/class/net (sysfs shows those of its mounter).
    if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
        fprintf(stderr, "check_linux_tap: unshare: %s\n", strerror(errno));
        return errno == EPERM ? 77 : 1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("sysfs", "/sys", "sysfs", 0, NULL) != 0) {
        fprintf(stderr, "check_linux_tap: cannot mount sysfs: %s\n",
                strerror(errno));
        return 1;
    }
    if (system("ip link set lo up") != 0) {
        fprintf(stderr, "check_linux_tap: cannot bring lo up\n");
        return 1;
    }
    runner = srunner_create(linux_tap_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
