// SPDX-License-Identifier: Apache-2.0
// The netlink bridge backend, run for real inside a private network namespace.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <net/if.h>
#include <netlink/cache.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/network_config.h"
#include "core/status.h"
#include "core/subnet.h"
#include "linux/linux_bridge.h"
#include "linux/linux_instance.h"
#include "linux/linux_network.h"
#include "linux/linux_tap.h"
#include "linux/nl_errno.h"

static struct nl_sock *sock;
static struct linux_backend *backend;

// Runs a shell command (fixtures only: the backend itself never runs ip).
static void run(const char *fmt, ...) {
    char command[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(command, sizeof(command), fmt, ap);
    va_end(ap);
    ck_assert_msg(system(command) == 0, "command failed: %s", command);
}

// A link that is not a bridge. Some kernels lack the dummy driver; a veth
// (whose peer goes away with it) serves the same purpose.
static void add_plain_link(const char *name) {
    run("ip link add %s type dummy 2>/dev/null || "
        "ip link add %s type veth peer name %.12s-p",
        name, name, name);
}

static void delete_all_links(void) {
    struct nl_cache *links = NULL;

    ck_assert_int_eq(rtnl_link_alloc_cache(sock, AF_UNSPEC, &links), 0);
    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_link *link = (struct rtnl_link *)obj;
        // A veth's peer may already be gone with its twin.
        if (!(rtnl_link_get_flags(link) & IFF_LOOPBACK))
            rtnl_link_delete(sock, link);
    }
    nl_cache_free(links);
}

static struct rtnl_link *find_link(const char *name) {
    struct rtnl_link *link = NULL;
    return rtnl_link_get_kernel(sock, 0, name, &link) == 0 ? link : NULL;
}

static bool link_exists(const char *name) {
    struct rtnl_link *link = find_link(name);
    rtnl_link_put(link);
    return link != NULL;
}

static int count_links(void) {
    struct nl_cache *links = NULL;
    int n;

    ck_assert_int_eq(rtnl_link_alloc_cache(sock, AF_UNSPEC, &links), 0);
    n = nl_cache_nitems(links);
    nl_cache_free(links);
    return n;
}

static int count_vmb_links(void) {
    struct nl_cache *links = NULL;
    int n = 0;

    ck_assert_int_eq(rtnl_link_alloc_cache(sock, AF_UNSPEC, &links), 0);
    for (struct nl_object *obj = nl_cache_get_first(links); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        if (strncmp(rtnl_link_get_name((struct rtnl_link *)obj), "vmb-", 4) ==
            0)
            n++;
    }
    nl_cache_free(links);
    return n;
}

// The IPv4 addresses of a link as "a.b.c.d/len" joined by spaces.
static void ipv4_addresses(const char *name, char *out, size_t size) {
    struct rtnl_link *link = find_link(name);
    struct nl_cache *addrs = NULL;

    ck_assert_ptr_nonnull(link);
    out[0] = '\0';
    ck_assert_int_eq(rtnl_addr_alloc_cache(sock, &addrs), 0);
    for (struct nl_object *obj = nl_cache_get_first(addrs); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_addr *addr = (struct rtnl_addr *)obj;
        char text[64];
        if (rtnl_addr_get_family(addr) != AF_INET ||
            rtnl_addr_get_ifindex(addr) != rtnl_link_get_ifindex(link))
            continue;
        nl_addr2str(rtnl_addr_get_local(addr), text, sizeof(text));
        snprintf(out + strlen(out), size - strlen(out), "%s%s",
                 out[0] ? " " : "", text);
    }
    nl_cache_free(addrs);
    rtnl_link_put(link);
}

static uint32_t ip(const char *text) {
    uint32_t address = 0;
    ck_assert_msg(ipv4_parse(text, &address), "bad test address %s", text);
    return address;
}

static void on_created(void *data, int status, const char *message) {
    (void)message;
    *(int *)data = status;
}

static void on_destroyed(void *data) { *(bool *)data = true; }

// Without services (no dnsmasq) the backend completes before returning.
static int create(const struct network_config *config,
                  struct network_info *info, void **handle) {
    int status = -1;
    linux_backend_ops.create(backend, config, info, handle, on_created,
                             &status);
    ck_assert_int_ne(status, -1);
    // A failed creation frees the handle it stored.
    if (status != BROKER_OK)
        *handle = NULL;
    return status;
}

static void destroy(void *handle) {
    bool done = false;
    if (handle == NULL)
        return;
    linux_backend_ops.destroy(backend, handle, on_destroyed, &done);
    ck_assert(done);
}

static struct network_config dynamic_config(const char *name) {
    struct network_config config;
    network_config_init(&config, name, NETWORK_MODE_SHARED);
    return config;
}

static struct network_config static_config(const char *name, const char *subnet,
                                           const char *mask) {
    struct network_config config = dynamic_config(name);
    config.has_subnet = true;
    config.subnet = ip(subnet);
    config.mask = ip(mask);
    return config;
}

// Every test starts from a namespace holding only lo, whatever an earlier
// failed test left behind.
static void setup(void) {
    sock = nl_socket_alloc();
    ck_assert_ptr_nonnull(sock);
    ck_assert_int_eq(nl_connect(sock, NETLINK_ROUTE), 0);
    delete_all_links();
    ck_assert_int_eq(count_links(), 1);
    ck_assert_int_eq(linux_backend_new(&backend), 0);
}

static void teardown(void) {
    ck_assert_int_eq(count_links(), 1);
    linux_backend_free(backend);
    backend = NULL;
    nl_socket_free(sock);
    sock = NULL;
}

START_TEST(test_name_short) {
    char name[IFNAMSIZ];

    linux_bridge_name("shared", name);
    ck_assert_str_eq(name, "vmb-shared");
    linux_bridge_name("a", name);
    ck_assert_str_eq(name, "vmb-a");
}
END_TEST

START_TEST(test_name_exactly_eleven) {
    char name[IFNAMSIZ];

    linux_bridge_name("abcdefghijk", name);
    ck_assert_str_eq(name, "vmb-abcdefghijk");
    ck_assert_uint_eq(strlen(name), IFNAMSIZ - 1);
}
END_TEST

START_TEST(test_name_long) {
    char name[IFNAMSIZ];

    // FNV-1a("abcdefghijkl") = 0xe8fb3e15.
    linux_bridge_name("abcdefghijkl", name);
    ck_assert_str_eq(name, "vmb-abcde-b3e15");
    // FNV-1a("my-very-long-network-name") = 0xd16214e8.
    linux_bridge_name("my-very-long-network-name", name);
    ck_assert_str_eq(name, "vmb-my-ve-214e8");
    ck_assert_uint_eq(strlen(name), IFNAMSIZ - 1);
}
END_TEST

START_TEST(test_name_hash) {
    char first[IFNAMSIZ];
    char again[IFNAMSIZ];
    char other[IFNAMSIZ];

    // Published FNV-1a 32-bit test vectors.
    ck_assert_uint_eq(linux_bridge_name_hash(""), 0x811c9dc5u);
    ck_assert_uint_eq(linux_bridge_name_hash("a"), 0xe40c292cu);
    ck_assert_uint_eq(linux_bridge_name_hash("foobar"), 0xbf9cf968u);

    linux_bridge_name("abcdefghijkl", first);
    linux_bridge_name("abcdefghijkl", again);
    linux_bridge_name("abcdefghijkm", other);
    ck_assert_str_eq(first, again);
    ck_assert_str_ne(first, other);
}
END_TEST

START_TEST(test_is_marked) {
    ck_assert(linux_bridge_is_marked("vmb-shared", "bridge", "shared"));
    ck_assert(
        linux_bridge_is_marked("vmb-abcde-b3e15", "bridge", "abcdefghijkl"));
    ck_assert(!linux_bridge_is_marked("vmb-shared", "bridge", NULL));
    ck_assert(!linux_bridge_is_marked("vmb-shared", "dummy", "shared"));
    ck_assert(!linux_bridge_is_marked("vmb-shared", NULL, "shared"));
    ck_assert(!linux_bridge_is_marked("vmb-shared", "bridge", "host"));
    ck_assert(!linux_bridge_is_marked("br-shared", "bridge", "shared"));
    ck_assert(
        !linux_bridge_is_marked("vmb-abcde-00000", "bridge", "abcdefghijkl"));
    ck_assert(!linux_bridge_is_marked("vmb-a b", "bridge", "a b"));
}
END_TEST

// Another runtime directory's instance: its id in every name and mark, and
// no name or mark of the default instance (or of a third) is its own.
START_TEST(test_instance_names) {
    char name[IFNAMSIZ];
    char other[IFNAMSIZ];
    char id[LINUX_INSTANCE_ID_LEN + 1];

    ck_assert_int_eq(linux_instance_init("/run/vmnet-broker", NULL), 0);
    ck_assert_str_eq(linux_instance_id(), "");
    ck_assert_str_eq(linux_instance_table(), "vmnet-broker");
    ck_assert_int_eq(linux_instance_init("/no/such/dir/a", ""), 0);
    snprintf(id, sizeof(id), "%04x",
             (unsigned)(linux_bridge_name_hash("/no/such/dir/a") & 0xffffu));
    ck_assert_str_eq(linux_instance_id(), id);
    snprintf(name, sizeof(name), "vmb%s-", id);
    ck_assert_str_eq(linux_instance_bridge_prefix(), name);
    ck_assert_int_eq(strncmp(linux_instance_table(), "vmnet-broker-", 13), 0);
    ck_assert_str_eq(linux_instance_table() + 13, id);
    linux_bridge_name("shared", name);
    snprintf(other, sizeof(other), "vmb%s-shared", id);
    ck_assert_str_eq(name, other);
    // 7 characters whole, longer ones 1 + "-" + 5 hex digits.
    linux_bridge_name("abcdefgh", name);
    ck_assert_uint_eq(strlen(name), IFNAMSIZ - 1);
    ck_assert_int_eq(strncmp(name + 8, "a-", 2), 0);
    ck_assert(linux_bridge_is_marked(name, "bridge", "abcdefgh"));
    ck_assert(linux_bridge_is_marked(other, "bridge", "shared"));
    ck_assert(!linux_bridge_is_marked("vmb-shared", "bridge", "shared"));
    ck_assert(!tap_alias_is_ours(NULL));
    ck_assert(!tap_alias_is_ours("vmnet-broker-tap 0 0 shared"));
    ck_assert(linux_instance_any_bridge("vmb-shared"));
    ck_assert(linux_instance_any_bridge(other));
    ck_assert(!linux_instance_any_bridge("vmbzzzz-shared"));
    ck_assert(!linux_instance_any_bridge("eth0"));
    // Overrides: the plain names, a given id, and nothing else.
    ck_assert_int_eq(linux_instance_init("/no/such/dir/a", "1a2b"), 0);
    ck_assert_str_eq(linux_instance_tap_mark(), "vmnet-broker-tap-1a2b");
    ck_assert(tap_alias_is_ours("vmnet-broker-tap-1a2b 0 0 shared"));
    ck_assert(!tap_alias_is_ours("vmnet-broker-tap-1a2c 0 0 shared"));
    ck_assert_int_eq(linux_instance_init("/x", "1A2B"), -EINVAL);
    ck_assert_int_eq(linux_instance_init("/x", "12345"), -EINVAL);
    ck_assert_int_eq(linux_instance_init("/x", "default"), 0);
    ck_assert_str_eq(linux_instance_id(), "");
    ck_assert(tap_alias_is_ours("vmnet-broker-tap 0 0 shared"));
    ck_assert(!tap_alias_is_ours("vmnet-broker-tap-1a2b 0 0 shared"));
    linux_bridge_name("shared", name);
    ck_assert_str_eq(name, "vmb-shared");
}
END_TEST

// The backend's one error convention: libnl's codes become errno once.
START_TEST(test_nl_to_errno) {
    ck_assert_int_eq(nl_to_errno(0), 0);
    ck_assert_int_eq(nl_to_errno(7), 7);
    ck_assert_int_eq(nl_to_errno(-NLE_EXIST), -EEXIST);
    ck_assert_int_eq(nl_to_errno(-NLE_NODEV), -ENODEV);
    ck_assert_int_eq(nl_to_errno(-NLE_OBJ_NOTFOUND), -ENOENT);
    ck_assert_int_eq(nl_to_errno(-NLE_NOMEM), -ENOMEM);
    ck_assert_int_eq(nl_to_errno(-NLE_PERM), -EPERM);
    ck_assert_int_eq(nl_to_errno(-NLE_MSG_OVERFLOW), -ENOBUFS);
    ck_assert_int_eq(nl_to_errno(-NLE_FAILURE), -EIO);
    ck_assert_int_eq(nl_to_errno(-10000), -EIO);
}
END_TEST

START_TEST(test_random_mac) {
    uint8_t first[6];
    uint8_t second[6];

    ck_assert(linux_bridge_random_mac(first));
    ck_assert(linux_bridge_random_mac(second));
    ck_assert_uint_eq(first[0] & 0x03, 0x02);
    ck_assert_uint_eq(second[0] & 0x03, 0x02);
    ck_assert(memcmp(first, second, sizeof(first)) != 0);
}
END_TEST

START_TEST(test_create_dynamic) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;
    struct rtnl_link *link;
    struct nl_addr *mac;
    const uint8_t *mac_bytes;
    char addresses[256];

    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_ptr_nonnull(handle);
    ck_assert_str_eq(info.bridge, "vmb-shared");
    ck_assert_uint_eq(info.subnet, ip("192.168.64.0"));
    ck_assert_uint_eq(info.mask, ip("255.255.255.0"));
    ck_assert_uint_eq(info.gateway, ip("192.168.64.1"));
    ck_assert_uint_eq(info.mtu, 1500);
    ck_assert_uint_eq(strlen(info.uuid), 36);
    ck_assert(!info.dhcp);
    ck_assert(!info.ipv6);
    ck_assert_uint_eq(info.dns, 0);

    link = find_link("vmb-shared");
    ck_assert_ptr_nonnull(link);
    ck_assert_str_eq(rtnl_link_get_type(link), "bridge");
    ck_assert_ptr_nonnull(rtnl_link_get_ifalias(link));
    ck_assert_str_eq(rtnl_link_get_ifalias(link), "shared");
    ck_assert(rtnl_link_get_flags(link) & IFF_UP);
    ck_assert_uint_eq(rtnl_link_get_mtu(link), 1500);
    mac = rtnl_link_get_addr(link);
    ck_assert_uint_eq(nl_addr_get_len(mac), 6);
    mac_bytes = nl_addr_get_binary_addr(mac);
    ck_assert_uint_eq(mac_bytes[0] & 0x03, 0x02);
    rtnl_link_put(link);
    ipv4_addresses("vmb-shared", addresses, sizeof(addresses));
    ck_assert_str_eq(addresses, "192.168.64.1/24");

    destroy(handle);
    ck_assert(!link_exists("vmb-shared"));
}
END_TEST

START_TEST(test_mac_stays_when_ports_join) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;
    struct rtnl_link *link;
    char before[32];
    char after[32];

    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    link = find_link("vmb-shared");
    ck_assert_ptr_nonnull(link);
    nl_addr2str(rtnl_link_get_addr(link), before, sizeof(before));
    rtnl_link_put(link);
    // Lower than any locally administered address: a bridge without an
    // explicit MAC would take it.
    add_plain_link("port0");
    run("ip link set port0 address 00:00:00:00:00:01");
    run("ip link set port0 master vmb-shared");
    link = find_link("vmb-shared");
    ck_assert_ptr_nonnull(link);
    nl_addr2str(rtnl_link_get_addr(link), after, sizeof(after));
    rtnl_link_put(link);
    ck_assert_str_eq(before, after);
    destroy(handle);
    run("ip link del port0");
}
END_TEST

START_TEST(test_uuid_differs_per_instance) {
    struct network_config config = dynamic_config("shared");
    struct network_info first;
    struct network_info second;
    void *handle = NULL;

    ck_assert_int_eq(create(&config, &first, &handle), BROKER_OK);
    destroy(handle);
    ck_assert_int_eq(create(&config, &second, &handle), BROKER_OK);
    destroy(handle);
    ck_assert_str_ne(first.uuid, second.uuid);
}
END_TEST

START_TEST(test_second_network_next_subnet) {
    struct network_config shared = dynamic_config("shared");
    struct network_config host = dynamic_config("host");
    struct network_info first;
    struct network_info second;
    void *first_handle = NULL;
    void *second_handle = NULL;
    char addresses[256];

    ck_assert_int_eq(create(&shared, &first, &first_handle), BROKER_OK);
    ck_assert_int_eq(create(&host, &second, &second_handle), BROKER_OK);
    ck_assert_uint_eq(first.subnet, ip("192.168.64.0"));
    ck_assert_uint_eq(second.subnet, ip("192.168.65.0"));
    ck_assert_uint_eq(second.gateway, ip("192.168.65.1"));
    ipv4_addresses("vmb-host", addresses, sizeof(addresses));
    ck_assert_str_eq(addresses, "192.168.65.1/24");
    destroy(first_handle);
    destroy(second_handle);
    ck_assert_int_eq(count_vmb_links(), 0);
}
END_TEST

START_TEST(test_dynamic_skips_host_address) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;

    // Down, so the kernel has no route for it: only the address says so.
    add_plain_link("other0");
    run("ip addr add 192.168.64.5/24 dev other0");
    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.65.0"));
    destroy(handle);
    run("ip link del other0");
}
END_TEST

START_TEST(test_dynamic_skips_host_route) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;

    add_plain_link("other0");
    run("ip link set other0 up");
    run("ip route add 192.168.64.0/23 dev other0");
    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.66.0"));
    destroy(handle);
    run("ip link del other0");
}
END_TEST

START_TEST(test_no_free_subnet) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;

    add_plain_link("other0");
    run("ip link set other0 up");
    run("ip route add 192.168.0.0/16 dev other0");
    ck_assert_int_eq(create(&config, &info, &handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_null(handle);
    ck_assert_int_eq(count_vmb_links(), 0);
    run("ip link del other0");
}
END_TEST

START_TEST(test_default_route_ignored) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;

    add_plain_link("other0");
    run("ip link set other0 up");
    run("ip route add default dev other0");
    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.64.0"));
    destroy(handle);
    run("ip link del other0");
}
END_TEST

START_TEST(test_static_gateway_form) {
    struct network_config config =
        static_config("lab", "192.168.42.1", "255.255.255.0");
    struct network_info info;
    void *handle = NULL;
    char addresses[256];

    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.42.0"));
    ck_assert_uint_eq(info.mask, ip("255.255.255.0"));
    ck_assert_uint_eq(info.gateway, ip("192.168.42.1"));
    ipv4_addresses("vmb-lab", addresses, sizeof(addresses));
    ck_assert_str_eq(addresses, "192.168.42.1/24");
    destroy(handle);
}
END_TEST

START_TEST(test_static_other_gateway) {
    struct network_config config =
        static_config("lab", "10.20.30.40", "255.255.0.0");
    struct network_info info;
    void *handle = NULL;
    char addresses[256];

    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("10.20.0.0"));
    ck_assert_uint_eq(info.mask, ip("255.255.0.0"));
    ck_assert_uint_eq(info.gateway, ip("10.20.30.40"));
    ipv4_addresses("vmb-lab", addresses, sizeof(addresses));
    ck_assert_str_eq(addresses, "10.20.30.40/16");
    destroy(handle);
}
END_TEST

START_TEST(test_static_network_and_broadcast_forms) {
    struct network_config network_form =
        static_config("lab", "192.168.42.0", "255.255.255.0");
    struct network_config broadcast_form =
        static_config("lab", "192.168.42.255", "255.255.255.0");
    struct network_info info;
    void *handle = NULL;

    ck_assert_int_eq(create(&network_form, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.42.0"));
    ck_assert_uint_eq(info.gateway, ip("192.168.42.1"));
    destroy(handle);
    ck_assert_int_eq(create(&broadcast_form, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.42.0"));
    ck_assert_uint_eq(info.gateway, ip("192.168.42.1"));
    destroy(handle);
}
END_TEST

START_TEST(test_static_overlaps_address) {
    struct network_config config =
        static_config("lab", "192.168.42.1", "255.255.255.0");
    struct network_info info;
    void *handle = NULL;

    add_plain_link("other0");
    run("ip addr add 192.168.42.200/28 dev other0");
    ck_assert_int_eq(create(&config, &info, &handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_null(handle);
    ck_assert_int_eq(count_vmb_links(), 0);
    run("ip link del other0");
}
END_TEST

START_TEST(test_static_overlaps_route) {
    struct network_config config =
        static_config("lab", "192.168.42.1", "255.255.255.0");
    struct network_info info;
    void *handle = NULL;

    add_plain_link("other0");
    run("ip link set other0 up");
    run("ip route add 192.168.0.0/16 dev other0");
    ck_assert_int_eq(create(&config, &info, &handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_int_eq(count_vmb_links(), 0);
    run("ip link del other0");
}
END_TEST

START_TEST(test_static_overlaps_other_network) {
    struct network_config first =
        static_config("lab", "192.168.42.1", "255.255.255.0");
    struct network_config second =
        static_config("lab2", "192.168.42.128", "255.255.255.128");
    struct network_info info;
    void *handle = NULL;
    void *second_handle = NULL;

    ck_assert_int_eq(create(&first, &info, &handle), BROKER_OK);
    ck_assert_int_eq(create(&second, &info, &second_handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_null(second_handle);
    ck_assert(!link_exists("vmb-lab2"));
    destroy(handle);
}
END_TEST

// A live network's subnet stays its own while its bridge is gone (deleted
// by hand; the full broker makes it again): neither a dynamic nor a static
// network gets it meanwhile.
START_TEST(test_gone_bridge_keeps_its_subnet) {
    struct network_config first = dynamic_config("first");
    struct network_config second = dynamic_config("second");
    struct network_config taker =
        static_config("taker", "192.168.64.1", "255.255.255.0");
    struct network_info info, second_info;
    void *handle = NULL, *second_handle = NULL, *taker_handle = NULL;

    ck_assert_int_eq(create(&first, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.subnet, ip("192.168.64.0"));
    run("ip link del vmb-first");
    ck_assert_int_eq(create(&second, &second_info, &second_handle), BROKER_OK);
    ck_assert_uint_ne(second_info.subnet, ip("192.168.64.0"));
    ck_assert_int_eq(create(&taker, &info, &taker_handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_null(taker_handle);
    destroy(handle);
    // Once the network is removed its subnet is free again.
    ck_assert_int_eq(create(&taker, &info, &taker_handle), BROKER_OK);
    destroy(taker_handle);
    destroy(second_handle);
    ck_assert_int_eq(count_vmb_links(), 0);
}
END_TEST

START_TEST(test_mtu_from_config) {
    struct network_config config = dynamic_config("jumbo");
    struct network_info info;
    void *handle = NULL;
    struct rtnl_link *link;

    config.mtu = 9000;
    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.mtu, 9000);
    link = find_link("vmb-jumbo");
    ck_assert_ptr_nonnull(link);
    ck_assert_uint_eq(rtnl_link_get_mtu(link), 9000);
    rtnl_link_put(link);
    destroy(handle);
}
END_TEST

START_TEST(test_mtu_follows_default_route) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;
    struct rtnl_link *link;

    // The lowest metric default route in the main table wins.
    add_plain_link("up0");
    add_plain_link("up1");
    run("ip link set up0 mtu 1400 up");
    run("ip link set up1 mtu 1300 up");
    run("ip route add default dev up1 metric 200");
    run("ip route add default dev up0 metric 100");
    run("ip route add default dev up1 metric 50 table 100");
    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_uint_eq(info.mtu, 1400);
    link = find_link("vmb-shared");
    ck_assert_ptr_nonnull(link);
    ck_assert_uint_eq(rtnl_link_get_mtu(link), 1400);
    rtnl_link_put(link);
    destroy(handle);
    run("ip link del up0");
    run("ip link del up1");
}
END_TEST

START_TEST(test_existing_interface_is_not_ours) {
    struct network_config config = dynamic_config("taken");
    struct network_info info;
    void *handle = NULL;

    run("ip link add vmb-taken type bridge");
    ck_assert_int_eq(create(&config, &info, &handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_null(handle);
    // Someone else's interface survives the failed attempt.
    ck_assert(link_exists("vmb-taken"));
    run("ip link del vmb-taken");
}
END_TEST

START_TEST(test_create_failure_leaves_nothing) {
    struct network_config config = dynamic_config("huge");
    struct network_info info;
    void *handle = NULL;

    // Beyond any bridge's maximum MTU: the kernel refuses the link.
    config.mtu = 1000000;
    ck_assert_int_eq(create(&config, &info, &handle),
                     BROKER_ERR_CREATE_FAILURE);
    ck_assert_ptr_null(handle);
    ck_assert_int_eq(count_vmb_links(), 0);
}
END_TEST

START_TEST(test_destroy_null) { destroy(NULL); }
END_TEST

START_TEST(test_destroy_spares_reused_ifindex) {
    struct network_config config = dynamic_config("gone");
    struct network_info info;
    void *handle = NULL;
    struct rtnl_link *link;
    int ifindex;

    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    link = find_link("vmb-gone");
    ck_assert_ptr_nonnull(link);
    ifindex = rtnl_link_get_ifindex(link);
    rtnl_link_put(link);
    // Someone removes the bridge and the kernel hands its index to another.
    run("ip link del vmb-gone");
    run("ip link add vmb-other index %d type bridge", ifindex);
    destroy(handle);
    ck_assert(link_exists("vmb-other"));
    run("ip link del vmb-other");
}
END_TEST

START_TEST(test_remove_stale) {
    // Left by a previous broker: marked bridges, short and hashed names.
    run("ip link add vmb-old type bridge");
    run("ip link set vmb-old alias old");
    run("ip link add vmb-abcde-b3e15 type bridge");
    run("ip link set vmb-abcde-b3e15 alias abcdefghijkl");
    // Not ours: no alias, an alias naming another bridge, not a bridge.
    run("ip link add vmb-foo type bridge");
    run("ip link add vmb-bar type bridge");
    run("ip link set vmb-bar alias baz");
    add_plain_link("vmb-dum");
    run("ip link set vmb-dum alias dum");

    ck_assert_int_eq(linux_backend_remove_stale(backend), 2);
    ck_assert(!link_exists("vmb-old"));
    ck_assert(!link_exists("vmb-abcde-b3e15"));
    ck_assert(link_exists("vmb-foo"));
    ck_assert(link_exists("vmb-bar"));
    ck_assert(link_exists("vmb-dum"));
    ck_assert_int_eq(linux_backend_remove_stale(backend), 0);
    run("ip link del vmb-foo");
    run("ip link del vmb-bar");
    run("ip link del vmb-dum");
}
END_TEST

START_TEST(test_remove_stale_after_create) {
    struct network_config config = dynamic_config("shared");
    struct network_info info;
    void *handle = NULL;

    // What create() makes is exactly what remove_stale() recognises.
    ck_assert_int_eq(create(&config, &info, &handle), BROKER_OK);
    ck_assert_int_eq(linux_backend_remove_stale(backend), 1);
    ck_assert(!link_exists("vmb-shared"));
    destroy(handle);
}
END_TEST

static Suite *linux_bridge_suite(void) {
    Suite *suite = suite_create("linux_bridge");
    TCase *naming = tcase_create("naming");
    TCase *netlink = tcase_create("netlink");

    tcase_add_test(naming, test_name_short);
    tcase_add_test(naming, test_name_exactly_eleven);
    tcase_add_test(naming, test_name_long);
    tcase_add_test(naming, test_name_hash);
    tcase_add_test(naming, test_is_marked);
    tcase_add_test(naming, test_instance_names);
    tcase_add_test(naming, test_nl_to_errno);
    tcase_add_test(naming, test_random_mac);
    suite_add_tcase(suite, naming);

    tcase_add_checked_fixture(netlink, setup, teardown);
    tcase_add_test(netlink, test_create_dynamic);
    tcase_add_test(netlink, test_mac_stays_when_ports_join);
    tcase_add_test(netlink, test_uuid_differs_per_instance);
    tcase_add_test(netlink, test_second_network_next_subnet);
    tcase_add_test(netlink, test_dynamic_skips_host_address);
    tcase_add_test(netlink, test_dynamic_skips_host_route);
    tcase_add_test(netlink, test_no_free_subnet);
    tcase_add_test(netlink, test_default_route_ignored);
    tcase_add_test(netlink, test_static_gateway_form);
    tcase_add_test(netlink, test_static_other_gateway);
    tcase_add_test(netlink, test_static_network_and_broadcast_forms);
    tcase_add_test(netlink, test_static_overlaps_address);
    tcase_add_test(netlink, test_static_overlaps_route);
    tcase_add_test(netlink, test_static_overlaps_other_network);
    tcase_add_test(netlink, test_gone_bridge_keeps_its_subnet);
    tcase_add_test(netlink, test_mtu_from_config);
    tcase_add_test(netlink, test_mtu_follows_default_route);
    tcase_add_test(netlink, test_existing_interface_is_not_ours);
    tcase_add_test(netlink, test_create_failure_leaves_nothing);
    tcase_add_test(netlink, test_destroy_null);
    tcase_add_test(netlink, test_destroy_spares_reused_ifindex);
    tcase_add_test(netlink, test_remove_stale);
    tcase_add_test(netlink, test_remove_stale_after_create);
    suite_add_tcase(suite, netlink);
    return suite;
}

int main(void) {
    SRunner *runner;
    int failed;

    if (geteuid() != 0) {
        fprintf(stderr, "check_linux_bridge: needs root for a network "
                        "namespace; skipped\n");
        return 77;
    }
    // Everything below, Check's forked children included, lives in a private
    // namespace, so no test can touch the host's own interfaces.
    if (unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr, "check_linux_bridge: unshare(CLONE_NEWNET): %s\n",
                strerror(errno));
        return errno == EPERM ? 77 : 1;
    }
    if (system("ip link set lo up") != 0) {
        fprintf(stderr, "check_linux_bridge: cannot bring lo up\n");
        return 1;
    }
    runner = srunner_create(linux_bridge_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
