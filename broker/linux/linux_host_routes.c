// SPDX-License-Identifier: Apache-2.0
// What IPv4 space the host already uses: its addresses and routes, by netlink.
#include "linux_host_routes.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netlink/cache.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/route.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nl_errno.h"

// Appends prefix unless it is a default route; capacity was sized from the
// caches, so there is always room.
static void append(struct host_networks *networks, const struct nl_addr *addr,
                   bool is_route, int ifindex, struct nl_cache *links) {
    struct host_prefix_origin *origin = &networks->origins[networks->n];
    unsigned len = nl_addr_get_prefixlen(addr);
    uint32_t network_order;

    if (len == 0 || nl_addr_get_len(addr) != sizeof(network_order))
        return;
    memcpy(&network_order, nl_addr_get_binary_addr(addr),
           sizeof(network_order));
    networks->prefixes[networks->n].address = ntohl(network_order);
    networks->prefixes[networks->n].len = len;
    origin->is_route = is_route;
    origin->dev[0] = '\0';
    if (ifindex > 0 && rtnl_link_i2name(links, ifindex, origin->dev,
                                        sizeof(origin->dev)) == NULL)
        snprintf(origin->dev, sizeof(origin->dev), "if%d", ifindex);
    networks->n++;
}

static void append_addresses(struct host_networks *networks,
                             struct nl_cache *addrs, struct nl_cache *links) {
    for (struct nl_object *obj = nl_cache_get_first(addrs); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_addr *addr = (struct rtnl_addr *)obj;
        struct nl_addr *local = rtnl_addr_get_local(addr);
        struct nl_addr *copy;

        if (rtnl_addr_get_family(addr) != AF_INET || local == NULL)
            continue;
        // The local address carries no prefix length when a peer is set;
        // the address's own length is what the kernel routes on.
        copy = nl_addr_clone(local);
        if (copy == NULL)
            continue;
        nl_addr_set_prefixlen(copy, rtnl_addr_get_prefixlen(addr));
        append(networks, copy, false, rtnl_addr_get_ifindex(addr), links);
        nl_addr_put(copy);
    }
}

static int route_ifindex(struct rtnl_route *route) {
    struct rtnl_nexthop *nexthop = rtnl_route_get_nnexthops(route) > 0
                                       ? rtnl_route_nexthop_n(route, 0)
                                       : NULL;
    return nexthop != NULL ? rtnl_route_nh_get_ifindex(nexthop) : 0;
}

static bool is_main_default_route(struct rtnl_route *route) {
    struct nl_addr *dst = rtnl_route_get_dst(route);

    return (dst == NULL || nl_addr_get_prefixlen(dst) == 0) &&
           rtnl_route_get_table(route) == RT_TABLE_MAIN &&
           rtnl_route_get_type(route) == RTN_UNICAST &&
           route_ifindex(route) > 0;
}

static void append_routes(struct host_networks *networks,
                          struct nl_cache *routes, struct nl_cache *links) {
    struct rtnl_route *best_default = NULL;

    for (struct nl_object *obj = nl_cache_get_first(routes); obj != NULL;
         obj = nl_cache_get_next(obj)) {
        struct rtnl_route *route = (struct rtnl_route *)obj;
        struct nl_addr *dst = rtnl_route_get_dst(route);

        if (rtnl_route_get_family(route) != AF_INET)
            continue;
        if (is_main_default_route(route)) {
            if (best_default == NULL ||
                rtnl_route_get_priority(route) <
                    rtnl_route_get_priority(best_default))
                best_default = route;
            continue;
        }
        if (dst != NULL)
            append(networks, dst, true, route_ifindex(route), links);
    }
    if (best_default != NULL) {
        struct rtnl_link *link =
            rtnl_link_get(links, route_ifindex(best_default));
        if (link != NULL)
            networks->default_route_mtu = rtnl_link_get_mtu(link);
        rtnl_link_put(link);
    }
}

int linux_host_networks_read(struct nl_sock *sock, struct host_networks *out) {
    struct nl_cache *links = NULL;
    struct nl_cache *addrs = NULL;
    struct nl_cache *routes = NULL;
    struct host_networks found = {0};
    size_t capacity;
    int status;

    status = nl_to_errno(rtnl_link_alloc_cache(sock, AF_UNSPEC, &links));
    if (status < 0)
        goto out;
    status = nl_to_errno(rtnl_addr_alloc_cache(sock, &addrs));
    if (status < 0)
        goto out;
    status = nl_to_errno(rtnl_route_alloc_cache(sock, AF_INET, 0, &routes));
    if (status < 0)
        goto out;
    status = -ENOMEM;
    capacity = (size_t)nl_cache_nitems(addrs) + (size_t)nl_cache_nitems(routes);
    // One spare slot so an empty host still gets valid arrays.
    found.prefixes = calloc(capacity + 1, sizeof(*found.prefixes));
    found.origins = calloc(capacity + 1, sizeof(*found.origins));
    if (found.prefixes == NULL || found.origins == NULL)
        goto out;
    append_addresses(&found, addrs, links);
    append_routes(&found, routes, links);
    *out = found;
    found = (struct host_networks){0};
    status = 0;
out:
    linux_host_networks_clear(&found);
    nl_cache_free(routes);
    nl_cache_free(addrs);
    nl_cache_free(links);
    return status;
}

void linux_host_networks_clear(struct host_networks *networks) {
    if (networks == NULL)
        return;
    free(networks->prefixes);
    free(networks->origins);
    *networks = (struct host_networks){0};
}

const char *linux_host_networks_describe(const struct host_networks *networks,
                                         size_t i, char *buf, size_t size) {
    const struct host_prefix_origin *origin = &networks->origins[i];
    char address[16];

    ipv4_format(networks->prefixes[i].address, address);
    if (origin->dev[0] == '\0')
        snprintf(buf, size, "%s %s/%u", origin->is_route ? "route" : "address",
                 address, networks->prefixes[i].len);
    else
        snprintf(buf, size, "%s %s/%u %s %s",
                 origin->is_route ? "route" : "address", address,
                 networks->prefixes[i].len, origin->is_route ? "dev" : "on",
                 origin->dev);
    return buf;
}
