// SPDX-License-Identifier: Apache-2.0
// The broker's nftables table: forwarding, NAT, isolation and port forwards.
#include "linux_firewall.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <net/if.h>
#include <nftables/libnftables.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/guest_addr.h"
#include "core/log.h"
#include "core/subnet.h"
#include "linux_bridge.h"
#include "linux_instance.h"
#include "linux_tap.h"

// Placeholders in the commands below for this broker instance's names
// (linux_instance.h), which expand() puts in before nft reads them: control
// characters, which neither nft's syntax nor any name that passes the
// checks below contains.
#define TABLE_NAME "\001"
#define BRIDGE_PREFIX "\002"
#define TABLE "inet " TABLE_NAME
// Per-interface ingress chains: a netdev chain hooks one device.
#define TAP_TABLE "netdev " TABLE_NAME
// Matches every bridge this instance makes (and no other instance's), in
// nft's interface-name syntax.
#define BRIDGES "\"" BRIDGE_PREFIX "*\""

// The table. Per-network chains (from-<bridge>, to-<bridge>, nat-<bridge>)
// are reached through verdict maps keyed by interface name, and port forwards
// are elements of one map, so a network's rules come and go as a unit without
// rule handles, and a second network forwarding a port already taken is
// refused by the kernel as well as by the check below.
//
// guard: route_localnet, which port forwards to 127.0.0.1 need on a bridge,
// would also let guests reach the host's loopback services; raw priority
// sees the addresses before any NAT, so replies to masqueraded connections
// (sent to the gateway) pass.
// prerouting/output: port forwards for packets addressed to the host itself,
// arriving from anywhere but a broker bridge or made by the host.
// output: -100 is dstnat, a name nft 1.0.6 refuses on the output hook.
// postrouting: connections the host makes to 127.0.0.1 leave with a loopback
// source the guest cannot answer, hence the masquerade.
//
// Adding the table first makes the delete succeed whether or not a previous
// instance left one; the replacement is one transaction, so no moment exists
// with a stale table's rules or without the base chains.
static const char TABLE_REPLACEMENT[] =
    "add table " TABLE "\n"
    "delete table " TABLE "\n"
    "table " TABLE " {\n"
    "  map forward_from { type ifname : verdict; }\n"
    "  map forward_to { type ifname : verdict; }\n"
    "  map masquerade_from { type ifname : verdict; }\n"
    "  map port_forwards {\n"
    "    type inet_proto . inet_service : ipv4_addr . inet_service;\n"
    "  }\n"
    "  chain guard {\n"
    "    type filter hook prerouting priority raw; policy accept;\n"
    "    iifname " BRIDGES " ip saddr 127.0.0.0/8 drop\n"
    "    iifname " BRIDGES " ip daddr 127.0.0.0/8 drop\n"
    "  }\n"
    "  chain prerouting {\n"
    "    type nat hook prerouting priority dstnat; policy accept;\n"
    "    iifname != " BRIDGES " fib daddr type local meta nfproto ipv4 "
    "dnat ip to meta l4proto . th dport map @port_forwards\n"
    "  }\n"
    "  chain output {\n"
    "    type nat hook output priority -100; policy accept;\n"
    "    fib daddr type local meta nfproto ipv4 "
    "dnat ip to meta l4proto . th dport map @port_forwards\n"
    "  }\n"
    "  chain forward {\n"
    "    type filter hook forward priority filter; policy accept;\n"
    "    iifname vmap @forward_from\n"
    "    oifname vmap @forward_to\n"
    "  }\n"
    // DNS, DHCP and DHCPv6 on a gateway answer only packets that arrive
    // on that gateway's own bridge: a LAN neighbour routed to the host or
    // a guest of another network gets nothing.
    "  set gateways4 { type ipv4_addr; }\n"
    "  set gateway_ports4 { type ipv4_addr . ifname; }\n"
    "  set gateways6 { type ipv6_addr; }\n"
    "  set gateway_ports6 { type ipv6_addr . ifname; }\n"
    "  chain input {\n"
    "    type filter hook input priority filter; policy accept;\n"
    "    meta l4proto { tcp, udp } th dport { 53, 67 } ip daddr @gateways4 "
    "ip daddr . iifname != @gateway_ports4 drop\n"
    "    meta l4proto { tcp, udp } th dport { 53, 547 } ip6 daddr @gateways6 "
    "ip6 daddr . iifname != @gateway_ports6 drop\n"
    "  }\n"
    "  chain postrouting {\n"
    "    type nat hook postrouting priority srcnat; policy accept;\n"
    "    oifname " BRIDGES " ip saddr 127.0.0.0/8 masquerade\n"
    "    iifname vmap @masquerade_from\n"
    "  }\n"
    "}\n"
    "add table " TAP_TABLE "\n"
    "delete table " TAP_TABLE "\n"
    "add table " TAP_TABLE "\n";

// What firewall_remove_network() needs to undo one network exactly.
struct firewall_network {
    struct firewall_network *next;
    char bridge[IFNAMSIZ];
    bool shared;
    uint32_t gateway;
    bool ipv6;
    uint8_t gateway6[16];
    size_t n_port_forwards;
    struct port_forward port_forwards[NETWORK_PORT_FORWARDS_MAX];
};

// A TAP device with an ingress chain of its own. What made the chain is
// kept, so firewall_restore_interfaces() can make it again.
struct firewall_tap {
    struct firewall_tap *next;
    char name[IFNAMSIZ];
    struct network_info network;
    struct interface_info info;
    // Its chain went with a table flushed behind the broker's back.
    bool lost;
};

struct firewall {
    struct nft_ctx *nft;
    bool has_table;
    struct firewall_network *networks;
    struct firewall_tap *taps;
};

// Copies nft's multi-line error into one log-friendly line, leaving out the
// lines of carets that point into the command.
static void error_one_line(const char *error, char *out, size_t size) {
    size_t used = 0;

    out[0] = '\0';
    while (*error != '\0' && used + 1 < size) {
        size_t length = strcspn(error, "\n");
        bool carets = strspn(error, " ^") == length;

        if (length > 0 && !carets) {
            int n = snprintf(out + used, size - used, "%s%.*s",
                             used > 0 ? "; " : "", (int)length, error);
            used += n > 0 ? (size_t)n : 0;
        }
        error += length + (error[length] == '\n');
    }
}

static char *commands_close(FILE *commands, char **text);

// text with TABLE_NAME and BRIDGE_PREFIX replaced by this instance's table
// name and bridge prefix (malloc'd), or NULL without memory.
static char *expand(const char *text) {
    const char *table = linux_instance_table();
    const char *prefix = linux_instance_bridge_prefix();
    char *out = NULL;
    size_t size;
    FILE *expanded = open_memstream(&out, &size);

    if (expanded == NULL)
        return NULL;
    for (; *text != '\0'; text++) {
        if (*text == TABLE_NAME[0])
            fputs(table, expanded);
        else if (*text == BRIDGE_PREFIX[0])
            fputs(prefix, expanded);
        else
            fputc(*text, expanded);
    }
    return commands_close(expanded, &out);
}

// Runs commands (nft syntax) as one transaction: all of them or none.
static int firewall_run(struct firewall *fw, const char *commands,
                        const char *what) {
    char *expanded = expand(commands);
    char *what_expanded = expand(what);
    const char *error;
    char message[768];
    int status = -ENOMEM;
    int rc;

    if (expanded == NULL || what_expanded == NULL) {
        log_error("firewall: out of memory");
        goto out;
    }
    rc = nft_run_cmd_from_buffer(fw->nft, expanded);
    // Reading the buffer also empties it for the next command.
    error = nft_ctx_get_error_buffer(fw->nft);
    status = 0;
    if (rc == 0)
        goto out;
    error_one_line(error, message, sizeof(message));
    log_error("firewall: %s: %s", what_expanded, message);
    status = -EIO;
out:
    free(what_expanded);
    free(expanded);
    return status;
}

// Runs a list command and parses its JSON output into *out.
static int firewall_list(struct firewall *fw, const char *command,
                         json_t **out) {
    unsigned flags = nft_ctx_output_get_flags(fw->nft);
    json_t *root = NULL;
    int status;

    // Only while listing: with JSON output on, libnftables also tries to
    // parse commands as JSON first.
    nft_ctx_output_set_flags(fw->nft, flags | NFT_CTX_OUTPUT_JSON);
    status = firewall_run(fw, command, command);
    if (status == 0) {
        root = json_loads(nft_ctx_get_output_buffer(fw->nft), 0, NULL);
        status = root != NULL ? 0 : -EIO;
    }
    nft_ctx_output_set_flags(fw->nft, flags);
    if (status == 0)
        *out = root;
    return status;
}

// A firewall with its nftables context and no table yet; NULL (logged)
// without memory. firewall_free() takes it.
static struct firewall *firewall_alloc(void) {
    struct firewall *fw = calloc(1, sizeof(*fw));

    if (fw == NULL)
        return NULL;
    fw->nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (fw->nft == NULL || nft_ctx_buffer_output(fw->nft) != 0 ||
        nft_ctx_buffer_error(fw->nft) != 0) {
        log_error("firewall: cannot make an nftables context");
        firewall_free(fw);
        return NULL;
    }
    return fw;
}

int firewall_new(struct firewall **out) {
    struct firewall *fw = firewall_alloc();
    int status = -ENOMEM;

    if (fw == NULL)
        goto out;
    status = firewall_run(fw, TABLE_REPLACEMENT, "cannot create table " TABLE);
    if (status < 0)
        goto out;
    fw->has_table = true;
    *out = fw;
    fw = NULL;
    status = 0;
out:
    firewall_free(fw);
    return status;
}

void firewall_free(struct firewall *fw) {
    if (fw == NULL)
        return;
    if (fw->has_table)
        firewall_run(fw, "delete table " TABLE "\ndelete table " TAP_TABLE "\n",
                     "cannot delete table " TABLE);
    while (fw->taps != NULL) {
        struct firewall_tap *next = fw->taps->next;
        free(fw->taps);
        fw->taps = next;
    }
    while (fw->networks != NULL) {
        struct firewall_network *next = fw->networks->next;
        free(fw->networks);
        fw->networks = next;
    }
    if (fw->nft != NULL)
        nft_ctx_free(fw->nft);
    free(fw);
}

static struct firewall_network **find_network(struct firewall *fw,
                                              const char *bridge) {
    struct firewall_network **link = &fw->networks;

    while (*link != NULL && strcmp((*link)->bridge, bridge) != 0)
        link = &(*link)->next;
    return link;
}

// Bridge names go into nft commands, so only names the broker makes pass:
// the prefix the isolation rules match, then [A-Za-z0-9_.-].
static bool bridge_name_valid(const char *bridge) {
    const char *instance_prefix = linux_instance_bridge_prefix();
    size_t prefix = strlen(instance_prefix);
    size_t length = strlen(bridge);

    if (length <= prefix || length >= IFNAMSIZ ||
        strncmp(bridge, instance_prefix, prefix) != 0)
        return false;
    return strspn(bridge, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == length;
}

static const char *protocol_name(const struct port_forward *forward) {
    return forward->udp ? "udp" : "tcp";
}

// Port forwards must land on a guest of this network, and no two networks
// may forward the same host port.
static int check_port_forwards(struct firewall *fw,
                               const struct network_config *config,
                               const struct network_info *info) {
    uint32_t broadcast = info->subnet | ~info->mask;

    if (config->n_port_forwards > 0 && config->mode != NETWORK_MODE_SHARED) {
        log_error("firewall: %s: port forwards need a shared network",
                  info->bridge);
        return -EINVAL;
    }
    for (size_t i = 0; i < config->n_port_forwards; i++) {
        const struct port_forward *forward = &config->port_forwards[i];
        uint32_t guest = forward->guest_address;
        char address[16];

        if ((guest & info->mask) != info->subnet || guest == info->subnet ||
            guest == broadcast || guest == info->gateway ||
            forward->host_port == 0 || forward->guest_port == 0) {
            log_error("firewall: %s: port forward %s %u to %s:%u does not "
                      "reach a guest of the network",
                      info->bridge, protocol_name(forward), forward->host_port,
                      ipv4_format(guest, address), forward->guest_port);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (config->port_forwards[j].udp == forward->udp &&
                config->port_forwards[j].host_port == forward->host_port) {
                log_error("firewall: %s: %s port %u is forwarded twice",
                          info->bridge, protocol_name(forward),
                          forward->host_port);
                return -EINVAL;
            }
        }
        for (const struct firewall_network *other = fw->networks; other != NULL;
             other = other->next) {
            for (size_t j = 0; j < other->n_port_forwards; j++) {
                if (other->port_forwards[j].udp == forward->udp &&
                    other->port_forwards[j].host_port == forward->host_port) {
                    log_error("firewall: %s: %s port %u is already forwarded "
                              "to %s",
                              info->bridge, protocol_name(forward),
                              forward->host_port, other->bridge);
                    return -EADDRINUSE;
                }
            }
        }
    }
    return 0;
}

// Guests start anything but to other networks; from outside, only answers
// and port forwards come in.
static void write_shared_rules(FILE *commands,
                               const struct network_config *config,
                               const struct network_info *info) {
    const char *bridge = info->bridge;
    unsigned subnet_len = ipv4_mask_len(info->mask);
    char subnet[16];

    ipv4_format(info->subnet, subnet);
    fprintf(commands,
            "add rule " TABLE " from-%s oifname " BRIDGES " drop\n"
            "add rule " TABLE " from-%s accept\n"
            "add rule " TABLE " to-%s iifname " BRIDGES " drop\n"
            "add rule " TABLE " to-%s ct state established,related accept\n"
            "add rule " TABLE " to-%s ct status dnat accept\n"
            "add rule " TABLE " to-%s drop\n",
            bridge, bridge, bridge, bridge, bridge, bridge);
    fprintf(commands,
            "create chain " TABLE " nat-%s\n"
            "add rule " TABLE " nat-%s oifname != " BRIDGES
            " ip saddr %s/%u ip daddr != %s/%u masquerade\n",
            bridge, bridge, subnet, subnet_len, subnet, subnet_len);
    if (info->ipv6) {
        char prefix[INET6_ADDRSTRLEN];

        inet_ntop(AF_INET6, info->ipv6_prefix, prefix, sizeof(prefix));
        fprintf(commands,
                "add rule " TABLE " nat-%s oifname != " BRIDGES
                " ip6 saddr %s/%u ip6 daddr != %s/%u masquerade\n",
                bridge, prefix, info->ipv6_prefix_len, prefix,
                info->ipv6_prefix_len);
    }
    fprintf(commands,
            "add element " TABLE " masquerade_from { \"%s\" : jump nat-%s }\n",
            bridge, bridge);
    for (size_t i = 0; i < config->n_port_forwards; i++) {
        const struct port_forward *forward = &config->port_forwards[i];
        char guest[16];

        fprintf(commands,
                "add element " TABLE " port_forwards { %s . %u : %s . %u }\n",
                protocol_name(forward), forward->host_port,
                ipv4_format(forward->guest_address, guest),
                forward->guest_port);
    }
}

// Returns what commands, opened by open_memstream() on *text, holds
// (malloc'd), or NULL when memory ran out.
static char *commands_close(FILE *commands, char **text) {
    bool failed = ferror(commands) != 0;

    // Only closing makes *text final.
    if (fclose(commands) != 0 || failed) {
        free(*text);
        return NULL;
    }
    return *text;
}

// The network's gateway addresses, alone and with its bridge, in the sets
// the input chain reads; verb is "add" or "delete".
static void write_gateway_elements(FILE *commands, const char *verb,
                                   const struct firewall_network *network) {
    char gateway[16];

    ipv4_format(network->gateway, gateway);
    fprintf(commands,
            "%s element " TABLE " gateways4 { %s }\n"
            "%s element " TABLE " gateway_ports4 { %s . \"%s\" }\n",
            verb, gateway, verb, gateway, network->bridge);
    if (network->ipv6) {
        char gateway6[INET6_ADDRSTRLEN];

        inet_ntop(AF_INET6, network->gateway6, gateway6, sizeof(gateway6));
        fprintf(commands,
                "%s element " TABLE " gateways6 { %s }\n"
                "%s element " TABLE " gateway_ports6 { %s . \"%s\" }\n",
                verb, gateway6, verb, gateway6, network->bridge);
    }
}

// The commands that add one network (malloc'd), or NULL.
static char *network_commands(const struct network_config *config,
                              const struct network_info *info,
                              const struct firewall_network *network) {
    const char *bridge = info->bridge;
    char *text = NULL;
    size_t size;
    FILE *commands = open_memstream(&text, &size);

    if (commands == NULL)
        return NULL;
    // create, not add: a chain already there is not ours to extend. Packets
    // between guests of one bridge are only seen here with br_netfilter
    // loaded, and they are the network's own business.
    fprintf(commands,
            "create chain " TABLE " from-%s\n"
            "create chain " TABLE " to-%s\n"
            "add rule " TABLE " from-%s oifname \"%s\" accept\n",
            bridge, bridge, bridge, bridge);
    if (config->mode == NETWORK_MODE_SHARED)
        write_shared_rules(commands, config, info);
    else
        fprintf(commands,
                "add rule " TABLE " from-%s drop\n"
                "add rule " TABLE " to-%s drop\n",
                bridge, bridge);
    fprintf(commands,
            "add element " TABLE " forward_from { \"%s\" : jump from-%s }\n"
            "add element " TABLE " forward_to { \"%s\" : jump to-%s }\n",
            bridge, bridge, bridge, bridge);
    write_gateway_elements(commands, "add", network);
    return commands_close(commands, &text);
}

// The record of a network's rules (malloc'd) and the commands that add them
// (malloc'd, in *commands); NULL (logged) when the network is refused.
static struct firewall_network *
prepare_network(struct firewall *fw, const struct network_config *config,
                const struct network_info *info, char **commands, int *status) {
    struct firewall_network *network = NULL;

    *commands = NULL;
    *status = -EINVAL;
    if (!bridge_name_valid(info->bridge)) {
        log_error("firewall: invalid bridge name \"%.*s\"", IFNAMSIZ,
                  info->bridge);
        goto out;
    }
    *status = -EEXIST;
    if (*find_network(fw, info->bridge) != NULL) {
        log_error("firewall: %s already has rules", info->bridge);
        goto out;
    }
    *status = check_port_forwards(fw, config, info);
    if (*status < 0)
        goto out;
    *status = -ENOMEM;
    network = calloc(1, sizeof(*network));
    if (network == NULL)
        goto out;
    snprintf(network->bridge, sizeof(network->bridge), "%s", info->bridge);
    network->shared = config->mode == NETWORK_MODE_SHARED;
    network->gateway = info->gateway;
    network->ipv6 = info->ipv6;
    if (info->ipv6) {
        // The gateway is the prefix's first host, as the backend adds it.
        memcpy(network->gateway6, info->ipv6_prefix, 16);
        network->gateway6[15] = 1;
    }
    network->n_port_forwards = config->n_port_forwards;
    memcpy(network->port_forwards, config->port_forwards,
           config->n_port_forwards * sizeof(config->port_forwards[0]));
    *commands = network_commands(config, info, network);
    if (*commands == NULL) {
        free(network);
        network = NULL;
        goto out;
    }
    *status = 0;
out:
    return network;
}

int firewall_add_network(struct firewall *fw,
                         const struct network_config *config,
                         const struct network_info *info) {
    char *commands = NULL;
    int status;
    struct firewall_network *network =
        prepare_network(fw, config, info, &commands, &status);

    if (network == NULL)
        goto out;
    status = firewall_run(fw, commands, info->bridge);
    if (status < 0)
        goto out;
    network->next = fw->networks;
    fw->networks = network;
    network = NULL;
    status = 0;
out:
    free(commands);
    free(network);
    return status;
}

// The commands that remove one network (malloc'd), or NULL.
static char *removal_commands(const struct firewall_network *network) {
    const char *bridge = network->bridge;
    char *text = NULL;
    size_t size;
    FILE *commands = open_memstream(&text, &size);

    if (commands == NULL)
        return NULL;
    // Elements first: a chain a map still jumps to cannot be deleted.
    fprintf(commands,
            "delete element " TABLE " forward_from { \"%s\" }\n"
            "delete element " TABLE " forward_to { \"%s\" }\n",
            bridge, bridge);
    write_gateway_elements(commands, "delete", network);
    for (size_t i = 0; i < network->n_port_forwards; i++) {
        const struct port_forward *forward = &network->port_forwards[i];
        fprintf(commands,
                "delete element " TABLE " port_forwards { %s . %u }\n",
                protocol_name(forward), forward->host_port);
    }
    if (network->shared) {
        fprintf(commands,
                "delete element " TABLE " masquerade_from { \"%s\" }\n"
                "delete chain " TABLE " nat-%s\n",
                bridge, bridge);
    }
    fprintf(commands,
            "delete chain " TABLE " from-%s\n"
            "delete chain " TABLE " to-%s\n",
            bridge, bridge);
    return commands_close(commands, &text);
}

void firewall_remove_network(struct firewall *fw, const char *bridge) {
    struct firewall_network **link = find_network(fw, bridge);
    struct firewall_network *network = *link;
    char *commands;

    if (network == NULL)
        return;
    commands = removal_commands(network);
    if (commands == NULL)
        log_error("firewall: %s: out of memory removing rules", bridge);
    else
        firewall_run(fw, commands, bridge);
    // Forgotten even when nft refused: a table that lost these rules behind
    // the broker's back must not block the network from coming back.
    *link = network->next;
    free(network);
    free(commands);
}

// TAP names go into nft commands: only the broker's "vmt-" + hex pass.
static bool tap_name_valid(const char *name) {
    size_t prefix = strlen(LINUX_TAP_PREFIX);
    size_t length = strnlen(name, IFNAMSIZ);

    if (length <= prefix || length >= IFNAMSIZ ||
        strncmp(name, LINUX_TAP_PREFIX, prefix) != 0)
        return false;
    return strspn(name + prefix, "0123456789abcdef") == length - prefix;
}

static struct firewall_tap **find_tap(struct firewall *fw, const char *name) {
    struct firewall_tap **link = &fw->taps;

    while (*link != NULL && strcmp((*link)->name, name) != 0)
        link = &(*link)->next;
    return link;
}

// The link-local address the kernel derives from mac (EUI-64, the default
// addr_gen_mode): the source of a guest's router and neighbour messages.
static void link_local(const uint8_t mac[6], uint8_t address[16]) {
    static const uint8_t fe80[16] = {0xfe, 0x80};

    guest_slaac(fe80, mac, address);
}

// The ingress chain of one TAP: its policy drops whatever no rule accepts,
// so only ARP, IPv4 and IPv6 from the guest's own addresses leave the TAP,
// and never a DHCP server's reply or a router's advertisement.
char *firewall_interface_rules(const struct network_info *network,
                               const struct interface_info *info) {
    const char *name = info->name;
    char *text = NULL;
    char *expanded;
    size_t size;
    FILE *commands = open_memstream(&text, &size);
    char mac[18];
    char local[INET6_ADDRSTRLEN];
    uint8_t local_bytes[16];

    if (commands == NULL)
        return NULL;
    snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", info->mac[0],
             info->mac[1], info->mac[2], info->mac[3], info->mac[4],
             info->mac[5]);
    link_local(info->mac, local_bytes);
    inet_ntop(AF_INET6, local_bytes, local, sizeof(local));
    fprintf(commands,
            "add chain " TAP_TABLE " tap-%s { type filter hook ingress "
            "device \"%s\" priority filter; policy drop; }\n",
            name, name);
#define RULE "add rule " TAP_TABLE " tap-%s "
    fprintf(commands, RULE "ether saddr != %s drop\n", name, mac);
    // A guest's DHCP server or router would take over its neighbours.
    fprintf(commands,
            RULE "ether type ip udp sport 67 drop\n" RULE
                 "ether type ip6 udp sport 547 drop\n" RULE
                 "ether type ip6 icmpv6 type { nd-router-advert, "
                 "nd-redirect } drop\n",
            name, name, name);
    if (info->ipv4 != 0) {
        char ipv4[16];

        ipv4_format(info->ipv4, ipv4);
        // 0.0.0.0: RFC 5227's probe before a DHCP client takes its address.
        fprintf(commands,
                RULE "ether type arp arp htype 1 arp ptype ip arp saddr ether "
                     "%s arp saddr ip { %s, 0.0.0.0 } accept\n" RULE
                     "ether type ip ip saddr %s accept\n",
                name, mac, ipv4, name, ipv4);
    } else {
        // No reservation: any address of the subnet but the gateway's.
        char subnet[16];
        char gateway[16];
        unsigned len = ipv4_mask_len(network->mask);

        ipv4_format(network->subnet, subnet);
        ipv4_format(network->gateway, gateway);
        fprintf(commands,
                RULE "ether type arp arp htype 1 arp ptype ip arp saddr ether "
                     "%s arp saddr ip { %s/%u, 0.0.0.0 } arp saddr ip != %s "
                     "accept\n" RULE "ether type ip ip saddr %s/%u ip saddr "
                     "!= %s accept\n",
                name, mac, subnet, len, gateway, name, subnet, len, gateway);
    }
    // A DHCP client's discover and request before it has an address.
    fprintf(commands,
            RULE "ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 "
                 "udp sport 68 udp dport 67 accept\n",
            name);
    // A neighbour advertisement names its target in the body, whatever its
    // source: only the guest's own addresses (bytes 8 to 23 of the ICMPv6
    // message; nft 1.0.6 has no name for the field).
    fprintf(commands,
            RULE "ether type ip6 icmpv6 type nd-neighbor-advert @th,64,128 "
                 "!= { 0x",
            name);
    for (int i = 0; i < 16; i++)
        fprintf(commands, "%02x", local_bytes[i]);
    if (info->has_ipv6) {
        fprintf(commands, ", 0x");
        for (int i = 0; i < 16; i++)
            fprintf(commands, "%02x", info->ipv6[i]);
    }
    fprintf(commands, " } drop\n");
    if (info->has_ipv6) {
        char slaac[INET6_ADDRSTRLEN];

        inet_ntop(AF_INET6, info->ipv6, slaac, sizeof(slaac));
        fprintf(commands, RULE "ether type ip6 ip6 saddr { %s, %s } accept\n",
                name, local, slaac);
    } else {
        fprintf(commands, RULE "ether type ip6 ip6 saddr %s accept\n", name,
                local);
    }
    // Duplicate address detection and its multicast listener report are
    // sent before the guest owns any address.
    fprintf(commands,
            RULE "ether type ip6 ip6 saddr :: icmpv6 type { "
                 "nd-neighbor-solicit, mld2-listener-report } accept\n",
            name);
#undef RULE
    if (commands_close(commands, &text) == NULL)
        return NULL;
    // Callers outside (bench/) get the table's real name.
    expanded = expand(text);
    free(text);
    return expanded;
}

int firewall_add_interface(struct firewall *fw,
                           const struct network_info *network,
                           const struct interface_info *info) {
    struct firewall_tap *tap = NULL;
    char *commands = NULL;
    int status = -EINVAL;

    if (!tap_name_valid(info->name)) {
        log_error("firewall: invalid interface name \"%.*s\"", IFNAMSIZ,
                  info->name);
        goto out;
    }
    status = -EEXIST;
    if (*find_tap(fw, info->name) != NULL) {
        log_error("firewall: %s already has rules", info->name);
        goto out;
    }
    status = -ENOMEM;
    tap = calloc(1, sizeof(*tap));
    commands = firewall_interface_rules(network, info);
    if (tap == NULL || commands == NULL)
        goto out;
    snprintf(tap->name, sizeof(tap->name), "%s", info->name);
    tap->network = *network;
    tap->info = *info;
    status = firewall_run(fw, commands, info->name);
    if (status < 0)
        goto out;
    tap->next = fw->taps;
    fw->taps = tap;
    tap = NULL;
out:
    free(commands);
    free(tap);
    return status;
}

void firewall_remove_interface(struct firewall *fw, const char *name) {
    struct firewall_tap **link = find_tap(fw, name);
    struct firewall_tap *tap = *link;
    char command[64 + IFNAMSIZ];

    if (tap == NULL)
        return;
    snprintf(command, sizeof(command), "delete chain " TAP_TABLE " tap-%s\n",
             tap->name);
    // A lost chain is not in the kernel: nothing to delete.
    if (!tap->lost)
        firewall_run(fw, command, tap->name);
    *link = tap->next;
    free(tap);
}

void firewall_remove_gone_interfaces(struct firewall *fw) {
    struct firewall_tap *tap = fw->taps;

    while (tap != NULL) {
        struct firewall_tap *next = tap->next;

        if (if_nametoindex(tap->name) == 0)
            firewall_remove_interface(fw, tap->name);
        tap = next;
    }
}

static bool chain_exists(json_t *items, const char *family, const char *table,
                         const char *name) {
    size_t i;
    json_t *item;

    json_array_foreach(items, i, item) {
        json_t *chain = json_object_get(item, "chain");
        const char *f = json_string_value(json_object_get(chain, "family"));
        const char *t = json_string_value(json_object_get(chain, "table"));
        const char *n = json_string_value(json_object_get(chain, "name"));

        if (f != NULL && t != NULL && n != NULL && strcmp(f, family) == 0 &&
            strcmp(t, table) == 0 && strcmp(n, name) == 0)
            return true;
    }
    return false;
}

static void warn_forward_drop(json_t *items, const char *family,
                              const char *table, const char *name) {
    const char *own = linux_instance_table();
    const char *prefix = linux_instance_bridge_prefix();

    // Docker leaves DOCKER-USER to the administrator and never flushes it.
    if (strcmp(family, "inet") != 0 &&
        chain_exists(items, family, table, "DOCKER-USER")) {
        const char *tool = strcmp(family, "ip") == 0 ? "iptables" : "ip6tables";
        log_warning("firewall: chain %s in table %s %s (Docker's) drops "
                    "forwarded packets by default and no accept in table inet "
                    "%s can override that: guests of shared networks cannot "
                    "reach beyond the host; let them through with: %s -I "
                    "DOCKER-USER -i %s+ -j ACCEPT && %s -I DOCKER-USER -o %s+ "
                    "-j ACCEPT",
                    name, family, table, own, tool, prefix, tool, prefix);
        return;
    }
    log_warning("firewall: chain %s in table %s %s drops forwarded packets by "
                "default and no accept in table inet %s can override that: "
                "guests of shared networks cannot reach beyond the host; let "
                "them through with: nft insert rule %s %s %s iifname "
                "\"%s*\" accept && nft insert rule %s %s %s oifname \"%s*\" "
                "accept",
                name, family, table, own, family, table, name, prefix, family,
                table, name, prefix);
}

bool firewall_foreign_forward_drop(struct firewall *fw) {
    json_t *root = NULL;
    json_t *items;
    json_t *item;
    size_t i;
    bool found = false;

    if (firewall_list(fw, "list chains\n", &root) < 0) {
        log_warning("firewall: cannot list chains to look for a forward "
                    "policy of drop");
        goto out;
    }
    items = json_object_get(root, "nftables");
    json_array_foreach(items, i, item) {
        json_t *chain = json_object_get(item, "chain");
        const char *family = NULL;
        const char *table = NULL;
        const char *name = NULL;
        const char *hook = NULL;
        const char *policy = NULL;

        if (chain == NULL ||
            json_unpack(chain, "{s:s, s:s, s:s, s?s, s?s}", "family", &family,
                        "table", &table, "name", &name, "hook", &hook, "policy",
                        &policy) != 0)
            continue;
        // Bridge-family chains see frames switched inside a bridge, not
        // packets routed through the host.
        if (hook == NULL || strcmp(hook, "forward") != 0 || policy == NULL ||
            strcmp(policy, "drop") != 0 ||
            (strcmp(family, "ip") != 0 && strcmp(family, "ip6") != 0 &&
             strcmp(family, "inet") != 0))
            continue;
        if (strcmp(family, "inet") == 0 &&
            strcmp(table, linux_instance_table()) == 0)
            continue;
        warn_forward_drop(items, family, table, name);
        found = true;
    }
out:
    json_decref(root);
    return found;
}

// The table with the rules of every network and TAP in networks, in one
// transaction (so an adopted guest's traffic never meets a table without
// its rules), recorded as if added one by one. 0 or a negative errno.
static int restore_all(struct firewall *fw,
                       const struct firewall_restore *networks, size_t n) {
    struct firewall_tap *taps = NULL;
    char *text = NULL;
    size_t size;
    int status = -ENOMEM;
    FILE *commands = open_memstream(&text, &size);

    if (commands == NULL)
        goto out;
    fputs(TABLE_REPLACEMENT, commands);
    for (size_t i = 0; i < n; i++) {
        char *add = NULL;
        struct firewall_network *record = prepare_network(
            fw, networks[i].config, networks[i].info, &add, &status);
        if (record == NULL)
            goto out;
        // Listed at once: the next network's checks see this one.
        record->next = fw->networks;
        fw->networks = record;
        fputs(add, commands);
        free(add);
        for (size_t t = 0; t < networks[i].n_taps; t++) {
            const struct interface_info *info = &networks[i].taps[t];
            struct firewall_tap *tap;

            status = -EINVAL;
            if (!tap_name_valid(info->name))
                goto out;
            status = -ENOMEM;
            tap = calloc(1, sizeof(*tap));
            add = firewall_interface_rules(networks[i].info, info);
            if (tap == NULL || add == NULL) {
                free(tap);
                free(add);
                goto out;
            }
            snprintf(tap->name, sizeof(tap->name), "%s", info->name);
            // What a flushed table's repair makes the chain from again.
            tap->network = *networks[i].info;
            tap->info = *info;
            tap->next = taps;
            taps = tap;
            fputs(add, commands);
            free(add);
        }
    }
    status = -ENOMEM;
    // Closed here whatever happens: commands_close() frees text on failure.
    if (commands_close(commands, &text) == NULL) {
        commands = NULL;
        text = NULL;
        goto out;
    }
    commands = NULL;
    status = firewall_run(fw, text, "cannot restore table " TABLE);
    if (status < 0)
        goto out;
    fw->has_table = true;
    fw->taps = taps;
    taps = NULL;
out:
    if (commands != NULL) {
        // On failure commands_close() has freed text itself.
        free(commands_close(commands, &text));
        text = NULL;
    }
    free(text);
    if (status < 0) {
        // Undone: the caller falls back to one network at a time.
        while (fw->networks != NULL) {
            struct firewall_network *next = fw->networks->next;
            free(fw->networks);
            fw->networks = next;
        }
    }
    while (taps != NULL) {
        struct firewall_tap *next = taps->next;
        free(taps);
        taps = next;
    }
    return status;
}

int firewall_new_restoring(struct firewall **out,
                           const struct firewall_restore *networks, size_t n) {
    struct firewall *fw = NULL;
    int status;

    if (n == 0)
        return firewall_new(out);
    status = -ENOMEM;
    fw = firewall_alloc();
    if (fw == NULL)
        goto out;
    status = restore_all(fw, networks, n);
    if (status < 0) {
        // One network's rules must not cost the others theirs.
        log_warning("firewall: cannot restore every adopted network's rules "
                    "at once; adding them one by one");
        status =
            firewall_run(fw, TABLE_REPLACEMENT, "cannot create table " TABLE);
        if (status < 0)
            goto out;
        fw->has_table = true;
        for (size_t i = 0; i < n; i++) {
            if (firewall_add_network(fw, networks[i].config, networks[i].info) <
                0)
                continue;
            for (size_t t = 0; t < networks[i].n_taps; t++)
                firewall_add_interface(fw, networks[i].info,
                                       &networks[i].taps[t]);
        }
    }
    *out = fw;
    fw = NULL;
    status = 0;
out:
    firewall_free(fw);
    return status;
}

void firewall_keep_table(struct firewall *fw) { fw->has_table = false; }

bool firewall_is_own_table(const char *name) {
    return strcmp(name, linux_instance_table()) == 0;
}

bool firewall_has_network(struct firewall *fw, const char *bridge) {
    return *find_network(fw, bridge) != NULL;
}

// Runs a list command quietly (a missing table is an expected answer here)
// and parses its JSON output; NULL when nft refused or printed no JSON.
static json_t *list_quietly(struct firewall *fw, const char *command) {
    unsigned flags = nft_ctx_output_get_flags(fw->nft);
    char *expanded = expand(command);
    json_t *root = NULL;

    if (expanded == NULL)
        return NULL;
    nft_ctx_output_set_flags(fw->nft, flags | NFT_CTX_OUTPUT_JSON);
    if (nft_run_cmd_from_buffer(fw->nft, expanded) == 0)
        root = json_loads(nft_ctx_get_output_buffer(fw->nft), 0, NULL);
    free(expanded);
    // Read, so the buffers are empty for the next command.
    nft_ctx_get_error_buffer(fw->nft);
    nft_ctx_get_output_buffer(fw->nft);
    nft_ctx_output_set_flags(fw->nft, flags);
    return root;
}

// Number of rules in chain of a table listing; -1 when there is no chain of
// that name.
static int count_rules(json_t *items, const char *chain) {
    bool found = false;
    int rules = 0;
    size_t i;
    json_t *item;

    json_array_foreach(items, i, item) {
        json_t *c = json_object_get(item, "chain");
        json_t *r = json_object_get(item, "rule");
        const char *name = json_string_value(
            json_object_get(c != NULL ? c : r, c != NULL ? "name" : "chain"));

        if (name == NULL || strcmp(name, chain) != 0)
            continue;
        if (c != NULL)
            found = true;
        else
            rules++;
    }
    return found ? rules : -1;
}

bool firewall_intact(struct firewall *fw) {
    static const char *const base[] = {"guard",   "prerouting", "output",
                                       "forward", "input",      "postrouting"};
    json_t *inet = list_quietly(fw, "list table " TABLE "\n");
    json_t *netdev = list_quietly(fw, "list table " TAP_TABLE "\n");
    json_t *items = json_object_get(inet, "nftables");
    json_t *taps = json_object_get(netdev, "nftables");
    char chain[16 + IFNAMSIZ];
    bool intact = items != NULL && taps != NULL;

    // Every base chain has rules (flush table empties them).
    for (size_t i = 0; intact && i < sizeof(base) / sizeof(base[0]); i++)
        intact = count_rules(items, base[i]) >= 1;
    for (const struct firewall_network *n = fw->networks; intact && n != NULL;
         n = n->next) {
        snprintf(chain, sizeof(chain), "from-%s", n->bridge);
        intact = count_rules(items, chain) >= 1;
    }
    for (const struct firewall_tap *t = fw->taps; intact && t != NULL;
         t = t->next) {
        snprintf(chain, sizeof(chain), "tap-%s", t->name);
        intact = t->lost || count_rules(taps, chain) >= 1;
    }
    json_decref(inet);
    json_decref(netdev);
    return intact;
}

int firewall_recreate(struct firewall *fw) {
    int status =
        firewall_run(fw, TABLE_REPLACEMENT, "cannot create table " TABLE);

    if (status < 0)
        return status;
    fw->has_table = true;
    // Their rules went with the table they were in.
    while (fw->networks != NULL) {
        struct firewall_network *next = fw->networks->next;
        free(fw->networks);
        fw->networks = next;
    }
    for (struct firewall_tap *t = fw->taps; t != NULL; t = t->next)
        t->lost = true;
    return 0;
}

int firewall_restore_interfaces(struct firewall *fw, const char *bridge) {
    struct firewall_tap **link = &fw->taps;
    int restored = 0;
    int status = 0;

    while (*link != NULL) {
        struct firewall_tap *tap = *link;
        char *commands;

        if (!tap->lost || strcmp(tap->network.bridge, bridge) != 0) {
            link = &tap->next;
            continue;
        }
        // A device gone meanwhile needs no chain (and its record goes).
        if (if_nametoindex(tap->name) == 0) {
            *link = tap->next;
            free(tap);
            continue;
        }
        commands = firewall_interface_rules(&tap->network, &tap->info);
        if (commands == NULL || firewall_run(fw, commands, tap->name) < 0) {
            if (status == 0)
                status = commands == NULL ? -ENOMEM : -EIO;
        } else {
            tap->lost = false;
            restored++;
        }
        free(commands);
        link = &tap->next;
    }
    return status < 0 ? status : restored;
}
