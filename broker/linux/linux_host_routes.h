// SPDX-License-Identifier: Apache-2.0
// What IPv4 space the host already uses: its addresses and routes, by netlink.
#ifndef VMNET_BROKER_LINUX_LINUX_HOST_ROUTES_H
#define VMNET_BROKER_LINUX_LINUX_HOST_ROUTES_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/subnet.h"

struct nl_sock;

// Where a used prefix comes from, for saying what a subnet overlaps.
struct host_prefix_origin {
    bool is_route;      // an address otherwise
    char dev[IFNAMSIZ]; // empty for a route through no device
};

// prefixes[i] comes from origins[i]. Default routes (prefix length 0) are
// left out: they overlap everything and say nothing about what is taken.
struct host_networks {
    size_t n;
    struct ipv4_prefix *prefixes;
    struct host_prefix_origin *origins;
    // MTU of the interface carrying the main table's IPv4 default route
    // (the lowest metric one); 0 when there is none.
    unsigned default_route_mtu;
};

// Fills *out from every IPv4 address and every IPv4 route in every table.
// Returns 0, or a negative errno with *out untouched.
int linux_host_networks_read(struct nl_sock *sock, struct host_networks *out);

// Frees what linux_host_networks_read() stored and empties *networks.
void linux_host_networks_clear(struct host_networks *networks);

// Writes what prefix i is ("address 192.168.42.5/24 on eth1", "route
// 192.168.42.0/24 dev eth1") into buf and returns buf.
const char *linux_host_networks_describe(const struct host_networks *networks,
                                         size_t i, char *buf, size_t size);

#endif
