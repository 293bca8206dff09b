// SPDX-License-Identifier: Apache-2.0
// Bridge links over netlink: names, stale marks, create, address, up, delete.
#include "linux_bridge.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <netlink/msg.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/network_config.h"
#include "linux_instance.h"
#include "nl_errno.h"

// Characters of a long network name kept before "-" and 5 hex digits.
#define NAME_HASH_LEN 6

uint32_t linux_bridge_name_hash(const char *s) {
    uint32_t hash = 2166136261u;
    for (; *s != '\0'; s++) {
        hash ^= (uint8_t)*s;
        hash *= 16777619u;
    }
    return hash;
}

void linux_bridge_name(const char *network, char out[IFNAMSIZ]) {
    const char *prefix = linux_instance_bridge_prefix();
    // The default instance's "vmb-" leaves 11 characters of IFNAMSIZ - 1,
    // another's "vmb<id>-" 7.
    size_t whole_max = IFNAMSIZ - 1 - strlen(prefix);
    // Exactly IFNAMSIZ - 1 characters when hashed; built in a larger buffer
    // so the compiler need not prove that the prefix is short.
    char name[64] = {0};

    if (strlen(network) <= whole_max)
        snprintf(name, sizeof(name), "%s%s", prefix, network);
    else
        snprintf(name, sizeof(name), "%s%.*s-%05x", prefix,
                 (int)(whole_max - NAME_HASH_LEN), network,
                 (unsigned)(linux_bridge_name_hash(network) & 0xfffffu));
    memcpy(out, name, IFNAMSIZ - 1);
    out[IFNAMSIZ - 1] = '\0';
}

bool linux_bridge_is_marked(const char *ifname, const char *kind,
                            const char *alias) {
    const char *prefix = linux_instance_bridge_prefix();
    char derived[IFNAMSIZ];

    if (ifname == NULL || kind == NULL || alias == NULL)
        return false;
    if (strncmp(ifname, prefix, strlen(prefix)) != 0)
        return false;
    if (strcmp(kind, "bridge") != 0 || !network_name_valid(alias))
        return false;
    linux_bridge_name(alias, derived);
    return strcmp(derived, ifname) == 0;
}

bool linux_bridge_random_mac(uint8_t mac[6]) {
    uint8_t bytes[6];

    if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t)sizeof(bytes))
        return false;
    // Locally administered (bit 1) so it never collides with a vendor's
    // address; unicast (bit 0 clear) because a bridge must not be multicast.
    bytes[0] = (uint8_t)((bytes[0] & 0xfc) | 0x02);
    memcpy(mac, bytes, sizeof(bytes));
    return true;
}

int linux_bridge_add(struct nl_sock *sock, const char *ifname,
                     const char *alias, const uint8_t mac[6], unsigned mtu,
                     int *ifindex) {
    struct rtnl_link *link = rtnl_link_bridge_alloc();
    struct rtnl_link *change = rtnl_link_alloc();
    struct rtnl_link *made = NULL;
    struct nl_addr *address = nl_addr_build(AF_LLC, mac, 6);
    bool added = false;
    int status = -ENOMEM;

    if (link == NULL || change == NULL || address == NULL)
        goto out;
    rtnl_link_set_name(link, ifname);
    // An explicit address keeps the bridge's MAC fixed as ports come and go,
    // where a bridge left to itself takes the lowest of its ports' MACs.
    rtnl_link_set_addr(link, address);
    rtnl_link_set_mtu(link, mtu);
    status = nl_to_errno(rtnl_link_add(sock, link, NLM_F_CREATE | NLM_F_EXCL));
    if (status < 0)
        goto out;
    added = true;
    status = nl_to_errno(rtnl_link_get_kernel(sock, 0, ifname, &made));
    if (status < 0)
        goto out;
    // The kernel ignores an alias in the message that creates a link.
    rtnl_link_set_ifalias(change, alias);
    status = nl_to_errno(rtnl_link_change(sock, made, change, 0));
    if (status < 0)
        goto out;
    *ifindex = rtnl_link_get_ifindex(made);
out:
    // By name: the one thing known even when the lookup failed.
    if (status < 0 && added)
        rtnl_link_delete(sock, link);
    rtnl_link_put(made);
    nl_addr_put(address);
    rtnl_link_put(change);
    rtnl_link_put(link);
    return status;
}

static struct nl_addr *ipv4_nl_addr(uint32_t address, unsigned prefix_len) {
    uint32_t network_order = htonl(address);
    struct nl_addr *addr =
        nl_addr_build(AF_INET, &network_order, sizeof(network_order));

    if (addr != NULL)
        nl_addr_set_prefixlen(addr, (int)prefix_len);
    return addr;
}

int linux_bridge_add_address(struct nl_sock *sock, int ifindex,
                             uint32_t address, unsigned prefix_len) {
    uint32_t host_bits = prefix_len >= 32 ? 0 : 0xffffffffu >> prefix_len;
    struct rtnl_addr *addr = rtnl_addr_alloc();
    struct nl_addr *local = ipv4_nl_addr(address, prefix_len);
    struct nl_addr *broadcast = ipv4_nl_addr(address | host_bits, 32);
    int status = -ENOMEM;

    if (addr == NULL || local == NULL || broadcast == NULL)
        goto out;
    rtnl_addr_set_ifindex(addr, ifindex);
    rtnl_addr_set_family(addr, AF_INET);
    status = nl_to_errno(rtnl_addr_set_local(addr, local));
    if (status < 0)
        goto out;
    status = nl_to_errno(rtnl_addr_set_broadcast(addr, broadcast));
    if (status < 0)
        goto out;
    status = nl_to_errno(rtnl_addr_add(sock, addr, NLM_F_CREATE | NLM_F_EXCL));
out:
    nl_addr_put(broadcast);
    nl_addr_put(local);
    rtnl_addr_put(addr);
    return status;
}

int linux_bridge_add_address6(struct nl_sock *sock, int ifindex,
                              const uint8_t address[16], unsigned prefix_len) {
    struct rtnl_addr *addr = rtnl_addr_alloc();
    struct nl_addr *local = nl_addr_build(AF_INET6, address, 16);
    int status = -ENOMEM;

    if (addr == NULL || local == NULL)
        goto out;
    nl_addr_set_prefixlen(local, (int)prefix_len);
    rtnl_addr_set_ifindex(addr, ifindex);
    rtnl_addr_set_family(addr, AF_INET6);
    // The gateway address is ours alone on a bridge we just made: duplicate
    // address detection would only keep dnsmasq from binding it for a second.
    rtnl_addr_set_flags(addr, IFA_F_NODAD);
    status = nl_to_errno(rtnl_addr_set_local(addr, local));
    if (status < 0)
        goto out;
    status = nl_to_errno(rtnl_addr_add(sock, addr, NLM_F_CREATE | NLM_F_EXCL));
out:
    nl_addr_put(local);
    rtnl_addr_put(addr);
    return status;
}

int linux_bridge_disable_tx_checksum(const char *ifname) {
    struct ethtool_value value = {.cmd = ETHTOOL_STXCSUM, .data = 0};
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int status = -errno;

    if (fd < 0)
        return status;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    ifr.ifr_data = (char *)&value;
    status = ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
    close(fd);
    return status;
}

int linux_bridge_set_up(struct nl_sock *sock, int ifindex) {
    struct rtnl_link *link = rtnl_link_alloc();
    struct rtnl_link *change = rtnl_link_alloc();
    int status = -ENOMEM;

    if (link == NULL || change == NULL)
        goto out;
    rtnl_link_set_ifindex(link, ifindex);
    rtnl_link_set_flags(change, IFF_UP);
    status = nl_to_errno(rtnl_link_change(sock, link, change, 0));
out:
    rtnl_link_put(change);
    rtnl_link_put(link);
    return status;
}

int linux_bridge_delete(struct nl_sock *sock, int ifindex, const char *ifname) {
    struct rtnl_link *link = NULL;
    int status = nl_to_errno(rtnl_link_get_kernel(sock, ifindex, NULL, &link));

    // Whichever way libnl says the link is not there, it is -ENODEV.
    if (status == -ENOENT)
        status = -ENODEV;
    if (status < 0)
        goto out;
    if (strcmp(rtnl_link_get_name(link), ifname) != 0) {
        status = -ENODEV;
        goto out;
    }
    status = nl_to_errno(rtnl_link_delete(sock, link));
out:
    rtnl_link_put(link);
    return status;
}

int linux_bridge_port_set_isolated(struct nl_sock *sock, int ifindex) {
    // libnl has no setter for this flag: an AF_BRIDGE RTM_SETLINK with
    // IFLA_PROTINFO { IFLA_BRPORT_ISOLATED }, as `bridge link set isolated
    // on` sends.
    struct ifinfomsg ifi = {.ifi_family = AF_BRIDGE, .ifi_index = ifindex};
    struct nl_msg *msg = nlmsg_alloc_simple(RTM_SETLINK, NLM_F_ACK);
    struct nlattr *protinfo;
    int status = -ENOMEM;

    if (msg == NULL || nlmsg_append(msg, &ifi, sizeof(ifi), NLMSG_ALIGNTO) < 0)
        goto out;
    protinfo = nla_nest_start(msg, IFLA_PROTINFO | NLA_F_NESTED);
    if (protinfo == NULL || nla_put_u8(msg, IFLA_BRPORT_ISOLATED, 1) < 0)
        goto out;
    nla_nest_end(msg, protinfo);
    status = nl_to_errno(nl_send_sync(sock, msg));
    // nl_send_sync() frees the message whatever happens.
    msg = NULL;
out:
    nlmsg_free(msg);
    return status;
}
