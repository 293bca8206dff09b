// SPDX-License-Identifier: Apache-2.0
// The creation baseline: a bridge with an address, made directly over netlink.
#include <arpa/inet.h>
#include <net/if.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>

#include "bench.h"

struct nl_sock *bare_bridge_socket(void) {
    struct nl_sock *sock = nl_socket_alloc();

    if (sock == NULL)
        return NULL;
    if (nl_connect(sock, NETLINK_ROUTE) < 0) {
        nl_socket_free(sock);
        return NULL;
    }
    return sock;
}

void bare_bridge_socket_free(struct nl_sock *sock) {
    // nl_socket_free() accepts NULL and closes a connected socket.
    nl_socket_free(sock);
}

static bool add_address(struct nl_sock *sock, int ifindex, unsigned index) {
    uint32_t gateway = htonl(0x0ac80001u | (index & 0xffu) << 8);
    struct rtnl_addr *addr = rtnl_addr_alloc();
    struct nl_addr *local = nl_addr_build(AF_INET, &gateway, sizeof(gateway));
    bool status = false;

    if (addr == NULL || local == NULL)
        goto out;
    nl_addr_set_prefixlen(local, 24);
    rtnl_addr_set_ifindex(addr, ifindex);
    rtnl_addr_set_family(addr, AF_INET);
    if (rtnl_addr_set_local(addr, local) < 0)
        goto out;
    status = rtnl_addr_add(sock, addr, NLM_F_CREATE | NLM_F_EXCL) == 0;
out:
    nl_addr_put(local);
    rtnl_addr_put(addr);
    return status;
}

bool bare_bridge_create(struct nl_sock *sock, const char *name,
                        unsigned index) {
    struct rtnl_link *link = rtnl_link_bridge_alloc();
    unsigned ifindex;
    bool status = false;

    if (link == NULL)
        goto out;
    rtnl_link_set_name(link, name);
    // Up in the message that creates it: the fewest requests there can be.
    rtnl_link_set_flags(link, IFF_UP);
    if (rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL) < 0)
        goto out;
    ifindex = if_nametoindex(name);
    status = ifindex != 0 && add_address(sock, (int)ifindex, index);
out:
    rtnl_link_put(link);
    return status;
}

bool bare_bridge_delete(struct nl_sock *sock, const char *name) {
    struct rtnl_link *link = rtnl_link_alloc();
    bool status = false;

    if (link == NULL)
        return false;
    rtnl_link_set_name(link, name);
    status = rtnl_link_delete(sock, link) == 0;
    rtnl_link_put(link);
    return status;
}

bool bare_bridge_set_port(struct nl_sock *sock, int port_ifindex,
                          int bridge_ifindex) {
    struct rtnl_link *port = rtnl_link_alloc();
    struct rtnl_link *change = rtnl_link_alloc();
    bool status = false;

    if (port == NULL || change == NULL)
        goto out;
    rtnl_link_set_ifindex(port, port_ifindex);
    // 0 is sent too: it takes the port off its bridge.
    rtnl_link_set_master(change, bridge_ifindex);
    rtnl_link_set_flags(change, IFF_UP);
    status = rtnl_link_change(sock, port, change, 0) == 0;
out:
    rtnl_link_put(change);
    rtnl_link_put(port);
    return status;
}
