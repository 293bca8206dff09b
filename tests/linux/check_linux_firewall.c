// SPDX-License-Identifier: Apache-2.0
// The nftables firewall and forwarding sysctls, proved with real traffic.
//
// Each test runs in a network namespace of its own that plays the host. The
// traffic tests add named namespaces: guest "ga" on bridge vmb-a
// (192.168.81.0/24, fd81::/64), guest "gb" on vmb-b (192.168.82.0/24), and
// "out", the outside, behind the host's uplink (198.51.100.0/24,
// 2001:db8:100::/64), with routes back to both guest subnets: without the
// firewall every guest reaches everything, so each block and each
// translation seen is the firewall's doing.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/backend.h"
#include "core/network_config.h"
#include "linux/linux_firewall.h"
#include "linux/linux_sysctl.h"

#define TABLE "inet " FIREWALL_TABLE
#define NETNS_DIR "/run/netns/"

// Positive probes wait long enough for any machine; negative ones only need
// to show that nothing came back, and a slow answer would not fail them.
#define REACH_MS 5000
#define BLOCKED_MS 1000
#define LISTEN_MS 20000

// Named namespaces are visible machine-wide, so their names carry the pid of
// the test program.
static char ns_prefix[32];
static const char *const ROLES[] = {"ga", "gb", "out"};

// Runs a shell command (fixtures only: the firewall itself never runs one).
__attribute__((format(printf, 1, 2))) static void run(const char *fmt, ...) {
    char command[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(command, sizeof(command), fmt, ap);
    va_end(ap);
    ck_assert_msg(system(command) == 0, "command failed: %s", command);
}

// The full name of namespace role. Three buffers in turn, so that one
// command line can name several.
static const char *ns(const char *role) {
    static char names[3][64];
    static int next;
    char *name = names[next++ % 3];

    snprintf(name, sizeof(names[0]), "%s%s", ns_prefix, role);
    return name;
}

static void delete_namespaces(void) {
    char command[128];

    for (size_t i = 0; i < sizeof(ROLES) / sizeof(ROLES[0]); i++) {
        snprintf(command, sizeof(command), "ip netns del %s%s 2>/dev/null",
                 ns_prefix, ROLES[i]);
        // Absent namespaces are the normal case.
        (void)!system(command);
    }
}

// Every test starts from an empty namespace of its own, so none sees what
// another left (Check runs each in a forked child).
static void fresh_namespace(void) {
    ck_assert_int_eq(unshare(CLONE_NEWNET), 0);
    run("ip link set lo up");
    delete_namespaces();
}

// ---- nftables as the test sees it -----------------------------------------

// Runs an nft command; returns its output (malloc'd, JSON when json), or NULL
// when nft refused it.
static char *nft(const char *command, bool json) {
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    char *output = NULL;

    ck_assert_ptr_nonnull(ctx);
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (json)
        nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_JSON);
    if (nft_run_cmd_from_buffer(ctx, command) == 0)
        output = strdup(nft_ctx_get_output_buffer(ctx));
    nft_ctx_free(ctx);
    return output;
}

static void nft_ok(const char *command) {
    char *output = nft(command, false);

    ck_assert_msg(output != NULL, "nft refused: %s", command);
    free(output);
}

static bool nft_succeeds(const char *command) {
    char *output = nft(command, false);
    bool succeeded = output != NULL;

    free(output);
    return succeeded;
}

static char *ruleset(void) {
    char *json = nft("list ruleset", true);

    ck_assert_ptr_nonnull(json);
    return json;
}

static bool chain_exists(const char *chain) {
    char command[128];

    snprintf(command, sizeof(command), "list chain " TABLE " %s", chain);
    return nft_succeeds(command);
}

// Rulesets are too long for Check's messages: a difference goes to stderr.
static void assert_ruleset_is(const char *expected) {
    char *now = ruleset();
    bool same = strcmp(now, expected) == 0;

    if (!same)
        fprintf(stderr, "expected ruleset:\n%s\nactual ruleset:\n%s\n",
                expected, now);
    free(now);
    ck_assert_msg(same, "the ruleset differs from the expected one");
}

// ---- Networks --------------------------------------------------------------

static uint32_t ip(const char *text) {
    struct in_addr address;

    ck_assert_int_eq(inet_pton(AF_INET, text, &address), 1);
    return ntohl(address.s_addr);
}

// Network a: vmb-a, 192.168.81.0/24 and fd81::/64.
static void network_a(enum network_mode mode, struct network_config *config,
                      struct network_info *info) {
    network_config_init(config, "a", mode);
    memset(info, 0, sizeof(*info));
    snprintf(info->bridge, sizeof(info->bridge), "vmb-a");
    info->subnet = ip("192.168.81.0");
    info->mask = 0xffffff00u;
    info->gateway = ip("192.168.81.1");
    info->ipv6 = true;
    ck_assert_int_eq(inet_pton(AF_INET6, "fd81::", info->ipv6_prefix), 1);
    info->ipv6_prefix_len = 64;
}

// Network b: vmb-b, 192.168.82.0/24, IPv4 only.
static void network_b(enum network_mode mode, struct network_config *config,
                      struct network_info *info) {
    network_config_init(config, "b", mode);
    memset(info, 0, sizeof(*info));
    snprintf(info->bridge, sizeof(info->bridge), "vmb-b");
    info->subnet = ip("192.168.82.0");
    info->mask = 0xffffff00u;
    info->gateway = ip("192.168.82.1");
}

static void add_port_forward(struct network_config *config, bool udp,
                             uint16_t host_port, const char *guest,
                             uint16_t guest_port) {
    struct port_forward *forward =
        &config->port_forwards[config->n_port_forwards++];

    forward->udp = udp;
    forward->host_port = host_port;
    forward->guest_address = ip(guest);
    forward->guest_port = guest_port;
}

static struct firewall *firewall_with(enum network_mode a_mode,
                                      enum network_mode b_mode) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;

    ck_assert_int_eq(firewall_new(&fw), 0);
    network_a(a_mode, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    network_b(b_mode, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    return fw;
}

// ---- Rules -----------------------------------------------------------------

START_TEST(test_new_creates_table_and_free_deletes_it) {
    struct firewall *fw = NULL;

    ck_assert(!nft_succeeds("list table " TABLE));
    ck_assert_int_eq(firewall_new(&fw), 0);
    ck_assert_ptr_nonnull(fw);
    ck_assert(chain_exists("forward"));
    ck_assert(chain_exists("prerouting"));
    ck_assert(chain_exists("output"));
    ck_assert(chain_exists("postrouting"));
    firewall_free(fw);
    ck_assert(!nft_succeeds("list table " TABLE));
    firewall_free(NULL);
}
END_TEST

START_TEST(test_new_replaces_stale_table) {
    struct firewall *fw = NULL;
    char *forward;

    // What a killed broker might leave: its table with a network's rules,
    // here with a forward chain that would drop everything.
    nft_ok("add table " TABLE "\n"
           "add chain " TABLE " from-vmb-old\n"
           "add rule " TABLE " from-vmb-old drop\n"
           "add chain " TABLE " forward { type filter hook forward "
           "priority filter; policy drop; }\n");
    ck_assert(chain_exists("from-vmb-old"));

    ck_assert_int_eq(firewall_new(&fw), 0);
    ck_assert(!chain_exists("from-vmb-old"));
    forward = nft("list chain " TABLE " forward", false);
    ck_assert_ptr_nonnull(forward);
    ck_assert_ptr_nonnull(strstr(forward, "policy accept"));
    ck_assert_ptr_nonnull(strstr(forward, "@forward_from"));
    free(forward);
    firewall_free(fw);
    ck_assert(!nft_succeeds("list table " TABLE));
}
END_TEST

START_TEST(test_remove_takes_exactly_its_rules) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;
    char *empty;
    char *with_b;
    char *with_both;

    ck_assert_int_eq(firewall_new(&fw), 0);
    empty = ruleset();
    network_b(NETWORK_MODE_HOST, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    with_b = ruleset();
    ck_assert(strcmp(with_b, empty) != 0);

    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.2", 80);
    add_port_forward(&config, true, 5353, "192.168.81.3", 53);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    with_both = ruleset();
    ck_assert(strcmp(with_both, with_b) != 0);
    ck_assert(chain_exists("from-vmb-a"));
    ck_assert(chain_exists("to-vmb-a"));
    ck_assert(chain_exists("nat-vmb-a"));
    ck_assert_ptr_nonnull(strstr(with_both, "8080"));
    ck_assert_ptr_nonnull(strstr(with_both, "fd81::"));

    firewall_remove_network(fw, "vmb-a");
    assert_ruleset_is(with_b);
    firewall_remove_network(fw, "vmb-b");
    assert_ruleset_is(empty);
    firewall_free(fw);
    free(with_both);
    free(with_b);
    free(empty);
}
END_TEST

START_TEST(test_remove_absent_is_noop) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;
    char *expected;

    ck_assert_int_eq(firewall_new(&fw), 0);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    expected = ruleset();
    firewall_remove_network(fw, "vmb-b");
    firewall_remove_network(fw, "vmb-zz");
    assert_ruleset_is(expected);
    firewall_remove_network(fw, "vmb-a");
    ck_assert(!chain_exists("from-vmb-a"));
    firewall_remove_network(fw, "vmb-a");
    firewall_free(fw);
    free(expected);
}
END_TEST

START_TEST(test_add_twice_fails) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;
    char *expected;

    ck_assert_int_eq(firewall_new(&fw), 0);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    expected = ruleset();
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EEXIST);
    assert_ruleset_is(expected);
    firewall_free(fw);
    free(expected);
}
END_TEST

START_TEST(test_add_is_atomic) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;
    char *expected;

    ck_assert_int_eq(firewall_new(&fw), 0);
    // A chain the network needs is taken, so nft refuses the transaction
    // after most of its commands; none of them may stay.
    nft_ok("add chain " TABLE " nat-vmb-a");
    expected = ruleset();
    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.2", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EIO);
    assert_ruleset_is(expected);
    ck_assert(!chain_exists("from-vmb-a"));

    // And the failure is not remembered: once the way is clear, it works.
    nft_ok("delete chain " TABLE " nat-vmb-a");
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    ck_assert(chain_exists("nat-vmb-a"));
    firewall_free(fw);
    free(expected);
}
END_TEST

START_TEST(test_add_rejects_bad_input) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;
    char *expected;

    ck_assert_int_eq(firewall_new(&fw), 0);
    expected = ruleset();

    network_a(NETWORK_MODE_SHARED, &config, &info);
    snprintf(info.bridge, sizeof(info.bridge), "vmb-a\" }");
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);
    snprintf(info.bridge, sizeof(info.bridge), "eth0");
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);
    snprintf(info.bridge, sizeof(info.bridge), "vmb-");
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);

    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.82.2", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.1", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.2", 80);
    add_port_forward(&config, false, 8080, "192.168.81.3", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);
    network_a(NETWORK_MODE_HOST, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.2", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EINVAL);
    assert_ruleset_is(expected);

    // One host port, one network, per protocol.
    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.2", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    network_b(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.82.2", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), -EADDRINUSE);
    ck_assert(!chain_exists("from-vmb-b"));
    network_b(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, true, 8080, "192.168.82.2", 80);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    firewall_free(fw);
    free(expected);
}
END_TEST

// A guest interface's chain: refused for names that are not the broker's,
// made for one, and then removed exactly (also when the device is gone).
START_TEST(test_interface_chain_comes_and_goes) {
    struct network_config config;
    struct network_info info;
    struct interface_info tap = {.mac = {0x02, 0x76, 1, 2, 3, 4}};
    struct firewall *fw = NULL;
    char *before;
    char *chain;

    ck_assert_int_eq(firewall_new(&fw), 0);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    before = ruleset();
    snprintf(tap.name, sizeof(tap.name), "eth0");
    ck_assert_int_eq(firewall_add_interface(fw, &info, &tap), -EINVAL);
    snprintf(tap.name, sizeof(tap.name), "vmt-1\" }");
    ck_assert_int_eq(firewall_add_interface(fw, &info, &tap), -EINVAL);
    snprintf(tap.name, sizeof(tap.name), "vmt-");
    ck_assert_int_eq(firewall_add_interface(fw, &info, &tap), -EINVAL);
    assert_ruleset_is(before);

    // No such device: the kernel takes the chain all the same, which is
    // what lets a sweep find chains whose device went.
    snprintf(tap.name, sizeof(tap.name), "vmt-0a0b0c0d");
    tap.ipv4 = ip("192.168.81.7");
    ck_assert_int_eq(firewall_add_interface(fw, &info, &tap), 0);
    ck_assert_int_eq(firewall_add_interface(fw, &info, &tap), -EEXIST);
    chain = nft("list chain netdev " FIREWALL_TABLE " tap-vmt-0a0b0c0d", false);
    ck_assert_ptr_nonnull(chain);
    ck_assert_ptr_nonnull(strstr(chain, "policy drop"));
    ck_assert_ptr_nonnull(strstr(chain, "02:76:01:02:03:04"));
    ck_assert_ptr_nonnull(strstr(chain, "192.168.81.7"));
    free(chain);
    firewall_remove_gone_interfaces(fw);
    assert_ruleset_is(before);
    firewall_remove_interface(fw, "vmt-0a0b0c0d");
    assert_ruleset_is(before);
    free(before);
    firewall_free(fw);
}
END_TEST

START_TEST(test_foreign_forward_drop) {
    struct firewall *fw = NULL;

    ck_assert_int_eq(firewall_new(&fw), 0);
    ck_assert(!firewall_foreign_forward_drop(fw));
    // Policies that do not drop routed packets are no concern.
    nft_ok(
        "add table ip other\n"
        "add chain ip other forwarding { type filter hook forward priority 0; "
        "policy accept; }\n"
        "add table bridge switch\n"
        "add chain bridge switch forwarding { type filter hook forward "
        "priority 0; policy drop; }\n");
    ck_assert(!firewall_foreign_forward_drop(fw));

    // What Docker makes.
    nft_ok("add table ip filter\n"
           "add chain ip filter FORWARD { type filter hook forward "
           "priority 0; policy drop; }\n"
           "add chain ip filter DOCKER-USER\n");
    ck_assert(firewall_foreign_forward_drop(fw));
    nft_ok("delete table ip filter");
    ck_assert(!firewall_foreign_forward_drop(fw));

    nft_ok("add table inet firewalld\n"
           "add chain inet firewalld filter_FORWARD { type filter hook "
           "forward priority 10; policy drop; }\n");
    ck_assert(firewall_foreign_forward_drop(fw));
    firewall_free(fw);
}
END_TEST

// ---- Sysctls ---------------------------------------------------------------

static int sysctl_value(const char *path) {
    FILE *file = fopen(path, "r");
    int value = -1;

    ck_assert_msg(file != NULL, "cannot open %s", path);
    ck_assert_int_eq(fscanf(file, "%d", &value), 1);
    fclose(file);
    return value;
}

static int ipv6_conf(const char *ifname, const char *key) {
    char path[128];

    snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/%s", ifname, key);
    return sysctl_value(path);
}

static void set_ipv6_conf(const char *ifname, const char *key, int value) {
    run("echo %d > /proc/sys/net/ipv6/conf/%s/%s", value, ifname, key);
}

// Links whose IPv6 settings show what the forwarding switch does: an uplink
// learning its routes from router advertisements, one of the broker's
// bridges, one that forwards already and one that ignores advertisements.
static void add_ra_links(void) {
    const char *names[] = {"uplink", "vmb-x", "router", "quiet"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        run("ip link add %s type veth peer name %s-p", names[i], names[i]);
        set_ipv6_conf(names[i], "accept_ra", 1);
    }
    set_ipv6_conf("router", "forwarding", 1);
    set_ipv6_conf("quiet", "accept_ra", 0);
    ck_assert_int_eq(ipv6_conf("all", "forwarding"), 0);
    ck_assert_int_eq(ipv6_conf("uplink", "forwarding"), 0);
}

START_TEST(test_forwarding_keeps_router_advertisements) {
    add_ra_links();
    ck_assert_int_eq(sysctl_enable_forwarding(true), 0);

    ck_assert_int_eq(sysctl_value("/proc/sys/net/ipv4/ip_forward"), 1);
    ck_assert_int_eq(ipv6_conf("all", "forwarding"), 1);
    ck_assert_int_eq(ipv6_conf("uplink", "forwarding"), 1);
    ck_assert_int_eq(ipv6_conf("uplink", "accept_ra"), 2);
    ck_assert_int_eq(ipv6_conf("uplink-p", "accept_ra"), 2);
    // The broker's bridges must not learn routes from guests.
    ck_assert_int_eq(ipv6_conf("vmb-x", "accept_ra"), 1);
    // The administrator's choices stand.
    ck_assert_int_eq(ipv6_conf("router", "accept_ra"), 1);
    ck_assert_int_eq(ipv6_conf("quiet", "accept_ra"), 0);
    ck_assert_int_eq(ipv6_conf("lo", "accept_ra"), 1);

    // Again, with everything in place: nothing more to change.
    ck_assert_int_eq(sysctl_enable_forwarding(true), 0);
    ck_assert_int_eq(ipv6_conf("uplink", "accept_ra"), 2);
    ck_assert_int_eq(ipv6_conf("all", "forwarding"), 1);
}
END_TEST

START_TEST(test_forwarding_ipv4_only) {
    add_ra_links();
    ck_assert_int_eq(sysctl_enable_forwarding(false), 0);

    ck_assert_int_eq(sysctl_value("/proc/sys/net/ipv4/ip_forward"), 1);
    ck_assert_int_eq(ipv6_conf("all", "forwarding"), 0);
    ck_assert_int_eq(ipv6_conf("uplink", "accept_ra"), 1);
}
END_TEST

START_TEST(test_route_localnet) {
    run("ip link add vmb-x type veth peer name vmb-x-p");
    ck_assert_int_eq(
        sysctl_value("/proc/sys/net/ipv4/conf/vmb-x/route_localnet"), 0);
    ck_assert_int_eq(sysctl_enable_route_localnet("vmb-x"), 0);
    ck_assert_int_eq(
        sysctl_value("/proc/sys/net/ipv4/conf/vmb-x/route_localnet"), 1);
    ck_assert_int_eq(
        sysctl_value("/proc/sys/net/ipv4/conf/vmb-x-p/route_localnet"), 0);

    ck_assert_int_eq(sysctl_enable_route_localnet("../all"), -EINVAL);
    ck_assert_int_eq(sysctl_enable_route_localnet(".."), -EINVAL);
    ck_assert_int_eq(sysctl_enable_route_localnet(""), -EINVAL);
    ck_assert_int_eq(sysctl_enable_route_localnet("vmb-none"), -ENOENT);
    ck_assert_int_eq(sysctl_value("/proc/sys/net/ipv4/conf/all/route_localnet"),
                     0);
}
END_TEST

// ---- Traffic ---------------------------------------------------------------

// Child processes only: moves into namespace role (NULL: stays on the host).
static void enter_namespace(const char *role) {
    char path[128];
    int fd;

    // A probe must never outlive a failed test.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (role == NULL)
        return;
    snprintf(path, sizeof(path), NETNS_DIR "%s", ns(role));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        _exit(2);
    close(fd);
}

static bool endpoint(const char *address, int port,
                     struct sockaddr_storage *out, socklen_t *length) {
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;

    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, address, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *length = sizeof(*v4);
        return true;
    }
    if (inet_pton(AF_INET6, address, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *length = sizeof(*v6);
        return true;
    }
    return false;
}

enum answer {
    ANSWER_ACCEPTED = 0,
    ANSWER_REFUSED = 1,
    ANSWER_NONE = 3,
};

// What a TCP connection from namespace role to address:port gets within
// timeout_ms.
static enum answer tcp_answer(const char *role, const char *address, int port,
                              int timeout_ms) {
    pid_t pid = fork();
    int wstatus;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sockaddr_storage to;
        socklen_t length;
        struct pollfd poll_fd = {.events = POLLOUT};
        int error = 0;
        socklen_t error_length = sizeof(error);

        enter_namespace(role);
        if (!endpoint(address, port, &to, &length))
            _exit(2);
        poll_fd.fd = socket(to.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (poll_fd.fd < 0)
            _exit(2);
        if (connect(poll_fd.fd, (struct sockaddr *)&to, length) != 0 &&
            errno != EINPROGRESS)
            _exit(errno == ECONNREFUSED ? ANSWER_REFUSED : ANSWER_NONE);
        if (poll(&poll_fd, 1, timeout_ms) != 1 ||
            getsockopt(poll_fd.fd, SOL_SOCKET, SO_ERROR, &error,
                       &error_length) != 0)
            _exit(ANSWER_NONE);
        if (error == 0)
            _exit(ANSWER_ACCEPTED);
        _exit(error == ECONNREFUSED ? ANSWER_REFUSED : ANSWER_NONE);
    }
    ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 2,
                  "probe from %s to %s could not run", role ? role : "host",
                  address);
    return (enum answer)WEXITSTATUS(wstatus);
}

// A refusal counts as reaching: it came from the destination, so the path
// works both ways.
static void assert_reaches(const char *role, const char *address, int port) {
    ck_assert_msg(tcp_answer(role, address, port, REACH_MS) != ANSWER_NONE,
                  "%s does not reach %s:%d", role ? role : "host", address,
                  port);
}

static void assert_blocked(const char *role, const char *address, int port) {
    ck_assert_msg(tcp_answer(role, address, port, BLOCKED_MS) == ANSWER_NONE,
                  "%s reaches %s:%d", role ? role : "host", address, port);
}

// A listener in a namespace that reports where its first packet (UDP) or
// connection (TCP) came from, or nothing when none came within its time.
struct listener {
    pid_t pid;
    int fd;
};

static void format_address(const struct sockaddr_storage *address, char *out,
                           size_t size) {
    if (address->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)address)->sin_addr,
                  out, (socklen_t)size);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)address)->sin6_addr,
                  out, (socklen_t)size);
}

// Child processes only: waits for the first peer on fd, then writes its
// address to report.
static void report_peer(int fd, int type, int timeout_ms, int report) {
    struct sockaddr_storage peer;
    socklen_t length = sizeof(peer);
    struct pollfd poll_fd = {.fd = fd, .events = POLLIN};
    char text[INET6_ADDRSTRLEN];
    char byte;

    if (poll(&poll_fd, 1, timeout_ms) != 1)
        _exit(0);
    if (type == SOCK_STREAM)
        fd = accept(fd, (struct sockaddr *)&peer, &length);
    else if (recvfrom(fd, &byte, 1, 0, (struct sockaddr *)&peer, &length) < 0)
        fd = -1;
    if (fd < 0)
        _exit(1);
    format_address(&peer, text, sizeof(text));
    _exit(write(report, text, strlen(text)) > 0 ? 0 : 1);
}

static struct listener listen_in(const char *role, int family, int type,
                                 int port, int timeout_ms) {
    struct listener listener;
    int fds[2];
    char ready = 0;

    ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
    listener.pid = fork();
    ck_assert_int_ge(listener.pid, 0);
    if (listener.pid == 0) {
        struct sockaddr_storage any = {.ss_family = (sa_family_t)family};
        int one = 1;
        int fd;

        enter_namespace(role);
        close(fds[0]);
        // sin_port and sin6_port share their offset.
        ((struct sockaddr_in *)&any)->sin_port = htons((uint16_t)port);
        fd = socket(family, type, 0);
        if (fd < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
            bind(fd, (struct sockaddr *)&any, sizeof(any)) != 0 ||
            (type == SOCK_STREAM && listen(fd, 4) != 0) ||
            write(fds[1], "r", 1) != 1)
            _exit(1);
        report_peer(fd, type, timeout_ms, fds[1]);
    }
    close(fds[1]);
    listener.fd = fds[0];
    ck_assert_int_eq(read(listener.fd, &ready, 1), 1);
    return listener;
}

// Where the listener's first peer came from, "" if none came.
static void listener_peer(struct listener *listener, char *out, size_t size) {
    size_t used = 0;
    ssize_t n;
    int wstatus;

    while (used + 1 < size &&
           (n = read(listener->fd, out + used, size - 1 - used)) > 0)
        used += (size_t)n;
    out[used] = '\0';
    close(listener->fd);
    ck_assert_int_eq(waitpid(listener->pid, &wstatus, 0), listener->pid);
    ck_assert_msg(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0,
                  "listener failed");
}

// The address a connection from role to address:port arrives from, seen by a
// listener on listen_port in namespace at.
static void peer_seen(const char *role, const char *address, int port,
                      const char *at, int family, int listen_port, char *out,
                      size_t size) {
    struct listener listener =
        listen_in(at, family, SOCK_STREAM, listen_port, LISTEN_MS);

    assert_reaches(role, address, port);
    listener_peer(&listener, out, size);
}

// Sends one UDP datagram from namespace role to address:port.
static void udp_send(const char *role, const char *address, int port) {
    pid_t pid = fork();
    int wstatus;

    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct sockaddr_storage to;
        socklen_t length;
        int fd;

        enter_namespace(role);
        if (!endpoint(address, port, &to, &length))
            _exit(1);
        fd = socket(to.ss_family, SOCK_DGRAM, 0);
        _exit(fd >= 0 &&
                      sendto(fd, "x", 1, 0, (struct sockaddr *)&to, length) == 1
                  ? 0
                  : 1);
    }
    ck_assert_int_eq(waitpid(pid, &wstatus, 0), pid);
    ck_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
}

// Where a datagram from role to address:port arrives from at listen_port in
// namespace at ("" when it does not), waiting up to timeout_ms.
static void datagram_seen(const char *role, const char *address, int port,
                          const char *at, int listen_port, int timeout_ms,
                          char *out, size_t size) {
    struct listener listener =
        listen_in(at, AF_INET, SOCK_DGRAM, listen_port, timeout_ms);

    udp_send(role, address, port);
    listener_peer(&listener, out, size);
}

// Duplicate address detection would hold new addresses, link-local ones
// included, back for a while; nothing here can be duplicated. Interfaces
// take these defaults when they are made or moved in.
static void no_dad(const char *role) {
    const char *set = "for key in accept_dad dad_transmits; do "
                      "echo 0 > /proc/sys/net/ipv6/conf/default/$key; done";

    if (role == NULL)
        run("%s", set);
    else
        run("ip netns exec %s sh -c '%s'", ns(role), set);
}

static void add_namespace(const char *role) {
    run("ip netns add %s", ns(role));
    run("ip -n %s link set lo up", ns(role));
    no_dad(role);
}

static void add_guest(const char *role, const char *bridge, const char *port,
                      const char *address, const char *gateway) {
    add_namespace(role);
    run("ip link add %s type veth peer name eth0 netns %s", port, ns(role));
    run("ip link set %s master %s up", port, bridge);
    run("ip -n %s link set eth0 up", ns(role));
    run("ip -n %s addr add %s dev eth0", ns(role), address);
    run("ip -n %s route add default via %s", ns(role), gateway);
}

static void topology_up(void) {
    fresh_namespace();
    no_dad(NULL);
    ck_assert_int_eq(sysctl_enable_forwarding(true), 0);
    run("ip link add vmb-a type bridge");
    run("ip link set vmb-a up");
    run("ip addr add 192.168.81.1/24 dev vmb-a");
    run("ip addr add fd81::1/64 dev vmb-a nodad");
    run("ip link add vmb-b type bridge");
    run("ip link set vmb-b up");
    run("ip addr add 192.168.82.1/24 dev vmb-b");

    add_guest("ga", "vmb-a", "port-a", "192.168.81.2/24", "192.168.81.1");
    run("ip -n %s addr add fd81::2/64 dev eth0 nodad", ns("ga"));
    run("ip -n %s -6 route add default via fd81::1", ns("ga"));
    add_guest("gb", "vmb-b", "port-b", "192.168.82.2/24", "192.168.82.1");

    add_namespace("out");
    run("ip link add uplink type veth peer name eth0 netns %s", ns("out"));
    run("ip link set uplink up");
    run("ip addr add 198.51.100.1/24 dev uplink");
    run("ip addr add 2001:db8:100::1/64 dev uplink nodad");
    run("ip route add default via 198.51.100.2");
    run("ip -6 route add default via 2001:db8:100::2");
    run("ip -n %s link set eth0 up", ns("out"));
    run("ip -n %s addr add 198.51.100.2/24 dev eth0", ns("out"));
    run("ip -n %s addr add 2001:db8:100::2/64 dev eth0 nodad", ns("out"));
    run("ip -n %s route add 192.168.81.0/24 via 198.51.100.1", ns("out"));
    run("ip -n %s route add 192.168.82.0/24 via 198.51.100.1", ns("out"));
    run("ip -n %s route add fd81::/64 via 2001:db8:100::1", ns("out"));
}

static void topology_down(void) { delete_namespaces(); }

START_TEST(test_shared_masquerades_ipv4) {
    struct firewall *fw;
    char peer[INET6_ADDRSTRLEN];

    peer_seen("ga", "198.51.100.2", 7000, "out", AF_INET, 7000, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "192.168.81.2");

    fw = firewall_with(NETWORK_MODE_SHARED, NETWORK_MODE_HOST);
    peer_seen("ga", "198.51.100.2", 7000, "out", AF_INET, 7000, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "198.51.100.1");

    firewall_remove_network(fw, "vmb-a");
    peer_seen("ga", "198.51.100.2", 7000, "out", AF_INET, 7000, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "192.168.81.2");
    firewall_free(fw);
    topology_down();
}
END_TEST

START_TEST(test_shared_nat66) {
    struct firewall *fw;
    char peer[INET6_ADDRSTRLEN];

    peer_seen("ga", "2001:db8:100::2", 7000, "out", AF_INET6, 7000, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "fd81::2");

    fw = firewall_with(NETWORK_MODE_SHARED, NETWORK_MODE_HOST);
    peer_seen("ga", "2001:db8:100::2", 7000, "out", AF_INET6, 7000, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "2001:db8:100::1");
    firewall_free(fw);
    topology_down();
}
END_TEST

START_TEST(test_shared_takes_only_answers_from_outside) {
    struct firewall *fw;

    assert_reaches("out", "192.168.81.2", 80);
    assert_reaches("out", "fd81::2", 80);
    fw = firewall_with(NETWORK_MODE_SHARED, NETWORK_MODE_HOST);
    assert_blocked("out", "192.168.81.2", 80);
    assert_blocked("out", "fd81::2", 80);
    // The host itself is not forwarding: it still reaches its guests.
    assert_reaches(NULL, "192.168.81.2", 80);
    assert_reaches("ga", "198.51.100.2", 80);
    firewall_free(fw);
    topology_down();
}
END_TEST

START_TEST(test_host_mode_stays_inside) {
    struct firewall *fw;

    assert_reaches("gb", "198.51.100.2", 80);
    assert_reaches("out", "192.168.82.2", 80);
    fw = firewall_with(NETWORK_MODE_SHARED, NETWORK_MODE_HOST);
    assert_blocked("gb", "198.51.100.2", 80);
    assert_blocked("out", "192.168.82.2", 80);
    // The host and the guest still reach each other.
    assert_reaches("gb", "192.168.82.1", 80);
    assert_reaches(NULL, "192.168.82.2", 80);
    // And the uplink address, being the host's own, is no outside.
    assert_reaches("gb", "198.51.100.1", 80);
    firewall_free(fw);
    topology_down();
}
END_TEST

static void assert_isolated(enum network_mode a_mode,
                            enum network_mode b_mode) {
    struct firewall *fw;

    assert_reaches("ga", "192.168.82.2", 80);
    assert_reaches("gb", "192.168.81.2", 80);
    fw = firewall_with(a_mode, b_mode);
    assert_blocked("ga", "192.168.82.2", 80);
    assert_blocked("gb", "192.168.81.2", 80);
    assert_reaches("ga", "192.168.81.1", 80);
    assert_reaches("gb", "192.168.82.1", 80);
    firewall_free(fw);
    topology_down();
}

START_TEST(test_isolation_shared_host) {
    assert_isolated(NETWORK_MODE_SHARED, NETWORK_MODE_HOST);
}
END_TEST

START_TEST(test_isolation_shared_shared) {
    assert_isolated(NETWORK_MODE_SHARED, NETWORK_MODE_SHARED);
}
END_TEST

START_TEST(test_isolation_host_host) {
    assert_isolated(NETWORK_MODE_HOST, NETWORK_MODE_HOST);
}
END_TEST

// A broker bridge whose network has no rules yet (being made, or unmade) is
// still another network.
START_TEST(test_isolation_from_bridge_without_rules) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;

    char peer[INET6_ADDRSTRLEN];

    datagram_seen("gb", "192.168.81.2", 9999, "ga", 9999, REACH_MS, peer,
                  sizeof(peer));
    ck_assert_str_eq(peer, "192.168.82.2");
    ck_assert_int_eq(firewall_new(&fw), 0);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);
    // One way only: the guest's answers would not pass anyway.
    datagram_seen("gb", "192.168.81.2", 9999, "ga", 9999, BLOCKED_MS, peer,
                  sizeof(peer));
    ck_assert_str_eq(peer, "");
    assert_reaches("gb", "198.51.100.2", 80);
    firewall_free(fw);
    topology_down();
}
END_TEST

START_TEST(test_port_forward) {
    struct network_config config;
    struct network_info info;
    struct firewall *fw = NULL;
    struct listener listener;
    char peer[INET6_ADDRSTRLEN];

    ck_assert_int_eq(firewall_new(&fw), 0);
    network_a(NETWORK_MODE_SHARED, &config, &info);
    add_port_forward(&config, false, 8080, "192.168.81.2", 80);
    add_port_forward(&config, true, 5353, "192.168.81.2", 53);
    ck_assert_int_eq(firewall_add_network(fw, &config, &info), 0);

    // From outside: the guest sees who connected.
    peer_seen("out", "198.51.100.1", 8080, "ga", AF_INET, 80, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "198.51.100.2");
    datagram_seen("out", "198.51.100.1", 5353, "ga", 53, REACH_MS, peer,
                  sizeof(peer));
    ck_assert_str_eq(peer, "198.51.100.2");
    // From the host to one of its own addresses.
    peer_seen(NULL, "198.51.100.1", 8080, "ga", AF_INET, 80, peer,
              sizeof(peer));
    ck_assert_str_eq(peer, "198.51.100.1");
    // From the host to localhost, which needs route_localnet on the bridge
    // and arrives from the gateway, the only address the guest can answer.
    ck_assert_int_eq(sysctl_enable_route_localnet("vmb-a"), 0);
    peer_seen(NULL, "127.0.0.1", 8080, "ga", AF_INET, 80, peer, sizeof(peer));
    ck_assert_str_eq(peer, "192.168.81.1");

    // Gone with the network: the host answers for itself again, refusing,
    // while the guest would have accepted.
    firewall_remove_network(fw, "vmb-a");
    listener = listen_in("ga", AF_INET, SOCK_STREAM, 80, BLOCKED_MS);
    ck_assert_int_eq(tcp_answer("out", "198.51.100.1", 8080, REACH_MS),
                     ANSWER_REFUSED);
    listener_peer(&listener, peer, sizeof(peer));
    ck_assert_str_eq(peer, "");
    firewall_free(fw);
    topology_down();
}
END_TEST

START_TEST(test_guests_cannot_reach_host_loopback) {
    struct firewall *fw;

    // A guest that routes 127.0.0.2 to the gateway, as a hostile one may.
    run("ip netns exec %s sh -c 'echo 1 > "
        "/proc/sys/net/ipv4/conf/eth0/route_localnet'",
        ns("ga"));
    run("ip -n %s route del local 127.0.0.0/8 dev lo table local", ns("ga"));
    run("ip -n %s route add 127.0.0.2/32 via 192.168.81.1", ns("ga"));
    // What port forwards to localhost need on the bridge lets it through...
    ck_assert_int_eq(sysctl_enable_route_localnet("vmb-a"), 0);
    assert_reaches("ga", "127.0.0.2", 80);
    // ...unless the firewall is there.
    fw = firewall_with(NETWORK_MODE_SHARED, NETWORK_MODE_HOST);
    assert_blocked("ga", "127.0.0.2", 80);
    assert_reaches("ga", "192.168.81.1", 80);
    firewall_free(fw);
    topology_down();
}
END_TEST

static void unchecked_teardown(void) { delete_namespaces(); }

static Suite *linux_firewall_suite(void) {
    Suite *suite = suite_create("linux_firewall");
    TCase *rules = tcase_create("rules");
    TCase *sysctls = tcase_create("sysctls");
    TCase *traffic = tcase_create("traffic");

    tcase_add_checked_fixture(rules, fresh_namespace, NULL);
    tcase_set_timeout(rules, 60);
    tcase_add_test(rules, test_new_creates_table_and_free_deletes_it);
    tcase_add_test(rules, test_new_replaces_stale_table);
    tcase_add_test(rules, test_remove_takes_exactly_its_rules);
    tcase_add_test(rules, test_remove_absent_is_noop);
    tcase_add_test(rules, test_add_twice_fails);
    tcase_add_test(rules, test_add_is_atomic);
    tcase_add_test(rules, test_add_rejects_bad_input);
    tcase_add_test(rules, test_interface_chain_comes_and_goes);
    tcase_add_test(rules, test_foreign_forward_drop);
    suite_add_tcase(suite, rules);

    tcase_add_checked_fixture(sysctls, fresh_namespace, NULL);
    tcase_set_timeout(sysctls, 60);
    tcase_add_test(sysctls, test_forwarding_keeps_router_advertisements);
    tcase_add_test(sysctls, test_forwarding_ipv4_only);
    tcase_add_test(sysctls, test_route_localnet);
    suite_add_tcase(suite, sysctls);

    // Namespaces outlive a failed test's process; the unchecked teardown,
    // run by the parent, removes them whatever happened.
    tcase_add_checked_fixture(traffic, topology_up, NULL);
    tcase_add_unchecked_fixture(traffic, NULL, unchecked_teardown);
    tcase_set_timeout(traffic, 120);
    tcase_add_test(traffic, test_shared_masquerades_ipv4);
    tcase_add_test(traffic, test_shared_nat66);
    tcase_add_test(traffic, test_shared_takes_only_answers_from_outside);
    tcase_add_test(traffic, test_host_mode_stays_inside);
    tcase_add_test(traffic, test_isolation_shared_host);
    tcase_add_test(traffic, test_isolation_shared_shared);
    tcase_add_test(traffic, test_isolation_host_host);
    tcase_add_test(traffic, test_isolation_from_bridge_without_rules);
    tcase_add_test(traffic, test_port_forward);
    tcase_add_test(traffic, test_guests_cannot_reach_host_loopback);
    suite_add_tcase(suite, traffic);
    return suite;
}

int main(void) {
    SRunner *runner;
    int failed;

    if (geteuid() != 0) {
        fprintf(stderr, "check_linux_firewall: needs root for network "
                        "namespaces; skipped\n");
        return 77;
    }
    // Everything below, Check's forked children included, lives in a private
    // namespace, so no test can touch the host's own interfaces or rules.
    if (unshare(CLONE_NEWNET) != 0) {
        fprintf(stderr, "check_linux_firewall: unshare(CLONE_NEWNET): %s\n",
                strerror(errno));
        return errno == EPERM ? 77 : 1;
    }
    snprintf(ns_prefix, sizeof(ns_prefix), "vmfw%ld-", (long)getpid());
    runner = srunner_create(linux_firewall_suite());
    srunner_run_all(runner, CK_NORMAL);
    failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
