// SPDX-License-Identifier: Apache-2.0
// Guests cannot impersonate each other: frames written into a TAP descriptor
// the test holds, captured on a neighbour and on the gateway; DNS only from
// a network's own bridge; port isolation; per-TAP rules come and go.
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "harness_topology.h"

#define IDLE "60"
// How long a DNS query that must NOT be answered is given: far longer than
// an answer takes across a bridge.
#define BLOCKED_SECONDS 3.0
// struct virtio_net_hdr: what IFF_VNET_HDR puts before every frame.
#define VNET_HDR_LEN 10
#define MARKER_LEN 8
#define FRAME_MAX 256
// The neighbour: a veth pair whose first end is a port of the bridge; what
// the bridge delivers to it is read on the second end.
#define NEIGHBOUR_PORT "nbr-port"
#define NEIGHBOUR "nbr-guest"

static struct harness_broker *broker;
static struct topology *topology;
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
        harness_broker_wait_no_peers(broker);
    }
    topology_free(topology);
    topology = NULL;
    harness_broker_free(broker);
    broker = NULL;
}

// ---- Local helpers ---------------------------------------------------------

static vmnet_broker_network_t *acquire(vmnet_broker_connection_t *c,
                                       const char *name) {
    vmnet_broker_network_t *network = NULL;
    ck_assert_msg(vmnet_broker_connection_acquire(c, name, &network) ==
                      VMNET_BROKER_SUCCESS,
                  "cannot acquire %s (log: %s)", name, broker->log_path);
    return network;
}

static vmnet_broker_interface_t *open_interface(vmnet_broker_connection_t *c,
                                                const char *name) {
    vmnet_broker_interface_t *interface = NULL;
    ck_assert_msg(vmnet_broker_connection_open_interface(c, name, &interface) ==
                      VMNET_BROKER_SUCCESS,
                  "cannot open an interface on %s (log: %s)", name,
                  broker->log_path);
    return interface;
}

static uint32_t ipv4(const char *text) {
    struct in_addr address;
    ck_assert_msg(text != NULL && inet_pton(AF_INET, text, &address) == 1,
                  "not an IPv4 address: \"%s\"", text ? text : "(null)");
    return ntohl(address.s_addr);
}

// What the guest behind a TAP may use, and who it may pretend to be.
struct guest {
    int fd;
    uint8_t mac[6];
    uint32_t address;   // its own (announced, or a host of the subnet)
    uint32_t gateway;   // the network's
    uint32_t neighbour; // another guest's: only refused when announced
    bool announced;     // the interface reply carries "ipv4"
    uint8_t local[16];  // link-local (EUI-64)
    uint8_t slaac[16];
};

static void eui64(const uint8_t mac[6], uint8_t address[16]) {
    address[8] = mac[0] ^ 0x02;
    address[9] = mac[1];
    address[10] = mac[2];
    address[11] = 0xff;
    address[12] = 0xfe;
    address[13] = mac[3];
    address[14] = mac[4];
    address[15] = mac[5];
}

static void guest_init(struct guest *g, const vmnet_broker_network_t *network,
                       vmnet_broker_interface_t *interface) {
    const char *mac = vmnet_broker_interface_mac(interface);
    json_t *reply = json_loads(vmnet_broker_interface_json(interface), 0, NULL);
    // Announced by the broker once interfaces have reserved addresses.
    const char *announced = json_string_value(json_object_get(reply, "ipv4"));
    const char *prefix = vmnet_broker_network_ipv6_prefix(network);

    memset(g, 0, sizeof(*g));
    g->fd = vmnet_broker_interface_fd(interface);
    ck_assert_int_eq(sscanf(mac, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx",
                            &g->mac[0], &g->mac[1], &g->mac[2], &g->mac[3],
                            &g->mac[4], &g->mac[5]),
                     6);
    g->gateway = ipv4(vmnet_broker_network_gateway(network));
    g->announced = announced != NULL;
    g->address = g->announced
                     ? ipv4(announced)
                     : ipv4(vmnet_broker_network_subnet(network)) + 200;
    g->neighbour = g->address + 1;
    json_decref(reply);
    g->local[0] = 0xfe;
    g->local[1] = 0x80;
    eui64(g->mac, g->local);
    ck_assert_ptr_nonnull(prefix);
    ck_assert_int_eq(inet_pton(AF_INET6, prefix, g->slaac), 1);
    eui64(g->mac, g->slaac);
}

// A frame under construction: a zeroed virtio_net_hdr, then Ethernet.
struct frame {
    uint8_t bytes[FRAME_MAX];
    size_t len;
};

static void frame_start(struct frame *f, const uint8_t dst[6],
                        const uint8_t src[6], uint16_t type) {
    memset(f, 0, sizeof(*f));
    f->len = VNET_HDR_LEN;
    memcpy(f->bytes + f->len, dst, 6);
    memcpy(f->bytes + f->len + 6, src, 6);
    f->bytes[f->len + 12] = (uint8_t)(type >> 8);
    f->bytes[f->len + 13] = (uint8_t)type;
    f->len += 14;
}

static void put(struct frame *f, const void *data, size_t len) {
    memcpy(f->bytes + f->len, data, len);
    f->len += len;
}

static void put16(struct frame *f, uint16_t value) {
    uint8_t b[2] = {(uint8_t)(value >> 8), (uint8_t)value};
    put(f, b, 2);
}

static void put32(struct frame *f, uint32_t value) {
    uint32_t n = htonl(value);
    put(f, &n, 4);
}

// Every frame ends with a marker naming it, so a capture tells them apart.
static void marker(char out[MARKER_LEN + 1], const char *name) {
    snprintf(out, MARKER_LEN + 1, "%-8.8s", name);
}

static const uint8_t BROADCAST[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
static const uint8_t ALL_NODES_MAC[6] = {0x33, 0x33, 0, 0, 0, 1};

static void arp_frame(struct frame *f, const uint8_t src[6], uint16_t op,
                      uint32_t sender, const char *name) {
    char m[MARKER_LEN + 1];
    uint8_t zero[6] = {0};

    frame_start(f, BROADCAST, src, 0x0806);
    put16(f, 1);
    put16(f, 0x0800);
    put(f, (uint8_t[]){6, 4}, 2);
    put16(f, op);
    put(f, src, 6);
    put32(f, sender);
    put(f, zero, 6);
    put32(f, 0xcb007101); // 203.0.113.1: anything not a guest's
    marker(m, name);
    put(f, m, MARKER_LEN);
}

static uint16_t checksum(const uint8_t *data, size_t len) {
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(data[i] << 8 | data[i + 1]);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void udp4_frame(struct frame *f, const uint8_t src[6], uint32_t from,
                       uint16_t sport, uint16_t dport, const char *name) {
    char m[MARKER_LEN + 1];
    size_t ip;
    uint16_t sum;

    frame_start(f, BROADCAST, src, 0x0800);
    ip = f->len;
    put(f, (uint8_t[]){0x45, 0}, 2);
    put16(f, 20 + 8 + MARKER_LEN);
    put32(f, 0);
    put(f, (uint8_t[]){64, 17, 0, 0}, 4);
    put32(f, from);
    put32(f, 0xffffffffu);
    sum = checksum(f->bytes + ip, 20);
    f->bytes[ip + 10] = (uint8_t)(sum >> 8);
    f->bytes[ip + 11] = (uint8_t)sum;
    put16(f, sport);
    put16(f, dport);
    put16(f, 8 + MARKER_LEN);
    put16(f, 0);
    marker(m, name);
    put(f, m, MARKER_LEN);
}

// next is 17 (UDP to port 9) or 58 (ICMPv6 of type icmp_type, followed by
// target when not NULL, as in a neighbour advertisement).
static void ip6_frame(struct frame *f, const uint8_t src[6],
                      const uint8_t from[16], uint8_t next, uint8_t icmp_type,
                      const uint8_t *target, const char *name) {
    static const uint8_t all_nodes[16] = {0xff, 2, [15] = 1};
    char m[MARKER_LEN + 1];

    frame_start(f, ALL_NODES_MAC, src, 0x86dd);
    put32(f, 0x60000000u);
    put16(f, (uint16_t)(8 + (target != NULL ? 16 : 0) + MARKER_LEN));
    put(f, (uint8_t[]){next, 255}, 2);
    put(f, from, 16);
    put(f, all_nodes, 16);
    if (next == 17) {
        put16(f, 9);
        put16(f, 9);
        put16(f, 8 + MARKER_LEN);
        put16(f, 0);
    } else {
        put(f, (uint8_t[]){icmp_type, 0, 0, 0, 0, 0, 0, 0}, 8);
        if (target != NULL)
            put(f, target, 16);
    }
    marker(m, name);
    put(f, m, MARKER_LEN);
}

static void send_frame(int fd, const struct frame *f) {
    ck_assert_msg(write(fd, f->bytes, f->len) == (ssize_t)f->len,
                  "cannot write a frame into the TAP: %s", strerror(errno));
}

// A packet socket seeing what arrives on ifname.
static int capture_open(const char *ifname) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
                    htons(ETH_P_ALL));
    struct sockaddr_ll address = {.sll_family = AF_PACKET,
                                  .sll_protocol = htons(ETH_P_ALL),
                                  .sll_ifindex = (int)if_nametoindex(ifname)};

    ck_assert_msg(fd >= 0, "packet socket: %s", strerror(errno));
    ck_assert_msg(bind(fd, (struct sockaddr *)&address, sizeof(address)) == 0,
                  "cannot capture on %s: %s", ifname, strerror(errno));
    return fd;
}

// The markers one capture saw, as one string ("name1|name2|...").
struct seen {
    char text[4096];
};

static bool seen_has(const struct seen *s, const char *name) {
    char m[MARKER_LEN + 3];
    char padded[MARKER_LEN + 1];

    marker(padded, name);
    snprintf(m, sizeof(m), "|%s|", padded);
    return strstr(s->text, m) != NULL;
}

// Reads incoming frames on fd (a packet socket, or a TAP when tap) into s
// until the marker end has arrived, or HARNESS_WAIT_SECONDS.
static bool capture_until(int fd, bool tap, struct seen *s, const char *end) {
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;

    if (s->text[0] == '\0')
        snprintf(s->text, sizeof(s->text), "|");
    while (!seen_has(s, end) && harness_now() < deadline) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint8_t buffer[65536];
        struct sockaddr_ll from;
        socklen_t from_len = sizeof(from);
        ssize_t n;

        if (poll(&p, 1, 100) <= 0)
            continue;
        n = tap ? read(fd, buffer, sizeof(buffer))
                : recvfrom(fd, buffer, sizeof(buffer), 0,
                           (struct sockaddr *)&from, &from_len);
        if (n < MARKER_LEN || (!tap && from.sll_pkttype == PACKET_OUTGOING))
            continue;
        // Only the test's own frames: other traffic (router advertisements,
        // neighbour discovery) must not fill the record.
        const char *tail = (const char *)buffer + n - MARKER_LEN;
        bool ours = true;
        for (size_t i = 0; i < MARKER_LEN; i++)
            ours = ours && tail[i] != '\0' &&
                   strchr("abcdefghijklmnopqrstuvwxyz0123456789- ", tail[i]) !=
                       NULL;
        if (!ours)
            continue;
        size_t used = strlen(s->text);
        snprintf(s->text + used, sizeof(s->text) - used, "%.*s|", MARKER_LEN,
                 (const char *)buffer + n - MARKER_LEN);
    }
    return seen_has(s, end);
}

static void add_neighbour(const char *bridge) {
    char command[256];

    snprintf(command, sizeof(command),
             "ip link add " NEIGHBOUR_PORT " type veth peer name " NEIGHBOUR
             " && ip link set " NEIGHBOUR_PORT " master %s up && "
             "ip link set " NEIGHBOUR " up",
             bridge);
    ck_assert_int_eq(harness_shell(command), 0);
}

static bool neighbour_running(void *arg) {
    (void)arg;
    return harness_shell("ip link show " NEIGHBOUR " | grep -q LOWER_UP && "
                         "ip link show " NEIGHBOUR_PORT
                         " | grep -q 'state UP'") == 0;
}

// Writes forged frames and then correct ones into the guest's TAP; each
// capture must see every correct frame and, when filtered, no forged one.
static void check_frames(const struct guest *g, const char *bridge,
                         bool filtered) {
    static const char *const forged[] = {"mac",  "arp-gw",  "ip-gw", "ip-out",
                                         "dhcp", "ip6-src", "ra",    "arp-nb"};
    static const char *const correct[] = {"arp", "udp4",  "discover",
                                          "ll",  "slaac", "na-own"};
    static const uint8_t other_mac[6] = {0x02, 0x76, 0xde, 0xad, 0xbe, 0xef};
    uint8_t other6[16] = {0xfe, 0x80, [15] = 0x99};
    uint8_t gateway6[16];
    int captures[2];
    const char *where[2] = {"the neighbour", "the gateway"};
    struct frame f;

    // The gateway's IPv6 address: the prefix's first host.
    memcpy(gateway6, g->slaac, 8);
    memset(gateway6 + 8, 0, 8);
    gateway6[15] = 1;
    add_neighbour(bridge);
    ck_assert(harness_wait_for(neighbour_running, NULL));
    captures[0] = capture_open(NEIGHBOUR);
    captures[1] = capture_open(bridge);

    arp_frame(&f, other_mac, 1, g->address, "mac");
    memcpy(f.bytes + VNET_HDR_LEN + 6, other_mac, 6);
    send_frame(g->fd, &f);
    arp_frame(&f, g->mac, 2, g->gateway, "arp-gw");
    send_frame(g->fd, &f);
    udp4_frame(&f, g->mac, g->gateway, 9, 9, "ip-gw");
    send_frame(g->fd, &f);
    udp4_frame(&f, g->mac, 0x0a630001u, 9, 9, "ip-out");
    send_frame(g->fd, &f);
    udp4_frame(&f, g->mac, g->address, 67, 68, "dhcp");
    send_frame(g->fd, &f);
    ip6_frame(&f, g->mac, other6, 17, 0, NULL, "ip6-src");
    send_frame(g->fd, &f);
    ip6_frame(&f, g->mac, g->local, 58, 134, NULL, "ra");
    send_frame(g->fd, &f);
    arp_frame(&f, g->mac, 1, g->neighbour, "arp-nb");
    send_frame(g->fd, &f);
    ip6_frame(&f, g->mac, g->local, 58, 136, gateway6, "na-gw");
    send_frame(g->fd, &f);

    arp_frame(&f, g->mac, 1, g->address, "arp");
    send_frame(g->fd, &f);
    udp4_frame(&f, g->mac, g->address, 9, 9, "udp4");
    send_frame(g->fd, &f);
    udp4_frame(&f, g->mac, 0, 68, 67, "discover");
    send_frame(g->fd, &f);
    ip6_frame(&f, g->mac, g->local, 17, 0, NULL, "ll");
    send_frame(g->fd, &f);
    ip6_frame(&f, g->mac, g->slaac, 17, 0, NULL, "slaac");
    send_frame(g->fd, &f);
    ip6_frame(&f, g->mac, g->local, 58, 136, g->local, "na-own");
    send_frame(g->fd, &f);
    // Last: once it is seen, every frame written before it has arrived or
    // been dropped, so no waiting for what must not come.
    arp_frame(&f, g->mac, 1, g->address, "end");
    send_frame(g->fd, &f);

    for (int c = 0; c < 2; c++) {
        struct seen s = {{0}};

        ck_assert_msg(capture_until(captures[c], false, &s, "end"),
                      "the last correct frame never reached %s: %s", where[c],
                      s.text);
        for (size_t i = 0; i < sizeof(correct) / sizeof(correct[0]); i++)
            ck_assert_msg(seen_has(&s, correct[i]),
                          "correct frame '%s' did not reach %s (saw %s)",
                          correct[i], where[c], s.text);
        for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
            // Another guest's address is only known when announced.
            if (strcmp(forged[i], "arp-nb") == 0 && !g->announced)
                continue;
            if (filtered)
                ck_assert_msg(!seen_has(&s, forged[i]),
                              "forged frame '%s' reached %s (saw %s)",
                              forged[i], where[c], s.text);
            else
                ck_assert_msg(seen_has(&s, forged[i]),
                              "without anti-spoofing, '%s' did not reach %s "
                              "(saw %s)",
                              forged[i], where[c], s.text);
        }
        close(captures[c]);
    }
}

static char *ruleset(void) {
    const char *argv[] = {"nft", "list", "ruleset", NULL};
    char *output = NULL;

    ck_assert_int_eq(topology_run(NULL, argv, HARNESS_WAIT_SECONDS, &output),
                     0);
    return output;
}

// ---- Tests -----------------------------------------------------------------

START_TEST(test_forged_frames_reach_nobody) {
    vmnet_broker_connection_t *c;
    vmnet_broker_network_t *network;
    vmnet_broker_interface_t *interface;
    struct guest g;

    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    network = acquire(c, "shared");
    interface = open_interface(c, "shared");
    guest_init(&g, network, interface);
    check_frames(&g, vmnet_broker_network_bridge(network), true);
    vmnet_broker_interface_free(interface);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

// The same frames pass with the setting off: the test above can fail.
START_TEST(test_anti_spoofing_off_lets_forged_frames_through) {
    vmnet_broker_connection_t *c;
    vmnet_broker_network_t *network;
    vmnet_broker_interface_t *interface;
    struct guest g;

    ck_assert(harness_broker_write_config(
        broker, "open", "{\"mode\": \"shared\", \"anti_spoofing\": false}\n"));
    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    network = acquire(c, "open");
    interface = open_interface(c, "open");
    guest_init(&g, network, interface);
    check_frames(&g, vmnet_broker_network_bridge(network), false);
    vmnet_broker_interface_free(interface);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

static bool ruleset_is(void *arg) {
    char *now = ruleset();
    bool same = strcmp(now, (const char *)arg) == 0;
    free(now);
    return same;
}

START_TEST(test_interface_rules_go_with_it) {
    vmnet_broker_connection_t *c;
    vmnet_broker_network_t *network;
    vmnet_broker_interface_t *interface;
    char chain[64];
    char *before;
    char *during;

    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    network = acquire(c, "shared");
    before = ruleset();
    interface = open_interface(c, "shared");
    snprintf(chain, sizeof(chain), "chain tap-%s {",
             vmnet_broker_interface_name(interface));
    during = ruleset();
    ck_assert_msg(strstr(during, chain) != NULL, "no %s in %s", chain, during);
    vmnet_broker_interface_free(interface);
    ck_assert_msg(harness_wait_for(ruleset_is, before),
                  "the ruleset after the interface went differs from before: "
                  "%s",
                  ruleset());
    free(during);
    free(before);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

// A TAP whose bridge went (deleted under the broker, by hand, and made
// again by the broker's repair) is still the guest's, still filtered: only
// the device's own removal takes its chain, and a bridge's removal event
// (its ports leaving) is not taken for one.
// (When the broker itself removes a network it deletes the network's TAP
// devices too, and their chains go with them.)
START_TEST(test_rules_stay_while_the_device_does) {
    vmnet_broker_connection_t *c;
    vmnet_broker_network_t *network;
    vmnet_broker_interface_t *interface;
    vmnet_broker_network_t *other_network;
    vmnet_broker_interface_t *other;
    char chain[64];
    char bridge[32];
    char *now;

    // The second network has a subnet of its own: the deleted bridge's
    // dnsmasq still holds the first one's gateway until the broker repairs
    // or removes that network.
    ck_assert(harness_broker_write_config(
        broker, "other", "{\"mode\": \"host\", \"subnet\": \"10.99.0.0\"}"));
    harness_start(broker, "1");
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    network = acquire(c, "shared");
    snprintf(bridge, sizeof(bridge), "%s",
             vmnet_broker_network_bridge(network));
    interface = open_interface(c, "shared");
    snprintf(chain, sizeof(chain), "chain tap-%s {",
             vmnet_broker_interface_name(interface));
    {
        char command[64];
        snprintf(command, sizeof(command), "ip link del %s", bridge);
        ck_assert_int_eq(harness_shell(command), 0);
    }
    ck_assert_msg(harness_broker_wait_log(broker, "made bridge", 1),
                  "%s was not made again", bridge);
    ck_assert(harness_link_exists(vmnet_broker_interface_name(interface)));
    // A TAP made after the bridge went: the broker's worker has by then
    // handled what the bridge's removal made it do.
    other_network = acquire(c, "other");
    other = open_interface(c, "other");
    now = ruleset();
    ck_assert_msg(strstr(now, chain) != NULL,
                  "the chain of %s went with its network's bridge: %s",
                  vmnet_broker_interface_name(interface), now);
    free(now);
    vmnet_broker_interface_free(other);
    vmnet_broker_network_free(other_network);
    vmnet_broker_interface_free(interface);
    vmnet_broker_network_free(network);
    vmnet_broker_connection_close(c);
}
END_TEST

// Sends a broadcast from the bridge itself (the gateway's side), which
// every port receives, isolated or not.
static void send_from_gateway(const char *bridge, const char *name) {
    int fd = capture_open(bridge);
    static const uint8_t gateway_mac[6] = {0xfe, 0, 0, 0, 0, 1};
    struct frame f;

    arp_frame(&f, gateway_mac, 1, 0xcb007102u, name);
    ck_assert(send(fd, f.bytes + VNET_HDR_LEN, f.len - VNET_HDR_LEN, 0) ==
              (ssize_t)(f.len - VNET_HDR_LEN));
    close(fd);
}

// Guest a sends a broadcast; guest b reads until the gateway's broadcast
// sent afterwards. Returns whether b saw a's frame.
static bool guest_reaches_guest(vmnet_broker_connection_t *c,
                                const char *name) {
    vmnet_broker_network_t *network = acquire(c, name);
    vmnet_broker_interface_t *a_interface = open_interface(c, name);
    vmnet_broker_interface_t *b_interface = open_interface(c, name);
    const char *bridge = vmnet_broker_network_bridge(network);
    struct guest a, b;
    struct seen s = {{0}};
    struct frame f;

    guest_init(&a, network, a_interface);
    guest_init(&b, network, b_interface);
    // Guest to gateway: the gateway answers a's ARP request for it (the
    // reply is unicast to a).
    arp_frame(&f, a.mac, 1, a.address, "to-gw");
    memcpy(f.bytes + f.len - MARKER_LEN - 4, &(uint32_t){htonl(a.gateway)}, 4);
    send_frame(a.fd, &f);
    udp4_frame(&f, a.mac, a.address, 9, 9, "a-to-b");
    send_frame(a.fd, &f);
    send_from_gateway(bridge, "gw-end");
    ck_assert_msg(capture_until(b.fd, true, &s, "gw-end"),
                  "the gateway's broadcast never reached guest b: %s", s.text);
    bool reached = seen_has(&s, "a-to-b");
    // a's own reading: the gateway's ARP reply to it (an ARP reply has no
    // marker; look for the ARP ethertype and opcode instead).
    double deadline = harness_now() + HARNESS_WAIT_SECONDS;
    bool answered = false;
    while (!answered && harness_now() < deadline) {
        struct pollfd p = {.fd = a.fd, .events = POLLIN};
        uint8_t buffer[65536];
        ssize_t n;

        if (poll(&p, 1, 100) <= 0)
            continue;
        n = read(a.fd, buffer, sizeof(buffer));
        const uint8_t *e = buffer + VNET_HDR_LEN;
        answered = n >= VNET_HDR_LEN + 14 + 28 && e[12] == 0x08 &&
                   e[13] == 0x06 && e[14 + 7] == 2 &&
                   memcmp(e + 14 + 14, &(uint32_t){htonl(a.gateway)}, 4) == 0;
    }
    ck_assert_msg(answered, "the gateway did not answer guest a's ARP on %s",
                  name);
    vmnet_broker_interface_free(b_interface);
    vmnet_broker_interface_free(a_interface);
    vmnet_broker_network_free(network);
    return reached;
}

START_TEST(test_port_isolation) {
    vmnet_broker_connection_t *c;

    ck_assert(harness_broker_write_config(
        broker, "iso", "{\"mode\": \"shared\", \"port_isolation\": true}\n"));
    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    ck_assert_msg(!guest_reaches_guest(c, "iso"),
                  "with port_isolation, guest b received guest a's frame");
    ck_assert_msg(guest_reaches_guest(c, "shared"),
                  "without port_isolation, guest b missed guest a's frame");
    vmnet_broker_connection_close(c);
}
END_TEST

// Returns nslookup's answer for name from ns through server (malloc'd).
static char *lookup(const char *ns, const char *name, const char *server,
                    double seconds, int *code) {
    const char *argv[] = {"busybox", "nslookup", name, server, NULL};
    char *output = NULL;

    *code = topology_run(ns, argv, seconds, &output);
    return output != NULL ? output : strdup("");
}

START_TEST(test_dns_only_from_own_bridge) {
    vmnet_broker_connection_t *c;
    vmnet_broker_network_t *shared;
    vmnet_broker_network_t *host;
    struct topology_lease named, other;
    const char *gateway;
    const char *outside;
    const char *guest;
    const char *foreign;
    char expected[64];
    char *output;
    int code;

    harness_start(broker, IDLE);
    c = harness_connect(broker);
    ck_assert_ptr_nonnull(c);
    shared = acquire(c, "shared");
    host = acquire(c, "host");
    gateway = vmnet_broker_network_gateway(shared);
    outside = topology_add_outside(topology);
    ck_assert_ptr_nonnull(outside);
    guest =
        topology_add_guest(topology, vmnet_broker_network_bridge(shared), NULL);
    foreign =
        topology_add_guest(topology, vmnet_broker_network_bridge(host), NULL);
    ck_assert(guest != NULL && foreign != NULL);
    ck_assert(topology_dhcp(topology, guest, "e2e-named", &named));
    ck_assert(topology_dhcp(topology, foreign, NULL, &other));
    snprintf(expected, sizeof(expected), "Address: %s\n", named.address);

    // A guest on the bridge is answered.
    output = lookup(guest, "e2e-named", gateway, HARNESS_WAIT_SECONDS, &code);
    ck_assert_msg(code == 0 && strstr(output, expected) != NULL,
                  "nslookup on the bridge (exit %d): %s", code, output);
    free(output);
    // Both others reach the gateway's address, so only the rule stops them.
    ck_assert_msg(topology_ping(outside, gateway, HARNESS_WAIT_SECONDS),
                  "the outside cannot reach %s at all", gateway);
    output = lookup(outside, "e2e-named", gateway, BLOCKED_SECONDS, &code);
    ck_assert_msg(strstr(output, expected) == NULL,
                  "the outside was answered by %s: %s", gateway, output);
    free(output);
    output = lookup(foreign, "e2e-named", gateway, BLOCKED_SECONDS, &code);
    ck_assert_msg(strstr(output, expected) == NULL,
                  "a guest of 'host' was answered by %s: %s", gateway, output);
    free(output);

    // The same over IPv6, to the gateway's address in the network's prefix.
    struct in6_addr gateway6_bytes;
    char gateway6[INET6_ADDRSTRLEN];
    char guest6[INET6_ADDRSTRLEN];
    const char *prefix = vmnet_broker_network_ipv6_prefix(shared);

    ck_assert_int_eq(inet_pton(AF_INET6, prefix, &gateway6_bytes), 1);
    gateway6_bytes.s6_addr[15] = 1;
    inet_ntop(AF_INET6, &gateway6_bytes, gateway6, sizeof(gateway6));
    ck_assert(topology_wait_ipv6(guest, prefix, guest6, sizeof(guest6)));
    output = lookup(guest, "e2e-named", gateway6, HARNESS_WAIT_SECONDS, &code);
    ck_assert_msg(code == 0 && strstr(output, expected) != NULL,
                  "nslookup on the bridge through %s (exit %d): %s", gateway6,
                  code, output);
    free(output);
    ck_assert_msg(topology_ping(outside, gateway6, HARNESS_WAIT_SECONDS),
                  "the outside cannot reach %s at all", gateway6);
    output = lookup(outside, "e2e-named", gateway6, BLOCKED_SECONDS, &code);
    ck_assert_msg(strstr(output, expected) == NULL,
                  "the outside was answered by %s: %s", gateway6, output);
    free(output);
    vmnet_broker_network_free(host);
    vmnet_broker_network_free(shared);
    vmnet_broker_connection_close(c);
}
END_TEST

static Suite *guest_filtering_suite(void) {
    Suite *suite = suite_create("guest_filtering");
    TCase *frames = tcase_create("frames");
    TCase *dns = tcase_create("dns");

    tcase_add_checked_fixture(frames, setup, teardown);
    tcase_set_timeout(frames, 120);
    tcase_add_test(frames, test_forged_frames_reach_nobody);
    tcase_add_test(frames, test_anti_spoofing_off_lets_forged_frames_through);
    tcase_add_test(frames, test_interface_rules_go_with_it);
    tcase_add_test(frames, test_rules_stay_while_the_device_does);
    tcase_add_test(frames, test_port_isolation);
    suite_add_tcase(suite, frames);
    tcase_add_checked_fixture(dns, setup, teardown);
    tcase_set_timeout(dns, 120);
    tcase_add_test(dns, test_dns_only_from_own_bridge);
    suite_add_tcase(suite, dns);
    return suite;
}

int main(void) {
    harness_enter_netns();
    return harness_run_suite(guest_filtering_suite());
}
